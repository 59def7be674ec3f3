"""Fold-and-crossfade generation: one utterance as K overlapping segments in one batch.

The simple alternative to subscale: cut an utterance's gate-conditioning frames into K
segments that overlap by ``overlap_frames``, generate all K as one batch of independent
streams with any :class:`~models.samplers.base.Sampler` (each from silence, with its own
seeded :class:`~models.samplers.base.UniformSource`), then join neighbours with a crossfade
over the overlap. A stream's sequential steps drop from ``T * hop`` to about
``(segment_frames + overlap_frames) * hop``, so per-utterance speed rises about K-fold
wherever a batch of K costs about as much as one stream (GPU, or a CPU with idle cores).

Segmentation (``S = segment_frames``, ``O = overlap_frames``, ``T`` frames, ``0 <= O < S``):
``K = max(1, ceil((T - O) / S))``; segment ``k`` covers frames ``[k * S, (k + 1) * S + O)``,
the last one ``[(K - 1) * S, T)`` (between ``O + 1`` and ``S + O`` frames). Neighbours share
exactly ``O`` frames; segments start at frame boundaries, so a segment is generated as an
utterance of its own frame slice (local positions from 0, the same conditioning phases).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.samplers.base import Sampler, SamplerState, UniformSource, conditioning_window, draw_batch, stack_windows

log = logging.getLogger(__name__)

FADES = ("linear", "equal_power")


@dataclass(frozen=True)
class Segment:
    """Frames ``[start_frame, end_frame)`` of an utterance, generated as one stream."""

    index: int
    start_frame: int
    end_frame: int

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


def plan_segments(total_frames: int, segment_frames: int, overlap_frames: int) -> list[Segment]:
    """Cut ``total_frames`` into overlapping segments (see the module docstring).

    Args:
        total_frames: T >= 1 frames of the utterance.
        segment_frames: S >= 1, the stride between segment starts.
        overlap_frames: O in ``[0, S)``, frames shared by neighbours (the crossfade length).
    Returns:
        K segments in order; K = 1 (the whole utterance, no crossfade) when ``T <= S + O``.
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be >= 1, got {total_frames}")
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
    if not 0 <= overlap_frames < segment_frames:
        raise ValueError(
            f"overlap_frames must be in [0, segment_frames={segment_frames}), got {overlap_frames}: "
            "use a shorter overlap or longer segments"
        )
    k_count = max(1, -(-(total_frames - overlap_frames) // segment_frames))
    return [
        Segment(k, k * segment_frames, min(total_frames, (k + 1) * segment_frames + overlap_frames))
        for k in range(k_count)
    ]


def fade_curves(n: int, kind: str = "equal_power") -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in weights over an overlap of ``n`` samples.

    Weights sit at sample centres ``x = (i + 0.5) / n``, so neither end jumps to exactly 0 or 1.

    Args:
        n: overlap length in samples (>= 0).
        kind: ``"linear"`` (``1 - x``, ``x``: weights sum to 1, right for correlated
            signals) or ``"equal_power"`` (``cos``, ``sin`` of ``x * pi / 2``: squared weights
            sum to 1, keeps the loudness of uncorrelated signals such as two independently
            sampled WaveRNN segments).
    Returns:
        (fade_out (n,), fade_in (n,)) float64.
    """
    if n < 0:
        raise ValueError(f"overlap length must be >= 0, got {n}")
    if kind not in FADES:
        raise ValueError(f"fade must be one of {FADES}, got {kind!r}")
    x = (np.arange(n) + 0.5) / max(n, 1)
    if kind == "linear":
        return 1.0 - x, x
    return np.cos(x * np.pi / 2), np.sin(x * np.pi / 2)


def join_range(
    segments: list[np.ndarray], plan: list[Segment], hop: int, start: int, stop: int, fade: str = "equal_power"
) -> np.ndarray:
    """Samples ``[start, stop)`` of the crossfaded utterance.

    Args:
        segments: per-segment PCM, ``segments[k]`` at least as long as the part of
            ``[start, stop)`` that segment ``k`` covers (samples ``start_frame * hop`` on).
        plan: the segments' frames (:func:`plan_segments`).
        hop: samples per frame.
        start, stop: global sample range, ``0 <= start <= stop <= T * hop``.
    Returns:
        int16 (stop - start,): outside overlaps the covering segment's samples, inside an
        overlap ``rint(fade_out * previous + fade_in * next)``.
    """
    if len(segments) != len(plan):
        raise ValueError(f"got {len(segments)} segments for a plan of {len(plan)}")
    total = plan[-1].end_frame * hop
    if not 0 <= start <= stop <= total:
        raise ValueError(f"need 0 <= start <= stop <= {total}, got start={start}, stop={stop}")
    overlap = (plan[0].end_frame - plan[1].start_frame) * hop if len(plan) > 1 else 0
    fade_out, fade_in = fade_curves(overlap, fade)
    out = np.zeros(stop - start, dtype=np.float64)
    for k, seg in enumerate(plan):
        s0, s1 = seg.start_frame * hop, seg.end_frame * hop
        a, b = max(start, s0), min(stop, s1)
        if a >= b:
            continue
        if segments[k].shape[0] < b - s0:
            raise ValueError(f"segment {k} has {segments[k].shape[0]} samples, {b - s0} needed")
        weight = np.ones(s1 - s0)
        if k > 0:
            weight[:overlap] = fade_in
        if k < len(plan) - 1:
            weight[s1 - s0 - overlap :] = fade_out
        out[a - start : b - start] += weight[a - s0 : b - s0] * segments[k][a - s0 : b - s0]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def crossfade_join(segments: list[np.ndarray], plan: list[Segment], hop: int, fade: str = "equal_power") -> np.ndarray:
    """The whole utterance, int16 (T * hop,), from complete segments (see :func:`join_range`)."""
    return join_range(segments, plan, hop, 0, plan[-1].end_frame * hop, fade)


def segment_seed(seed: int, k: int) -> int:
    """Seed of segment ``k``'s :class:`UniformSource`: ``seed`` for k = 0, ``seed + k * 2**32`` after.

    Segment 0 draws exactly what single-stream generation with ``seed`` draws (so K = 1
    reproduces it); the others never collide with another utterance's segment 0 for
    seeds below 2**32.
    """
    if seed < 0 or k < 0:
        raise ValueError(f"seed and k must be >= 0, got seed={seed}, k={k}")
    return seed + k * 2**32


class FoldVocoder:
    """Fold-and-crossfade generation over gate-conditioning frames with any sampler.

    Args:
        sampler: a :class:`~models.samplers.base.Sampler`; its ``hop_length`` is the hop.
        segment_frames: S, the stride between segment starts (frames).
        overlap_frames: O in ``[0, S)``, the crossfade length (frames). The later segment
            starts from silence, so O should cover the GRU's warm-up (a few hundred samples).
        block_samples: samples per sampler call (segments advance together, block by block).
        fade: ``"equal_power"`` or ``"linear"`` (:func:`fade_curves`).
    """

    def __init__(
        self,
        sampler: Sampler,
        segment_frames: int,
        overlap_frames: int,
        block_samples: int = 2400,
        fade: str = "equal_power",
    ) -> None:
        plan_segments(1, segment_frames, overlap_frames)  # validates S and O
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        fade_curves(0, fade)  # validates the fade
        self.sampler = sampler
        self.hop = sampler.hop_length
        self.segment_frames = segment_frames
        self.overlap_frames = overlap_frames
        self.block_samples = block_samples
        self.fade = fade

    def plan(self, total_frames: int) -> list[Segment]:
        """The segments of a ``total_frames``-frame utterance."""
        return plan_segments(total_frames, self.segment_frames, self.overlap_frames)

    def _check_gates(self, gates: Tensor) -> None:
        hidden = self.sampler.hidden_size
        if gates.ndim != 2 or gates.shape[0] < 1 or gates.shape[1] != 3 * hidden:
            raise ValueError(f"gates must be (T>=1, 3H={3 * hidden}) gate conditioning, got {tuple(gates.shape)}")

    @torch.no_grad()
    def blocks(self, gates: Tensor, seed: int = 0) -> Iterator[tuple[list[np.ndarray], list[int]]]:
        """Generate all segments as one batch, block by block.

        Args:
            gates: (T, 3H) gate conditioning of one utterance.
            seed: the utterance seed; segment ``k`` draws from ``segment_seed(seed, k)``.
        Yields:
            After every sampler call, (buffers, done): per-segment int16 buffers of their
            full lengths, of which the first ``done[k]`` samples are generated. Finished
            segments leave the batch (the last one is shorter).
        """
        self._check_gates(gates)
        plan = self.plan(int(gates.shape[0]))
        hop = self.hop
        lengths = [seg.num_frames * hop for seg in plan]
        slices = [gates[seg.start_frame : seg.end_frame] for seg in plan]  # K x (frames_k, 3H)
        sources = [UniformSource(segment_seed(seed, k)) for k in range(len(plan))]
        buffers = [np.zeros(n, dtype=np.int16) for n in lengths]
        done = [0] * len(plan)
        active = list(range(len(plan)))
        state = SamplerState.initial(len(plan), self.sampler.hidden_size, gates.device)
        while active:
            pos = done[active[0]]  # active segments advance together
            n = min(self.block_samples, *(lengths[k] - pos for k in active))
            window = stack_windows([conditioning_window(slices[k], pos, n, hop) for k in active])  # (B, F, 3H)
            pcm, state = self.sampler.generate(state, window, draw_batch([sources[k] for k in active], n))
            for row, k in enumerate(active):
                buffers[k][pos : pos + n] = pcm[row].cpu().numpy()
                done[k] = pos + n
            keep = [row for row, k in enumerate(active) if done[k] < lengths[k]]
            if len(keep) < len(active) and keep:
                state = state.select(keep)
            active = [active[row] for row in keep]
            yield buffers, done

    def generate_segments(self, gates: Tensor, seed: int = 0) -> list[np.ndarray]:
        """Raw per-segment PCM (before crossfading), int16 (num_frames_k * hop,) each."""
        result: list[np.ndarray] = []
        for buffers, _ in self.blocks(gates, seed):
            result = buffers
        return result

    def stream(self, gates: Tensor, seed: int = 0) -> Iterator[np.ndarray]:
        """Yield the crossfaded utterance in order, each sample as soon as it is final.

        A sample is final once every segment covering it has generated it, so segment 0's
        samples stream block by block (first audio as early as single-stream generation)
        and the later segments arrive with the last blocks.
        """
        self._check_gates(gates)
        plan = self.plan(int(gates.shape[0]))
        hop = self.hop
        total = plan[-1].end_frame * hop
        emitted = 0
        for buffers, done in self.blocks(gates, seed):
            ready = min(
                (seg.start_frame * hop + done[k] for k, seg in enumerate(plan) if done[k] < seg.num_frames * hop),
                default=total,
            )
            if ready > emitted:
                yield join_range(buffers, plan, hop, emitted, ready, self.fade)
                emitted = ready

    def generate(self, gates: Tensor, seed: int = 0) -> np.ndarray:
        """The whole utterance: gates (T, 3H) -> int16 (T * hop,)."""
        return np.concatenate(list(self.stream(gates, seed))).astype(np.int16)
