"""Pitch (long-term) post-filter: a comb at the pitch period, to thin the noise between harmonics.

In voiced frames the output is

    y[n] = (1 - g) x[n] + g y[n - P(n)]

an IIR comb whose peaks sit on the harmonics of 1 / P: it passes them at unit gain and scales the
noise half-way between them by ``(1 - g) / (1 + g)`` (0.11 at g = 0.8, -19 dB). ``P(n)`` is the
pitch period of the frames around ``n`` (:meth:`models.pitch.MelPitchTracker.periods`),
interpolated linearly between frame centres, as a fractional delay read by linear interpolation;
``g`` fades linearly to 0 across a frame next to an unvoiced one, and unvoiced stretches pass
unchanged. Speech codecs call this the long-term post-filter. Here it runs after the sampler and
before the spectral-envelope post-filter (:mod:`models.postfilter`), which then restores each
band's level.

:func:`comb_reference` is the readable per-sample loop; :class:`StreamingComb` gives the same
samples block by block with no delay, vectorised over runs shorter than the shortest period
(parity: ``tests/models/test_comb.py``). Measured in docs/quality.md section 16.
"""

from __future__ import annotations

import numpy as np


def check_comb_gain(value: object) -> float:
    """A valid comb gain as float, or ValueError: a number in [0, 0.95] (0: off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 0.95:
        raise ValueError(f"comb gain must be a number in [0, 0.95] (0: off), got {value!r}")
    return float(value)


def sample_delays(periods: np.ndarray, hop: int, gain: float, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample delay (samples) and comb gain of samples ``start .. start + n - 1``.

    Frame ``i`` is centred on sample ``i * hop``; between two centres both are linearly
    interpolated. An unvoiced frame has gain 0 and, for the interpolation, the period of a voiced
    neighbour (the previous frame's, else the next one's), so a delay never ramps through 0. Past the
    last frame its values hold.

    Args:
        periods: (T,) frame periods in samples, 0 = unvoiced.
    Returns:
        ``(delay, g)``, each (n,) float64; the delay only matters where ``g > 0``.
    """
    frames = periods.shape[0]
    if n == 0 or frames == 0:
        return np.full(n, 2.0), np.zeros(n)
    lo = min(start // hop, frames - 1)
    hi = min((start + n - 1) // hop + 1, frames - 1)
    p = periods[max(lo - 1, 0) : hi + 2]  # the frames read, and their neighbours
    first = max(lo - 1, 0)
    prev = np.concatenate([[0.0], p[:-1]])
    nxt = np.concatenate([p[1:], [0.0]])
    filled = np.where(p > 0, p, np.where(prev > 0, prev, np.where(nxt > 0, nxt, 2.0)))
    sel = slice(lo - first, hi - first + 1)
    centres = np.arange(lo, hi + 1, dtype=np.float64) * hop
    t = np.arange(start, start + n, dtype=np.float64)
    delay = np.interp(t, centres, filled[sel])
    g = gain * np.interp(t, centres, (p[sel] > 0).astype(np.float64))
    return delay, g


def comb_reference(x: np.ndarray, periods: np.ndarray, hop: int, gain: float) -> np.ndarray:
    """The whole-utterance comb, one sample at a time (the readable definition).

    Args:
        x: (n,) float samples; periods: (T,) frame periods (0 = unvoiced); hop: samples per frame.
    Returns:
        (n,) float64.
    """
    gain = check_comb_gain(gain)
    x = np.asarray(x, dtype=np.float64)
    delay, g = sample_delays(np.asarray(periods, dtype=np.float64), hop, gain, 0, x.shape[0])
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        prev = 0.0
        if g[t] > 0:
            d = t - delay[t]
            i = int(np.floor(d))
            a = d - i
            if i >= 0:
                prev = (1 - a) * y[i] + a * y[i + 1]
        y[t] = (1 - g[t]) * x[t] + g[t] * prev
    return y


class StreamingComb:
    """The comb over blocks: :meth:`add_periods` as frames arrive, :meth:`push` samples in order.

    Gives :func:`comb_reference`'s samples (to float rounding) for any block sizes, provided the
    periods of the frames a block reaches, and of the next frame, were added before it (as the
    engine does: the periods come with the frames, and a block is generated only once its
    conditioning window, which includes the next frame, has arrived).
    """

    def __init__(self, hop: int, gain: float, max_period: int) -> None:
        if hop < 1 or max_period < 2:
            raise ValueError(f"need hop >= 1 and max_period >= 2, got hop={hop}, max_period={max_period}")
        self.hop = hop
        self.gain = check_comb_gain(gain)
        self.max_period = max_period
        self._periods = np.zeros(0)
        self._history = np.zeros(0)  # the last <= max_period + 2 output samples
        self._position = 0

    def add_periods(self, periods: np.ndarray) -> None:
        """Append the next frames' pitch periods (samples, 0 = unvoiced)."""
        p = np.asarray(periods, dtype=np.float64)
        if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > self.max_period):
            raise ValueError(f"periods must be a 1-D array of values in [0, {self.max_period}] (0 = unvoiced)")
        if np.any((p > 0) & (p < 2)):
            raise ValueError("voiced periods must be at least 2 samples")
        self._periods = np.concatenate([self._periods, p])

    def push(self, x: np.ndarray) -> np.ndarray:
        """Filter the next ``len(x)`` samples; returns them (float64), no delay."""
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        delay, g = sample_delays(self._periods, self.hop, self.gain, self._position, n)
        off = self._history.shape[0]
        buf = np.concatenate([self._history, np.zeros(n)])  # (off + n,)
        active = g > 0
        # a run shorter than the shortest delay reads only samples from before the run
        run = max(1, int(np.floor(delay[active].min())) - 1) if active.any() else n
        k = 0
        while k < n:
            e = min(n, k + run)
            t = np.arange(k, e)
            d = off + t - delay[k:e]
            i = np.floor(d).astype(np.int64)
            a = d - i
            ok = (g[k:e] > 0) & (i >= 0)
            prev = np.zeros(e - k)
            prev[ok] = (1 - a[ok]) * buf[i[ok]] + a[ok] * buf[i[ok] + 1]
            buf[off + k : off + e] = (1 - g[k:e]) * x[k:e] + g[k:e] * prev
            k = e
        self._history = buf[-(self.max_period + 2) :].copy()
        self._position += n
        return buf[off:].copy()
