"""Subscale folding is exactly invertible and its schedule only ever looks at earlier steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.subscale import (
    context_mask,
    fold,
    generation_schedule,
    generation_step,
    start_step,
    subscale_lag_samples,
    subscale_lag_steps,
    total_steps,
    unfold,
    visible,
)


@pytest.mark.parametrize("B", [1, 2, 3, 4, 16])
def test_fold_unfold_round_trip_numpy_and_torch(B: int) -> None:
    rng = np.random.default_rng(B)
    for L in [0, 1, 2, B - 1, B, B + 1, 2 * B, 37, 100]:
        if L < 0:
            continue
        x = rng.integers(-32768, 32767, size=(2, 3, L), dtype=np.int16)
        sub = fold(x, B)
        T = -(-L // B)
        assert sub.shape == (2, 3, B, T) and sub.dtype == np.int16
        np.testing.assert_array_equal(unfold(sub, L), x)
        xt = torch.from_numpy(x.astype(np.float32))
        subt = fold(xt, B, pad=-7.0)
        assert isinstance(subt, torch.Tensor) and subt.shape == (2, 3, B, T)
        torch.testing.assert_close(unfold(subt, L), xt, rtol=0, atol=0)
        np.testing.assert_array_equal(subt.numpy(), fold(x.astype(np.float32), B, pad=-7.0))


def test_fold_layout_and_padding() -> None:
    x = np.arange(10)
    sub = fold(x, 4, pad=-1)
    # sub-sequence j holds samples j, j + 4, j + 8, ...; the tail is padded
    np.testing.assert_array_equal(sub, [[0, 4, 8], [1, 5, 9], [2, 6, -1], [3, 7, -1]])
    for j in range(4):
        for t in range(3):
            n = t * 4 + j
            assert sub[j, t] == (x[n] if n < 10 else -1)


def test_fold_errors() -> None:
    with pytest.raises(ValueError, match="B must be"):
        fold(np.zeros(5), 0)
    with pytest.raises(ValueError, match="at least one axis"):
        fold(np.float64(1.0), 2)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="ceil"):
        unfold(np.zeros((4, 3)), 13)  # needs T = 4
    with pytest.raises(ValueError, match="ceil"):
        unfold(np.zeros((4, 3)), 8)  # needs T = 2
    with pytest.raises(ValueError, match="L must be"):
        unfold(np.zeros((4, 3)), -1)
    with pytest.raises(ValueError, match=r"\(\.\.\., B, T\)"):
        unfold(np.zeros(3), 3)


def test_visibility_rule_and_mask_agree() -> None:
    B, F, T = 4, 3, 9
    mask = context_mask(B, F, T)
    assert mask.shape == (B, T, B, T) and mask.dtype == bool
    for j in range(B):
        for t in range(T):
            for i in range(B):
                for s in range(T):
                    assert mask[j, t, i, s] == visible(j, t, i, s, F)
    # own strict past; earlier sub-tensors up to F - 1 ahead; nothing of later ones
    assert mask[2, 5, 2, 4] and not mask[2, 5, 2, 5]
    assert mask[2, 5, 1, 5 + F - 1] and not mask[2, 5, 1, 5 + F]
    assert mask[2, 5, 0, 0] and not mask[2, 5, 3, 0]
    # every visible sample is in the original past or the declared future horizon
    for j, t, i, s in zip(*np.nonzero(mask), strict=True):
        assert s * B + i < t * B + j or (i < j and s < t + F)


@pytest.mark.parametrize(("B", "F", "T"), [(1, 1, 5), (2, 1, 6), (4, 2, 11), (16, 3, 40), (16, 8, 20)])
def test_schedule_only_sees_earlier_steps(B: int, F: int, T: int) -> None:
    schedule = generation_schedule(B, F, T)
    step = generation_step(B, F, T)
    assert len(schedule) == total_steps(B, F, T) == T + (B - 1) * F
    # every sample exactly once, at the step generation_step declares
    seen = np.full((B, T), -1)
    for g, items in schedule:
        for j, t in items:
            assert seen[j, t] == -1
            seen[j, t] = g
        assert [j for j, _ in items] == sorted(j for j, _ in items)
    np.testing.assert_array_equal(seen, step)
    assert all(step[j, 0] == start_step(j, F) for j in range(B))
    # causality: whatever (j, t) may see was generated at a strictly earlier step, so changing
    # a not-yet-generated sample cannot change any distribution computed so far
    mask = context_mask(B, F, T)
    seer = np.broadcast_to(step[:, :, None, None], mask.shape)  # step of (j, t)
    seen_at = np.broadcast_to(step[None, None, :, :], mask.shape)  # step of (i, s)
    assert mask.any() or (B == 1 and T == 1)
    assert np.all(seen_at[mask] < seer[mask])
    # the horizon is as wide as the schedule allows for the sub-tensor just before: every
    # sample of j - 1 generated before (j, t) is visible to it
    previous = np.arange(B)[None, None, :, None] == np.arange(B)[:, None, None, None] - 1
    assert not np.any(previous & ~mask & (seen_at < seer))
    # the horizon is tight: one step further ahead of j - 1 would be generated in the same step
    if B > 1 and T > F:
        assert step[1, 0] == step[0, F]


@pytest.mark.parametrize(("B", "F", "T"), [(4, 2, 11), (16, 3, 60), (3, 5, 4)])
def test_schedule_rate_and_latency(B: int, F: int, T: int) -> None:
    schedule = generation_schedule(B, F, T)
    sizes = [len(items) for _, items in schedule]
    lag = subscale_lag_steps(B, F)
    assert lag == (B - 1) * F
    full = [g for g, n in enumerate(sizes) if n == B]
    if lag < T:
        # full rate from step (B - 1) F to T - 1: B samples a step
        assert full == list(range(lag, T))
    else:
        assert full == []
    assert sum(sizes) == B * T
    # first contiguous output: original samples [0, B) are complete after step (B - 1) F
    step = generation_step(B, F, T)
    done_at = step.T.reshape(-1)  # original order n = t * B + j -> its step
    prefix_complete = np.maximum.accumulate(done_at)
    assert prefix_complete[B - 1] == lag and prefix_complete[0] == 0
    # at any full-rate step g the newest sample (0, g) leads the row being completed by (B - 1) F B
    for g in full:
        row = g - lag
        assert prefix_complete[(row + 1) * B - 1] == g
        newest = max(t * B + j for j, t in schedule[g][1])
        assert newest - row * B == subscale_lag_samples(B, F) == (B - 1) * F * B


def test_schedule_errors() -> None:
    for bad in [(0, 1, 1), (1, 0, 1), (1, 1, 0)]:
        with pytest.raises(ValueError, match="positive integer"):
            generation_schedule(*bad)
        with pytest.raises(ValueError, match="positive integer"):
            context_mask(*bad)
    with pytest.raises(ValueError):
        start_step(-1, 2)
    with pytest.raises(ValueError):
        subscale_lag_samples(16, 0)
