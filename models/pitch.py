"""Pitch from log-mel frames: which frames are voiced, and their pitch period in samples.

The voices are conditioned on log-mel frames only, but the lowest mel bands are narrow enough
(about 42 Hz apart below 1 kHz for the 80-band, 24 kHz recipe) to show the harmonics of a voiced
frame as a ripple across the bands. :class:`MelPitchTracker` reads the pitch off that ripple:

1. **Templates.** For each candidate F0 on a grid of ``per_octave`` steps per octave between
   ``fmin`` and ``fmax``, a tone of equal-amplitude harmonics up to 4 kHz is analysed by
   :func:`models.features.log_mel` itself, so the template has exactly the smearing of the
   window and the filterbank that real frames have.
2. **Ripple.** Frames and templates are whitened: each log-mel band minus the mean of the
   ``smooth_bands`` bands around it, so the spectral envelope (the formants, the loudness) drops
   out and the harmonic ripple is left. Only bands centred between 50 Hz and ``max_band_hz``
   are used: higher up the bands are wider than the harmonics are apart.
3. **Score.** The correlation of a frame's ripple with each template's, in [-1, 1].
4. **Track.** A Viterbi pass over the frames chooses, per frame, one candidate or "unvoiced":
   a voiced frame earns its score, an unvoiced frame earns ``voicing_threshold``; a change of
   pitch costs ``jump_cost`` per semitone, and switching between voiced and unvoiced costs
   ``switch_cost``. Frames more than ``quiet_db`` below the loudest frame of the call are
   unvoiced whatever their score, so silence and breath are never given a pitch.

It is used by :mod:`models.samplers.pitch_sync` to make the sampler's randomness repeat once per
pitch period. Measured against pYIN on real speech (docs/quality.md section 16).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import njit

from models.config import FeatureConfig
from models.features import log_mel, mel_filterbank


@dataclass(frozen=True)
class PitchConfig:
    """The tracker's settings (the defaults are the measured ones)."""

    fmin: float = 60.0
    """Lowest F0 candidate (Hz)."""
    fmax: float = 400.0
    """Highest F0 candidate (Hz)."""
    per_octave: int = 48
    """Candidates per octave (48: a quarter of a semitone apart)."""
    max_band_hz: float = 2000.0
    """Only mel bands centred below this carry the harmonic ripple used."""
    smooth_bands: int = 5
    """Width (bands) of the moving average taken off each band to leave the ripple."""
    voicing_threshold: float = 0.5
    """Correlation a frame must beat, net of the path's costs, to be voiced."""
    jump_cost: float = 0.5
    """Cost of a change of pitch between frames, per semitone."""
    switch_cost: float = 0.1
    """Cost of switching between voiced and unvoiced."""
    quiet_db: float = 30.0
    """Frames this far below the loudest frame of a call are unvoiced."""

    def __post_init__(self) -> None:
        if not 0.0 < self.fmin < self.fmax:
            raise ValueError(f"pitch range must satisfy 0 < fmin < fmax, got fmin={self.fmin}, fmax={self.fmax}")
        if self.per_octave < 1 or self.smooth_bands < 1:
            raise ValueError("per_octave and smooth_bands must be >= 1")
        if self.quiet_db <= 0.0:
            raise ValueError(f"quiet_db must be > 0, got {self.quiet_db}")


def _whiten(lm: np.ndarray, width: int) -> np.ndarray:
    """Each band (last axis) minus the mean of the ``width`` bands around it (edges repeated)."""
    half = width // 2
    padded = np.pad(lm, [(0, 0)] * (lm.ndim - 1) + [(half, width - 1 - half)], mode="edge")
    csum = np.cumsum(np.pad(padded, [(0, 0)] * (lm.ndim - 1) + [(1, 0)]), axis=-1)
    smooth = (csum[..., width:] - csum[..., :-width]) / width
    return lm - smooth


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


