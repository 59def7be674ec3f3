"""Subscale index maps and the dependency schedule of the Subscale WaveRNN (pure functions).

The paper folds a length-L sequence into B sub-tensors of every B-th sample (B = 16) and
generates them as a batch: sub-tensor j sees its own past and the sub-tensors i < j up to a
horizon into their future, and starts once sub-tensor j - 1 is F steps ahead, so once all B
run, one step yields B samples. Nothing here knows about networks or samplers; the functions
fix the index arithmetic that training, the samplers and the streaming engine must share.

Conventions (see docs/design.md, "Subscale folding and fold-and-crossfade"):

- ``fold``: sub-tensor ``j``, step ``t`` holds original sample ``n = t * B + j``.
- **Lead F**: sub-tensor ``j`` starts at global step ``j * F`` and generates its sample
  ``t = g - j * F`` at global step ``g``.
- **Visibility**: sample ``(j, t)`` may see ``(j, s)`` for ``s < t`` and ``(i, s)`` for every
  ``i < j`` and ``s < t + F`` (the aligned sample ``s = t``, which is in the original past,
  plus ``F - 1`` samples of future), nothing of ``i > j``. With the lead ``j * F`` this is the
  widest horizon that is generated strictly before: ``(i, t + F - 1)`` comes out at step
  ``g - 1 - (j - 1 - i) * F``, while ``(j - 1, t + F)`` would come out in the very step ``g``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_non_negative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def fold(x: ArrayT, B: int, pad: float = 0) -> ArrayT:
    """Fold a sequence (last axis) into B sub-sequences of every B-th sample.

    Args:
        x: (..., L) numpy array or torch tensor.
        B: number of sub-sequences (the paper uses 16).
        pad: value for the ``B * ceil(L / B) - L`` tail positions.
    Returns:
        (..., B, T) with ``T = ceil(L / B)``, same type, dtype and device as ``x``:
        ``out[..., j, t] = x[..., t * B + j]`` (or ``pad`` past the end). Keep ``L`` to
        :func:`unfold`.
    """
    _check_positive("B", B)
    if not isinstance(x, (np.ndarray, torch.Tensor)) or x.ndim < 1:
        raise ValueError(f"x must be a numpy array or torch tensor with at least one axis, got {type(x).__name__}")
    length = int(x.shape[-1])
    steps = -(-length // B)
    extra = steps * B - length
    lead: tuple[int, ...] = tuple(x.shape[:-1])
    if isinstance(x, torch.Tensor):
        tail = torch.full((*lead, extra), pad, dtype=x.dtype, device=x.device)
        padded = torch.cat([x, tail], dim=-1)  # (..., T * B)
        return padded.reshape(*lead, steps, B).transpose(-1, -2).contiguous()  # (..., B, T)
    padded_np = np.concatenate([x, np.full((*lead, extra), pad, dtype=x.dtype)], axis=-1)  # (..., T * B)
    return np.ascontiguousarray(padded_np.reshape(*lead, steps, B).swapaxes(-1, -2))  # (..., B, T)


def unfold(sub: ArrayT, L: int) -> ArrayT:
    """The exact inverse of :func:`fold`: interleave B sub-sequences and drop the padding.

    Args:
        sub: (..., B, T) numpy array or torch tensor, ``sub[..., j, t]`` = sample ``t * B + j``.
        L: the original length; ``T`` must equal ``ceil(L / B)``.
    Returns:
        (..., L), same type, dtype and device as ``sub``.
    """
    if not isinstance(sub, (np.ndarray, torch.Tensor)) or sub.ndim < 2:
        raise ValueError("sub must be a numpy array or torch tensor shaped (..., B, T)")
    _check_non_negative("L", L)
    B, steps = int(sub.shape[-2]), int(sub.shape[-1])
    if B < 1 or steps != -(-L // B):
        raise ValueError(f"sub of shape (..., B={B}, T={steps}) cannot hold L={L} samples: T must be ceil(L / B)")
    lead: tuple[int, ...] = tuple(sub.shape[:-2])
    if isinstance(sub, torch.Tensor):
        flat = sub.transpose(-1, -2).reshape(*lead, steps * B)  # (..., T * B)
        return flat[..., :L].contiguous()
    flat_np = sub.swapaxes(-1, -2).reshape(*lead, steps * B)  # (..., T * B)
    return np.ascontiguousarray(flat_np[..., :L])


def start_step(j: int, F: int) -> int:
    """Global step at which sub-tensor ``j`` generates its first sample (``j * F``)."""
    _check_non_negative("j", j)
    _check_positive("F", F)
    return j * F


def visible(j: int, t: int, i: int, s: int, F: int) -> bool:
    """Whether generating sample ``t`` of sub-tensor ``j`` may see sample ``s`` of sub-tensor ``i``.

    Own past (``i == j``, ``s < t``) and earlier sub-tensors up to ``F - 1`` steps ahead
    (``i < j``, ``s < t + F``); later sub-tensors never. Indices are not range-checked here;
    see :func:`context_mask` for the vectorised, checked form.
    """
    if i == j:
        return s < t
    return i < j and s < t + F


def context_mask(B: int, F: int, T: int) -> np.ndarray:
    """The subscale dependency rule for a whole folded utterance.

    Args:
        B: sub-tensors; F: lead/horizon in steps (>= 1); T: steps per sub-tensor.
    Returns:
        (B, T, B, T) bool, ``mask[j, t, i, s]`` = :func:`visible` ``(j, t, i, s, F)``.
    """
    _check_positive("B", B)
    _check_positive("F", F)
    _check_positive("T", T)
    j = np.arange(B).reshape(B, 1, 1, 1)
    t = np.arange(T).reshape(1, T, 1, 1)
    i = np.arange(B).reshape(1, 1, B, 1)
    s = np.arange(T).reshape(1, 1, 1, T)
    own = (i == j) & (s < t)
    earlier = (i < j) & (s < t + F)
    return np.asarray(own | earlier)  # (B, T, B, T)


def generation_step(B: int, F: int, T: int) -> np.ndarray:
    """(B, T) int64: the global step at which each sample ``(j, t)`` is generated (``j * F + t``)."""
    _check_positive("B", B)
    _check_positive("F", F)
    _check_positive("T", T)
    return np.arange(B).reshape(B, 1) * F + np.arange(T).reshape(1, T)


def total_steps(B: int, F: int, T: int) -> int:
    """Sequential steps to generate B sub-tensors of T samples: ``T + (B - 1) * F``."""
    _check_positive("B", B)
    _check_positive("F", F)
    _check_positive("T", T)
    return T + (B - 1) * F


def generation_schedule(B: int, F: int, T: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """The paper's staggered schedule, step by step.

    Args:
        B: sub-tensors; F: lead in steps; T: steps per sub-tensor (``ceil(L / B)``).
    Returns:
        ``total_steps(B, F, T)`` entries ``(g, [(j, t), ...])``: at global step ``g`` every
        sub-tensor ``j`` with ``0 <= g - j * F < T`` generates its sample ``t = g - j * F``
        (in increasing ``j``; all of them form one batched network step).
    """
    steps = total_steps(B, F, T)
    schedule = []
    for g in range(steps):
        lo = max(0, -(-(g - T + 1) // F))  # first j with g - j * F < T
        hi = min(B - 1, g // F)  # last j with g - j * F >= 0
        schedule.append((g, [(j, g - j * F) for j in range(lo, hi + 1)]))
    return schedule


def subscale_lag_steps(B: int, F: int) -> int:
    """Extra sequential steps before the first contiguous output: ``(B - 1) * F``.

    The first ``B`` original samples are ``(j, 0)`` for all ``j``; the last of them,
    ``(B - 1, 0)``, is generated at step ``(B - 1) * F``, which is also the first step at which
    all B sub-tensors run (the first full-rate step). Plain WaveRNN has its first sample after
    one step, so subscale adds ``(B - 1) * F`` steps (each costs about one plain step's time
    when the B rows of a step are batched) to the time to first audio.
    """
    _check_positive("B", B)
    _check_positive("F", F)
    return (B - 1) * F


def subscale_lag_samples(B: int, F: int) -> int:
    """How far, in original samples, generation runs ahead of the output: ``(B - 1) * F * B``.

    Step ``g >= (B - 1) * F`` completes row ``g - (B - 1) * F`` (original samples
    ``[(g - (B - 1) * F) * B, (g - (B - 1) * F + 1) * B)``, emitted then) while its newest sample,
    ``(0, g)``, is original sample ``g * B``: the front leads the first sample of the row being
    emitted by ``(B - 1) * F * B`` samples (at the first output step, samples ``[0, B)`` come
    out with sample ``(B - 1) * F * B`` already generated). A streaming subscale generator
    therefore needs that much conditioning look-ahead on top of the conditioning network's
    own, and buffers about half of it as generated-but-unemitted audio (e.g. B = 16, F = 8:
    1,920 samples, 80 ms at 24 kHz). The paper's round figure ``B * F`` (steps) rounds
    ``B - 1`` up; the time-to-first-audio cost is :func:`subscale_lag_steps`.
    """
    return subscale_lag_steps(B, F) * B
