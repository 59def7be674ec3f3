"""Pitch-synchronous randomness: in voiced speech, each sample's uniforms repeat those one pitch
period earlier.

Every sampler draws sample ``t`` by inverse CDF from the uniforms ``u[t]`` (coarse, fine), which
are an input (:mod:`models.samplers.base`). With independent uniforms the network, sampling on its
own, loses the periodicity of voiced speech within a few samples (docs/quality.md sections 9 and
16). :class:`PitchSyncUniforms` keeps the stream of :class:`~models.samplers.base.UniformSource`
but, at every sample ``t`` inside a voiced frame, replaces ``u[t]`` with ``u[t - P(t)]``, where
``P(t)`` is the pitch period there (rounded to whole samples). A network whose state is close to
what it was one period earlier then makes the same draws as it made then, so the period repeats;
where the state has moved on, the draws still come from the network's own distributions. The
samples are always the network's: only the randomness is shared across periods, and nothing
changes in unvoiced frames (there the uniforms are exactly the plain source's).

Periods come per conditioning frame (:meth:`models.pitch.MelPitchTracker.periods`, 0 =
unvoiced), appended chunk by chunk as the frames arrive. The period at sample ``t`` is that of
frame ``i = t // hop`` and ``i + 1`` linearly interpolated when both are voiced, the nearer
frame's when one is, none when neither is (frame ``i`` is centred on sample ``i * hop``, as in the
conditioning); past the last frame appended, the last frame's period holds. Like
``UniformSource``, draws in blocks of any sizes give the same numbers as one draw, provided no
draw reaches past frame ``i + 1`` before the periods of frame ``i + 1`` are appended: the engine
draws a block only once its conditioning window (which includes the next frame) has arrived, or
after the input is final, when samples past the end are cut off anyway.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from models.samplers.base import UniformSource


def check_pitch_sync(value: object) -> bool:
    """A pitch-synchronous sampling switch as bool, or ValueError: it must be true or false."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"pitch_sync must be true or false, got {value!r}")
    return bool(value)


class PitchSyncUniforms:
    """Seeded uniforms for one stream that repeat once per pitch period in voiced frames.

    Args:
        seed: seed of the underlying :class:`UniformSource`.
        hop: samples per conditioning frame.
        max_period: the longest period (samples) that may be appended.
    """

    def __init__(self, seed: int, hop: int, max_period: int = 1024) -> None:
        if hop < 1 or max_period < 2:
            raise ValueError(f"need hop >= 1 and max_period >= 2, got hop={hop}, max_period={max_period}")
        self.base = UniformSource(seed)
        self.seed = self.base.seed
        self.hop = hop
        self.max_period = max_period
        self._periods = np.zeros(0)  # (T,) per frame, 0 = unvoiced
        self._history = np.zeros((0, 2), dtype=np.float32)  # the last <= max_period final uniforms
        self._position = 0  # index of the next sample to draw

    def add_periods(self, periods: np.ndarray) -> None:
        """Append the pitch periods (samples, 0 = unvoiced) of the next frames."""
        p = np.asarray(periods, dtype=np.float64)
        if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError("periods must be a 1-D array of finite values >= 0 (0 = unvoiced)")
        if np.any((p > 0) & (p < 2)) or np.any(p > self.max_period):
            raise ValueError(f"voiced periods must lie in [2, {self.max_period}] samples, got "
                             f"{float(p[p > 0].min())} to {float(p.max())}")
        self._periods = np.concatenate([self._periods, p])

    def sample_periods(self, start: int, n: int) -> np.ndarray:
        """(n,) int64 period of samples ``start .. start + n - 1`` (0 = unvoiced)."""
        frames = self._periods.shape[0]
        if n < 0 or start < 0:
            raise ValueError(f"need start >= 0 and n >= 0, got start={start}, n={n}")
        t = np.arange(start, start + n)
        i = t // self.hop
        a = (t % self.hop) / self.hop
        p0 = self._periods[np.minimum(i, frames - 1)] if frames else np.zeros(n)
        p1 = self._periods[np.minimum(i + 1, frames - 1)] if frames else np.zeros(n)
        both = (p0 > 0) & (p1 > 0)
        period = np.where(both, (1 - a) * p0 + a * p1, np.where(a < 0.5, p0, p1))
        return np.rint(period).astype(np.int64)

    def draw(self, n: int) -> Tensor:
        """(n, 2) float32 uniforms in [0, 1) for the next ``n`` samples."""
        u = self.base.draw(n).numpy()  # (n, 2), always drawn so unvoiced samples match the plain source
        period = self.sample_periods(self._position, n)
        buf = np.concatenate([self._history, u])  # (h + n, 2): past final uniforms, then this block
        off = self._history.shape[0]
        voiced = np.flatnonzero(period > 0)
        # a copy reads a sample at least min(period) back: slices that short never read their own writes
        k = 0
        while k < voiced.size:
            step = int(period[voiced[k:]].min())
            end = voiced[k] + step
            sel = voiced[k : k + int(np.searchsorted(voiced[k:], end))]
            src = off + sel - period[sel]
            ok = src >= 0  # before the stream's first sample there is nothing to repeat
            buf[off + sel[ok]] = buf[src[ok]]
            k += sel.size
        self._history = buf[-self.max_period :].copy()
        self._position += n
        return torch.from_numpy(np.ascontiguousarray(buf[off:]))


def pitch_sync_reference(u: np.ndarray, period: np.ndarray) -> np.ndarray:
    """The readable definition: ``u[t] = u[t - period[t]]`` in order, for every voiced ``t``.

    Args:
        u: (n, 2) independent uniforms; period: (n,) int periods, 0 = unvoiced.
    Returns:
        (n, 2) the pitch-synchronous uniforms.
    """
    out = np.array(u, copy=True)
    for t in range(out.shape[0]):
        p = int(period[t])
        if p > 0 and t - p >= 0:
            out[t] = out[t - p]
    return out
