"""What every sampler shares: the protocol, the carried state, conditioning windows and randomness.

Callers (the vocoder, the service engine, benchmarks) depend on :class:`Sampler` only.
Randomness is an input: ``uniforms`` (B, n, 2) float32 in [0, 1), column 0 for the coarse
draw and column 1 for the fine draw of each step, so every fast path can be checked against
the reference on identical inputs. :class:`UniformSource` produces them from a seed such
that drawing in blocks of any sizes gives the same numbers as one draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from models.wavernn import SILENCE_COARSE, SILENCE_FINE


@dataclass
class SamplerState:
    """State carried across blocks, one row per stream.

    Attributes:
        h: (B, H) float32 hidden vector.
        coarse: (B,) int64 last coarse class (128 before any audio).
        fine: (B,) int64 last fine class (0 before any audio).
        position: (B,) int64 index of the next sample to generate, which fixes the
            conditioning position (frame ``position // hop``, phase ``position % hop``).
    """

    h: Tensor
    coarse: Tensor
    fine: Tensor
    position: Tensor

    @classmethod
    def initial(cls, batch: int, hidden_size: int, device: torch.device | str = "cpu") -> SamplerState:
        """Zero state, silence as the previous sample, at position 0."""
        return cls(
            h=torch.zeros(batch, hidden_size, device=device),
            coarse=torch.full((batch,), SILENCE_COARSE, dtype=torch.long, device=device),
            fine=torch.full((batch,), SILENCE_FINE, dtype=torch.long, device=device),
            position=torch.zeros(batch, dtype=torch.long, device=device),
        )

    @property
    def batch(self) -> int:
        return int(self.h.shape[0])

    def select(self, index: list[int] | Tensor) -> SamplerState:
        """The rows ``index`` (used when streams leave a batch)."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.h.device)
        return SamplerState(self.h[idx], self.coarse[idx], self.fine[idx], self.position[idx])

    @staticmethod
    def concat(states: list[SamplerState]) -> SamplerState:
        """Stack streams (used when streams join a batch)."""
        if not states:
            raise ValueError("concat needs at least one SamplerState")
        return SamplerState(
            torch.cat([s.h for s in states]),
            torch.cat([s.coarse for s in states]),
            torch.cat([s.fine for s in states]),
            torch.cat([s.position for s in states]),
        )


class Sampler(Protocol):
    """Generates 16-bit samples block by block for a batch of streams.

    Called by the vocoder and the engine's device worker (never on an event loop).
    """

    hidden_size: int
    hop_length: int

    def generate(self, state: SamplerState, cond: Tensor, uniforms: Tensor) -> tuple[Tensor, SamplerState]:
        """Advance every stream by n samples.

        Args:
            state: carried state of B streams.
            cond: (B, F, 3H) float32 gate-conditioning window (see :func:`conditioning_window`):
                row 0 of stream b is global frame ``state.position[b] // hop``.
            uniforms: (B, n, 2) float32 random draws in [0, 1).
        Returns:
            pcm (B, n) int16 and the new state (positions advanced by n).
        """
        ...


def window_frames(start: int, n_samples: int, hop: int) -> tuple[int, int]:
    """Frames ``[first, last)`` that samples ``[start, start + n_samples)`` read.

    Sample ``s`` interpolates frames ``s // hop`` and ``s // hop + 1``.
    """
    if n_samples < 1 or start < 0:
        raise ValueError(f"need start >= 0 and n_samples >= 1, got start={start}, n_samples={n_samples}")
    return start // hop, (start + n_samples - 1) // hop + 2


def conditioning_window(gate_frames: Tensor, start: int, n_samples: int, hop: int) -> Tensor:
    """The slice of one utterance's gate conditioning that a block reads.

    Args:
        gate_frames: (T, 3H) frame-level gate conditioning of one utterance.
        start: global index of the block's first sample.
        n_samples: block length.
        hop: samples per frame.
    Returns:
        (F, 3H) with F = frames the block reads; frames past the end repeat the last one,
        as :func:`models.wavernn.upsample_frames` does.
    """
    first, last = window_frames(start, n_samples, hop)
    t = gate_frames.shape[0]
    if first >= t:
        raise ValueError(f"block starting at sample {start} is past the utterance end ({t} frames x {hop})")
    idx = torch.arange(first, last, device=gate_frames.device).clamp(max=t - 1)
    return gate_frames[idx]


def stack_windows(windows: list[Tensor]) -> Tensor:
    """Stack per-stream windows (F_b, 3H) into (B, max F, 3H), repeating each last frame."""
    f_max = max(w.shape[0] for w in windows)
    padded = [torch.cat([w, w[-1:].expand(f_max - w.shape[0], -1)]) for w in windows]
    return torch.stack(padded)


def sample_classes(logits: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: the first class whose cumulative probability exceeds u.

    Counting the classes with ``cdf <= u`` gives that index, and never picks a class of
    zero probability (even for ``u = 0``).

    Args:
        logits: (B, 256).
        u: (B,) uniform draws in [0, 1).
    Returns:
        (B,) int64 classes in 0..255.
    """
    cdf = torch.cumsum(torch.softmax(logits, dim=-1), dim=-1)  # (B, 256)
    idx = (cdf <= u.unsqueeze(-1)).sum(dim=-1)
    return idx.clamp(max=logits.shape[-1] - 1)


class UniformSource:
    """Seeded uniform draws for one stream; blocks of any sizes give the same sequence.

    Uses numpy's PCG64, whose ``random`` fills doubles sequentially, so ``draw(a)`` then
    ``draw(b)`` equals the first ``a + b`` rows of one ``draw(a + b)``.
    """

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))

    def draw(self, n: int) -> Tensor:
        """(n, 2) float32 uniforms in [0, 1)."""
        return torch.from_numpy(self._rng.random((n, 2)).astype(np.float32))


class Uniforms(Protocol):
    """A stream's source of uniforms (:class:`UniformSource`, or
    :class:`~models.samplers.pitch_sync.PitchSyncUniforms`)."""

    def draw(self, n: int) -> Tensor:
        """(n, 2) float32 uniforms in [0, 1) for the stream's next ``n`` samples."""
        ...


def draw_batch(sources: Sequence[Uniforms], n: int) -> Tensor:
    """(B, n, 2) uniforms, one row per stream's own source."""
    return torch.stack([s.draw(n) for s in sources])
