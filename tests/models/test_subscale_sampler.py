"""Subscale generation: the reference agrees with teacher forcing, the compiled sampler with the
reference, chunks with whole utterances, and the declared lag with what generation needs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.audio import split_pcm
from models.config import SubscaleConfig, VoiceConfig
from models.samplers.base import UniformSource
from models.samplers.subscale import (
    SubscaleReferenceSampler,
    SubscaleWeights,
    active_range,
    extract_subscale_weights,
    final_samples,
    frames_needed,
    generate_utterance,
    newest_sample,
)
from models.samplers.subscale_cpu import SubscaleCpuSampler
from models.sparsity import block_mask, gate_masks
from models.subscale import fold, generation_schedule, subscale_lag_samples, subscale_lag_steps, total_steps
from models.subscale_net import SubscaleWaveRNN
from models.wavernn import WaveRNN

BASE = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)
SUB = SubscaleConfig(factor=4, horizon=2, past=2, context_channels=16)
#: Per-sample class flips allowed against the reference in lockstep (measured: 0 here).
MAX_FLIP_RATE = 0.01


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(sub: SubscaleConfig = SUB, seed: int = 0) -> SubscaleWaveRNN:
    torch.manual_seed(seed)
    model = SubscaleWaveRNN(BASE.model, sub).eval()
    with torch.no_grad():  # sharpen the untrained distributions so that draws matter
        model.O2.weight.mul_(8.0)
        model.O4.weight.mul_(8.0)
        model.rnn.weight_ih_l0.mul_(3.0)
    return model


def _inputs(model: SubscaleWaveRNN, frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mel (1, frames, n_mels), gates (frames, 3H), uniforms (T * B, 2)."""
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(1, frames, model.cfg.n_mels, generator=g) * 2 - 5
    with torch.no_grad():
        gates = model.gate_conditioning(mel)[0]
    nb = model.sub.factor
    steps = -(-frames * model.cfg.hop_length // nb)
    return mel, gates, UniformSource(seed).draw(steps * nb)


@pytest.fixture(scope="module")
def setup() -> tuple[SubscaleWaveRNN, SubscaleWeights]:
    model = _model()
    return model, extract_subscale_weights(model)


def test_reference_logits_equal_teacher_forcing(setup: tuple[SubscaleWaveRNN, SubscaleWeights]) -> None:
    model, weights = setup
    mel, gates, uni = _inputs(model, 6, seed=3)
    sampler = SubscaleReferenceSampler(weights, record_logits=True)
    pcm = generate_utterance(sampler, gates, uni)
    assert pcm.shape == (180,) and len(np.unique(pcm)) > 100
    c, f = split_pcm(torch.from_numpy(pcm)[None])
    with torch.no_grad():
        lc, lf, _ = model.forward_conditioned(model.conditioning(mel), c, f)
    assert sampler.logits is not None
    for got, want in zip(sampler.logits, (lc, lf), strict=True):
        torch.testing.assert_close(got, fold(want.transpose(1, 2), 4)[0].permute(1, 2, 0), rtol=0, atol=1e-4)


@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_chunked_generation_equals_whole(setup: tuple[SubscaleWaveRNN, SubscaleWeights], chunk: int) -> None:
    model, weights = setup
    _, gates, uni = _inputs(model, 5, seed=4)  # 150 samples: not a multiple of B, a partial last row
    for make in (SubscaleReferenceSampler, SubscaleCpuSampler):
        whole = generate_utterance(make(weights), gates, uni)
        assert whole.shape == (150,)
        np.testing.assert_array_equal(generate_utterance(make(weights), gates, uni, chunk_steps=chunk), whole)


def _pruned(model: SubscaleWaveRNN, block: tuple[int, int]) -> SubscaleWaveRNN:
    """A copy with R pruned to 75% per gate and the heads to 60%, in ``block`` blocks, R scaled up."""
    pruned = SubscaleWaveRNN(model.cfg, model.sub).eval()
    pruned.load_state_dict(model.state_dict())
    with torch.no_grad():
        pruned.rnn.weight_hh_l0.mul_(gate_masks(pruned.rnn.weight_hh_l0, 0.75, block) * 4.0)
        for name in ("O1", "O2", "O3", "O4"):
            w = getattr(pruned, name).weight
            w.mul_(block_mask(w, 0.6, block))
    return pruned


@pytest.mark.parametrize("block", [None, (16, 1), (4, 4)])
def test_compiled_sampler_matches_reference_in_lockstep(
    setup: tuple[SubscaleWaveRNN, SubscaleWeights], block: tuple[int, int] | None
) -> None:
    """Both samplers step from the reference's state; logits within 1e-5, class flips bounded.
    Dense weights, and R and the heads block-pruned (the compiled sampler's sparse kernels)."""
    model, weights = setup
    if block is not None:
        weights = extract_subscale_weights(_pruned(model, block))
    _, gates, uni = _inputs(model, 6, seed=5)
    ref = SubscaleReferenceSampler(weights, record_logits=True)
    fast = SubscaleCpuSampler(weights, record_logits=True)
    if block is not None:
        assert fast.step_sampler.block == block
        assert fast.step_sampler.describe()["R"]["kernel"] == f"bsr{block[0]}x{block[1]}"
    state = ref.initial_state(6)
    total = total_steps(4, 2, state.steps_per_subtensor)
    flips = 0
    while state.step < total:
        _, s_ref = ref.generate(state, gates, uni, 1)
        _, s_fast = fast.generate(state, gates, uni, 1)
        torch.testing.assert_close(s_fast.h, s_ref.h, rtol=0, atol=1e-5)
        flips += int((s_fast.coarse != s_ref.coarse).sum() + (s_fast.fine != s_ref.fine).sum())
        state = s_ref
    assert ref.logits is not None and fast.logits is not None
    for got, want in zip(fast.logits, ref.logits, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert flips <= MAX_FLIP_RATE * 2 * state.length
    if flips == 0:  # then the free-running trajectories are the same too
        whole_ref = generate_utterance(SubscaleReferenceSampler(weights), gates, uni)
        np.testing.assert_array_equal(generate_utterance(SubscaleCpuSampler(weights), gates, uni), whole_ref)


def test_threads_do_not_change_the_result(setup: tuple[SubscaleWaveRNN, SubscaleWeights]) -> None:
    model, weights = setup
    _, gates, uni = _inputs(model, 8, seed=6)
    one = generate_utterance(SubscaleCpuSampler(weights, threads=1), gates, uni)
    two = generate_utterance(SubscaleCpuSampler(weights, threads=2), gates, uni, chunk_steps=9)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("sub", [SUB, SubscaleConfig(factor=3, horizon=3, past=1, context_channels=16)])
def test_declared_lag_is_what_the_first_output_needs(sub: SubscaleConfig) -> None:
    """The first B samples come out after exactly subscale_lag_steps + 1 steps, when generation has
    reached sample subscale_lag_samples; conditioning through that sample is enough, less is refused."""
    torch.manual_seed(2)
    model = SubscaleWaveRNN(dataclasses.replace(BASE.model, hop_length=4), sub).eval()
    weights = extract_subscale_weights(model)
    frames = 30
    _, gates, uni = _inputs(model, frames, seed=7)
    whole = generate_utterance(SubscaleReferenceSampler(weights), gates, uni)
    lag_steps, lag = subscale_lag_steps(sub.factor, sub.horizon), subscale_lag_samples(sub.factor, sub.horizon)
    for make in (SubscaleReferenceSampler, SubscaleCpuSampler):
        sampler = make(weights)
        state = sampler.initial_state(frames)
        pcm, state = sampler.generate(state, gates, uni, lag_steps)
        assert pcm.numel() == 0  # nothing is final before the last sub-tensor's first sample
        need = frames_needed(lag_steps + 1, sub, state.steps_per_subtensor, 4, frames)
        assert newest_sample(lag_steps + 1, sub, state.steps_per_subtensor) == lag
        assert need == lag // 4 + 2  # sample `lag` interpolates frames lag // hop and lag // hop + 1
        with pytest.raises(ValueError, match="more conditioning"):
            sampler.generate(state, gates[: need - 1], uni, 1)
        pcm, state = sampler.generate(state, gates[:need], uni, 1)
        np.testing.assert_array_equal(pcm.numpy(), whole[: sub.factor])
        assert state.step == lag_steps + 1
        # every later chunk too: the row that becomes final leads generation by exactly `lag`
        for _ in range(5):
            first = state.emitted
            need = frames_needed(state.step + 1, sub, state.steps_per_subtensor, 4, frames)
            assert newest_sample(state.step + 1, sub, state.steps_per_subtensor) == first + lag
            with pytest.raises(ValueError, match="more conditioning"):
                sampler.generate(state, gates[: need - 1], uni, 1)
            pcm, state = sampler.generate(state, gates[:need], uni, 1)
            np.testing.assert_array_equal(pcm.numpy(), whole[first : first + sub.factor])
    # the schedule agrees: the newest sample of steps 0 .. lag_steps is `lag`
    schedule = generation_schedule(sub.factor, sub.horizon, state.steps_per_subtensor)
    assert max(t * sub.factor + j for g, row in schedule[: lag_steps + 1] for j, t in row) == lag


@pytest.mark.parametrize("nb, fh, steps", [(4, 2, 6), (16, 8, 5), (3, 1, 10), (16, 8, 200)])
def test_step_bookkeeping_follows_the_schedule(nb: int, fh: int, steps: int) -> None:
    """active_range is the schedule's row set; every sample emitted as final has been generated."""
    sub = SubscaleConfig(factor=nb, horizon=fh, past=1, context_channels=4)
    generated = np.zeros((nb, steps), dtype=bool)
    length = nb * steps - 1  # a partial last row
    for g, row in generation_schedule(nb, fh, steps):
        lo, hi = active_range(g, sub, steps)
        assert [(j, g - j * fh) for j in range(lo, hi)] == row
        for j, t in row:
            generated[j, t] = True
        rows_done = int(np.argmin(np.r_[generated.all(axis=0), False]))  # leading complete rows
        assert final_samples(g + 1, sub, steps, length) == min(length, rows_done * nb)
        assert newest_sample(g + 1, sub, steps) == max(t * nb + j for j in range(nb) for t in range(steps)
                                                       if generated[j, t])
    assert final_samples(total_steps(nb, fh, steps), sub, steps, length) == length


def test_bad_inputs_are_refused(setup: tuple[SubscaleWaveRNN, SubscaleWeights]) -> None:
    model, weights = setup
    _, gates, uni = _inputs(model, 4, seed=8)
    sampler = SubscaleCpuSampler(weights)
    state = sampler.initial_state(4)
    with pytest.raises(ValueError, match="uniforms"):
        sampler.generate(state, gates, uni[:-1], 5)
    with pytest.raises(ValueError, match="gates"):
        sampler.generate(state, gates[:, :-1], uni, 5)
    with pytest.raises(ValueError, match="n_steps"):
        sampler.generate(state, gates, uni, -1)
    with pytest.raises(ValueError, match="SubscaleWaveRNN"):
        extract_subscale_weights(WaveRNN(BASE.model))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ctx_w"):
        dataclasses.replace(weights, ctx_w=weights.ctx_w[:, :-1])