@functools.lru_cache(maxsize=8)
def _templates(cfg: FeatureConfig, pitch: PitchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F0 candidates (C,), band indices used (K,), unit-norm whitened templates (C, K))."""
    fb = mel_filterbank(cfg)  # (M, F)
    freqs = np.arange(fb.shape[1]) * cfg.sample_rate / cfg.n_fft
    centre = (fb * freqs).sum(axis=1) / np.maximum(fb.sum(axis=1), 1e-12)  # (M,)
    bands = np.flatnonzero((centre > 50.0) & (centre < pitch.max_band_hz))
    if bands.size < 3:
        raise ValueError(f"the feature config has {bands.size} mel bands between 50 Hz and {pitch.max_band_hz} Hz; "
                         "pitch tracking needs at least 3")
    steps = int(np.floor(np.log2(pitch.fmax / pitch.fmin) * pitch.per_octave))
    f0s = pitch.fmin * 2.0 ** (np.arange(steps + 1) / pitch.per_octave)  # (C,)
    n = 2 * cfg.n_fft
    t = np.arange(n) / cfg.sample_rate
    phases = np.random.default_rng(0).uniform(0.0, 2.0 * np.pi, size=int(4000.0 / pitch.fmin) + 1)
    rows = []
    for f0 in f0s:
        k = np.arange(1, int(min(4000.0, cfg.sample_rate / 2 - 1) / f0) + 1)  # (H,) harmonic numbers
        tone = np.cos(2.0 * np.pi * f0 * np.outer(k, t) + phases[: k.size, None]).sum(axis=0)  # (n,)
        frames = log_mel((0.01 * tone).astype(np.float32), cfg)  # (T, M)
        rows.append(frames[frames.shape[0] // 2])
    templates = _unit_rows(_whiten(np.array(rows, dtype=np.float64), pitch.smooth_bands)[:, bands])  # (C, K)
    return f0s, bands, templates


def viterbi_reference(gain: np.ndarray, move: np.ndarray, switch_cost: float) -> np.ndarray:
    """The best path through C voiced states and one unvoiced state (the last).

    Args:
        gain: (T, C + 1) what each frame earns in each state (-inf: not allowed).
        move: (C, C) what moving from one voiced state to another costs (<= 0), from -> to.
        switch_cost: what switching between voiced and unvoiced costs.
    Returns:
        (T,) int64 state per frame; ties go to the lowest voiced state, and to staying unvoiced.
    """
    frames, c = gain.shape[0], gain.shape[1] - 1
    total = gain[0].copy()  # best path score ending in each state
    back = np.zeros((frames, c + 1), dtype=np.int64)
    for i in range(1, frames):
        voiced_from = total[:c, None] + move  # (C, C)
        best_v = voiced_from.argmax(axis=0)  # (C,)
        via_v = voiced_from[best_v, np.arange(c)]
        via_u = total[c] - switch_cost
        take_u = via_u > via_v
        back[i, :c] = np.where(take_u, c, best_v)
        new = np.empty(c + 1)
        new[:c] = np.where(take_u, via_u, via_v)
        from_v = total[:c].argmax()
        stay_u = total[c]
        back[i, c] = c if stay_u >= total[from_v] - switch_cost else from_v
        new[c] = max(stay_u, total[from_v] - switch_cost)
        total = new + gain[i]
    state = np.empty(frames, dtype=np.int64)
    state[-1] = int(total.argmax())
    for i in range(frames - 1, 0, -1):
        state[i - 1] = back[i, state[i]]
    return state


@njit(cache=True, nogil=True)
def _track_compiled(ripple: np.ndarray, templates: np.ndarray, quiet: np.ndarray, step: float,
                    threshold: float, switch_cost: float) -> np.ndarray:  # pragma: no cover - compiled
    """:meth:`MelPitchTracker.scores` and :func:`viterbi_reference` in one compiled pass, state per frame,
    for the moves ``-step * |k - j|`` between neighbouring candidates on the grid (O(C) per frame)."""
    frames, k = ripple.shape
    c = templates.shape[0]
    by_band = np.ascontiguousarray(templates.T)  # (K, C): the inner loop runs along candidates
    gain = np.zeros((frames, c + 1))
    for i in range(frames):
        for m in range(k):
            r = ripple[i, m]
            for j in range(c):
                gain[i, j] += r * by_band[m, j]
        if quiet[i]:
            gain[i, :c] = -np.inf
        gain[i, c] = threshold
    total = gain[0].copy()
    new = np.empty(c + 1)
    back = np.zeros((frames, c + 1), dtype=np.int64)
    fwd = np.empty(c, dtype=np.int64)
    for i in range(1, frames):
        via_u = total[c] - switch_cost
        # move[j, k] = -step * |k - j|: the best j <= k is k or the best j for k - 1 (a forward scan),
        # the best j >= k likewise backwards; ties keep the lower j, as argmax does
        arg = 0
        for to in range(c):
            if total[to] + -(step * 0.0) > total[arg] + -(step * (to - arg)):
                arg = to
            fwd[to] = arg
        arg = c - 1
        for to in range(c - 1, -1, -1):
            if total[to] >= total[arg] + -(step * (arg - to)):
                arg = to
            j = fwd[to]
            best_f = total[j] + -(step * (to - j))
            best_b = total[arg] + -(step * (arg - to))
            best, barg = (best_b, arg) if best_b > best_f else (best_f, j)
            if via_u > best:
                back[i, to], new[to] = c, via_u
            else:
                back[i, to], new[to] = barg, best
        from_v = 0
        for fr in range(1, c):
            if total[fr] > total[from_v]:
                from_v = fr
        if total[c] >= total[from_v] - switch_cost:
            back[i, c], new[c] = c, total[c]
        else:
            back[i, c], new[c] = from_v, total[from_v] - switch_cost
        for j in range(c + 1):
            total[j] = new[j] + gain[i, j]
    state = np.empty(frames, dtype=np.int64)
    best_s = 0
    for j in range(1, c + 1):
        if total[j] > total[best_s]:
            best_s = j
    state[frames - 1] = best_s
    for i in range(frames - 1, 0, -1):
        state[i - 1] = back[i, state[i]]
    return state


class MelPitchTracker:
    """F0 and pitch periods of log-mel frames (see the module docstring)."""

    def __init__(self, cfg: FeatureConfig, pitch: PitchConfig | None = None) -> None:
        self.cfg = cfg
        self.pitch = pitch or PitchConfig()
        self.f0s, self.bands, self.templates = _templates(cfg, self.pitch)

    @property
    def max_period(self) -> int:
        """The longest period :meth:`periods` can give (samples, rounded up)."""
        return int(np.ceil(self.cfg.sample_rate / self.f0s.min()))

    def scores(self, mel: np.ndarray) -> np.ndarray:
        """(T, C) correlation of each frame's harmonic ripple with each candidate's."""
        # einsum's own loop, not BLAS: a multi-threaded BLAS would compete with a server's sampler threads
        return np.einsum("tk,ck->tc", self._ripple(self._check(mel)), self.templates)

    def _quiet(self, mel: np.ndarray) -> np.ndarray:
        """(T,) bool: frames more than ``quiet_db`` below the loudest, by their bands' summed magnitude."""
        ln = mel[:, self.bands].astype(np.float64) * (np.log(10.0) if self.cfg.log_base == "10" else 1.0)
        top = ln.max(axis=1, keepdims=True)  # (T, 1): a log-sum-exp that cannot overflow
        level = top[:, 0] + np.log(np.exp(ln - top).sum(axis=1))  # (T,) natural log of the magnitude
        return level < level.max() - self.pitch.quiet_db * np.log(10.0) / 20.0

    def _ripple(self, mel: np.ndarray) -> np.ndarray:
        """(T, K) unit-norm whitened bands of the frames."""
        return _unit_rows(_whiten(mel.astype(np.float64), self.pitch.smooth_bands)[:, self.bands])

    def f0(self, mel: np.ndarray, fast: bool = True) -> np.ndarray:
        """(T,) F0 in Hz of each frame, 0 where unvoiced.

        ``fast`` runs the scores and the Viterbi pass compiled (:func:`_track_compiled`, numba,
        without the GIL); else :meth:`scores` and :func:`viterbi_reference` in numpy, the readable
        reference (parity: ``tests/models/test_pitch.py``).
        """
        mel = self._check(mel)
        if mel.shape[0] == 0:
            return np.zeros(0)
        p = self.pitch
        c = self.f0s.shape[0]
        step = p.jump_cost * 12.0 / p.per_octave  # the cost of one step of the candidate grid
        grid = np.arange(c)
        move = -(step * np.abs(grid[None, :] - grid[:, None]).astype(np.float64))  # (C, C) from -> to
        quiet = self._quiet(mel)
        if fast:
            state = _track_compiled(self._ripple(mel), self.templates, quiet, step, p.voicing_threshold, p.switch_cost)
        else:
            gain = np.concatenate([self.scores(mel), np.full((mel.shape[0], 1), p.voicing_threshold)], axis=1)
            gain[quiet, :c] = -np.inf
            state = viterbi_reference(gain, move, p.switch_cost)
        return np.where(state < c, self.f0s[np.minimum(state, c - 1)], 0.0)

    def periods(self, mel: np.ndarray) -> np.ndarray:
        """(T,) pitch period of each frame in samples at the feature rate (float), 0 where unvoiced."""
        f0 = self.f0(mel)
        return np.where(f0 > 0, self.cfg.sample_rate / np.where(f0 > 0, f0, 1.0), 0.0)

    def _check(self, mel: np.ndarray) -> np.ndarray:
        mel = np.asarray(mel)
        if mel.ndim != 2 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"log-mel frames must be (T, {self.cfg.n_mels}), got shape {mel.shape}")
        if not np.all(np.isfinite(mel)):
            raise ValueError("log-mel frames hold NaN or inf values")
        return mel
