"""Spectral-envelope post-filter: pull the vocoder's output onto the log-mel it was asked for.

A WaveRNN that has not trained long enough follows its conditioning only loosely: loudness and
the first harmonics come out, the formants that carry the words mostly do not. The features it
was conditioned on say what each frame's mel spectrum should be, so the output can be corrected
frame by frame:

1. frame ``i`` of the output is analysed exactly as :func:`models.features.log_mel` analyses
   audio (centred frames every ``hop_length`` samples, the padded Hann window, the Slaney mel
   filterbank, magnitudes clamped at ``log_floor``);
2. each mel band gets the gain ``target / measured`` (the log-mel difference, exponentiated),
   limited to ``max_gain_db`` either way;
3. each STFT bin is scaled by the filterbank-weighted mean of the gains of the bands it lies
   in (a bin above every band by the nearest band's gain; a bin below the lowest band, under
   ``fmin``, of which the features say nothing, by 0), and the frames are overlap-added back
   with the same window (weighted overlap-add, divided by the summed squared window).

Removing what lies below ``fmin`` matters: the network's own output wanders slowly around an
offset. Served with the nearest band's gain there, its 0-10 Hz band held a median -15 dB of the
signal's energy, against -46 dB in the recordings it copied (docs/quality.md section 17).

The phase, the harmonics within a band and the fine time structure stay the network's. The gain
limit bounds what the filter may do: it can restore a formant the network made 20 dB too weak,
but not turn silence into speech.

:func:`envelope_postfilter` is the readable whole-utterance reference. :class:`StreamingPostFilter`
gives the same samples block by block for a vocoder that streams, less than ``win_length`` samples
(50 ms) behind what it was given, or ``n_fft / 2`` before the first samples come out (parity:
``tests/models/test_postfilter.py``).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse

from models.config import FeatureConfig
from models.features import mel_filterbank

#: Default limit of the per-band gain, either way (dB).
DEFAULT_MAX_GAIN_DB = 20.0


def check_max_gain_db(value: object) -> float:
    """A valid ``max_gain_db`` as float, or ValueError saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 60.0:
        raise ValueError(f"post-filter max_gain_db must be a number in (0, 60] dB, got {value!r}")
    return float(value)


def postfilter_gain_db(value: object) -> float | None:
    """A requested post-filter setting: None or 0 means off (None); else a valid ``max_gain_db``."""
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0):
        return None
    try:
        return check_max_gain_db(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; 0 turns the post-filter off") from None


class _Analysis:
    """The framing constants of one feature config, and the per-frame correction."""

    def __init__(self, cfg: FeatureConfig, max_gain_db: float) -> None:
        self.cfg = cfg
        self.hop = cfg.hop_length
        self.left = cfg.n_fft // 2  # frame i covers padded[i * hop : i * hop + n_fft]
        win = np.hanning(cfg.win_length + 1)[:-1]  # periodic Hann, as torch.hann_window
        lo = (cfg.n_fft - cfg.win_length) // 2
        self.window = np.zeros(cfg.n_fft)  # (n_fft,)
        self.window[lo : lo + cfg.win_length] = win
        self.fb = mel_filterbank(cfg).astype(np.float64)  # (M, F)
        weight = self.fb.sum(axis=0)  # (F,)
        covered = np.flatnonzero(weight > 0)
        if covered.size == 0:
            raise ValueError("the feature config's mel filterbank covers no STFT bin; no post-filter is possible")
        # bins above every band take the gain of the nearest covered bin; bins below the lowest band
        # (under fmin, of which the features say nothing) are removed: there the network's output is
        # a slowly wandering offset, not speech (docs/quality.md section 17)
        nearest = covered[np.abs(np.arange(weight.size)[:, None] - covered[None, :]).argmin(axis=1)]  # (F,)
        self.spread = (self.fb[:, nearest] / weight[nearest]).T  # (F, M): bin gain = spread @ band gains
        self.spread[: covered[0]] = 0.0
        # both matrices are mostly zeros (a band spans a few bins): sparse products, which also keep
        # the multi-threaded BLAS out of a server's worker threads
        self._fb_sparse = scipy.sparse.csr_matrix(self.fb)  # (M, F)
        self._spread_sparse = scipy.sparse.csr_matrix(self.spread)  # (F, M)
        self.log_limit = float(max_gain_db) / 20.0 * np.log(10.0)  # natural-log magnitude ratio
        self.ln_base = 1.0 if cfg.log_base == "e" else np.log(10.0)  # target log -> natural log

    def correct(self, frames: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(k, n_fft) unwindowed frames, (k, M) target log-mels -> (k, n_fft) corrected, windowed frames."""
        spec = np.fft.rfft(frames * self.window, axis=1)  # (k, F)
        measured = np.log(np.maximum((self._fb_sparse @ np.abs(spec).T).T, self.cfg.log_floor))  # (k, M)
        band_gain = np.exp(np.clip(targets * self.ln_base - measured, -self.log_limit, self.log_limit))  # (k, M)
        bin_gain = (self._spread_sparse @ band_gain.T).T  # (k, F)
        out = np.fft.irfft(spec * bin_gain, n=self.cfg.n_fft, axis=1)  # (k, n_fft)
        return out * self.window


@functools.lru_cache(maxsize=8)
def _analysis(cfg: FeatureConfig, max_gain_db: float) -> _Analysis:
    """The (read-only) analysis of one config and limit, built once per process."""
    return _Analysis(cfg, max_gain_db)


def _reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Sample indices of the reflect padding of a signal of length ``n`` (no edge repeat)."""
    idx = np.where(idx < 0, -idx, idx)
    return np.where(idx >= n, 2 * (n - 1) - idx, idx)


def envelope_postfilter(audio: np.ndarray, mel: np.ndarray, cfg: FeatureConfig,
                        max_gain_db: float = DEFAULT_MAX_GAIN_DB) -> np.ndarray:
    """Whole-utterance reference: float audio (n,) in [-1, 1] -> corrected float64 audio (n,).

    Args:
        audio: the vocoder's output, float samples at ``cfg.sample_rate``.
        mel: the log-mel features it was conditioned on, (T, n_mels); frame ``i`` of the audio is
            pulled towards row ``min(i, T - 1)`` (a vocoder turns T frames into T * hop samples,
            whose analysis has T + 1 frames).
        cfg: the voice's feature recipe.
        max_gain_db: largest correction of one band, either way.
    """
    x = np.asarray(audio, dtype=np.float64)
    target = np.asarray(mel, dtype=np.float64)
    if x.ndim != 1 or target.ndim != 2 or target.shape[1] != cfg.n_mels or target.shape[0] == 0:
        raise ValueError(f"envelope_postfilter needs audio (n,) and mel (T, {cfg.n_mels}) with T >= 1, "
                         f"got {x.shape} and {target.shape}")
    an = _analysis(cfg, check_max_gain_db(max_gain_db))
    n = x.shape[0]
    if n == 0:
        return x
    frames_n = n // an.hop + 1
    out = np.zeros(n + cfg.n_fft)  # padded coordinates: sample s sits at s + left
    wsum = np.zeros(n + cfg.n_fft)
    for i in range(frames_n):
        idx = np.arange(i * an.hop - an.left, i * an.hop - an.left + cfg.n_fft)  # (n_fft,) signal indices
        if n > cfg.n_fft - an.left:
            frame = x[_reflect_index(idx, n)]
        else:  # too short to reflect: zeros, as log_mel does
            frame = np.where((idx >= 0) & (idx < n), x[np.clip(idx, 0, n - 1)], 0.0)
        corrected = an.correct(frame[None, :], target[min(i, target.shape[0] - 1)][None, :])[0]
        out[i * an.hop : i * an.hop + cfg.n_fft] += corrected
        wsum[i * an.hop : i * an.hop + cfg.n_fft] += an.window**2
    body = slice(an.left, an.left + n)
    return np.clip(out[body] / np.maximum(wsum[body], 1e-8), -1.0, 1.0)


class StreamingPostFilter:
    """:func:`envelope_postfilter` over a signal and its features that arrive in pieces.

    Feed the target log-mel frames with :meth:`add_target` (before the samples they cover) and
    the vocoder's samples with :meth:`push`, which returns the corrected samples that no later
    frame touches any more; :meth:`flush` returns the rest once the signal is complete. The
    concatenation equals :func:`envelope_postfilter` of the whole signal.
    """

    def __init__(self, cfg: FeatureConfig, max_gain_db: float = DEFAULT_MAX_GAIN_DB) -> None:
        self._an = _analysis(cfg, check_max_gain_db(max_gain_db))
        self.cfg = cfg
        lo = (cfg.n_fft - cfg.win_length) // 2
        # frame i reads (through the window) signal samples [i*hop - left + lo, i*hop - left + lo + win)
        self._first = lo - self._an.left  # first sample a frame reads, relative to i * hop
        self._last = self._first + cfg.win_length  # one past its last
        self._targets: list[np.ndarray] = []
        self._target_rows = 0
        self._x = np.zeros(0)  # received samples from offset _x0
        self._x0 = 0
        self._received = 0
        self._acc = np.zeros(0)  # overlap-add sums from signal sample _a0
        self._wacc = np.zeros(0)
        self._a0 = 0
        self._next = 0  # next frame to correct
        self._emitted = 0
        self._done = False

    @property
    def delay(self) -> int:
        """Samples received but not yet returned."""
        return self._received - self._emitted

    def add_target(self, mel: np.ndarray) -> None:
        """Append target log-mel frames (T_k, n_mels)."""
        rows = np.asarray(mel, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.cfg.n_mels:
            raise ValueError(f"target frames must have shape (T, {self.cfg.n_mels}), got {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise ValueError("target frames hold NaN or inf values; pass finite log-mel features")
        self._targets.append(rows)
        self._target_rows += rows.shape[0]

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Add float samples (n,); returns the corrected samples now final (float64, maybe empty)."""
        if self._done:
            raise ValueError("the post-filter was flushed; start a new one for a new signal")
        x = np.asarray(audio, dtype=np.float64).reshape(-1)
        self._x = np.concatenate([self._x, x])
        self._received += x.shape[0]
        if self._received <= self.cfg.n_fft - self._an.left:
            return np.zeros(0)  # the padding (reflect or zeros) is not known yet
        ready = (self._received - self._last) // self._an.hop + 1  # frames wholly inside the signal
        ready = min(ready, self._target_rows)  # and whose target arrived
        return self._run(ready, n=None)

    def flush(self) -> np.ndarray:
        """The signal is complete: correct its last frames and return the remaining samples."""
        if self._done:
            return np.zeros(0)
        self._done = True
        n = self._received
        if n == 0:
            return np.zeros(0)
        if self._target_rows == 0:
            raise ValueError("the post-filter received samples but no target frames")
        return self._run(n // self._an.hop + 1, n=n)

    # -- internals -------------------------------------------------------------------------
    def _target(self, i: int) -> np.ndarray:
        if len(self._targets) > 1:
            self._targets = [np.concatenate(self._targets)]
        rows = self._targets[0]
        return rows[min(i, rows.shape[0] - 1)]

    def _samples(self, idx: np.ndarray, n: int | None) -> np.ndarray:
        """Signal values at indices ``idx`` (reflect or zero padding at the edges as log_mel)."""
        total = self._received if n is None else n
        short = total <= self.cfg.n_fft - self._an.left
        if short:
            inside = (idx >= 0) & (idx < total)
            return np.where(inside, self._x[np.clip(idx, 0, total - 1) - self._x0], 0.0)
        return self._x[_reflect_index(idx, total) - self._x0] if n is not None else \
            self._x[np.abs(idx) - self._x0]

    def _run(self, upto: int, n: int | None) -> np.ndarray:
        an, hop, nfft = self._an, self._an.hop, self.cfg.n_fft
        count = upto - self._next
        if count > 0:
            frames_i = np.arange(self._next, upto)  # (k,)
            idx = frames_i[:, None] * hop - an.left + np.arange(nfft)[None, :]  # (k, n_fft)
            window_part = (np.arange(nfft) >= self._first + an.left) & (np.arange(nfft) < self._last + an.left)
            raw = np.zeros(idx.shape)
            raw[:, window_part] = self._samples(idx[:, window_part], n)  # only what the window reads
            targets = np.stack([self._target(int(i)) for i in frames_i])  # (k, M)
            corrected = an.correct(raw, targets)  # (k, n_fft)
            end = int(frames_i[-1]) * hop - an.left + nfft
            self._grow(end)
            for j, i in enumerate(frames_i):
                start = int(i) * hop - an.left - self._a0
                lo, hi = max(0, -start), nfft
                self._acc[start + lo : start + hi] += corrected[j, lo:hi]
                self._wacc[start + lo : start + hi] += an.window[lo:hi] ** 2
            self._next = upto
        # samples no later frame reads are final
        final = self._received if n is not None else min(self._received, self._next * hop + self._first)
        out = self._emit(final)
        keep_from = max(0, min(self._next * hop + self._first, self._received - 1))
        if keep_from > self._x0:
            self._x = self._x[keep_from - self._x0 :]
            self._x0 = keep_from
        return out

    def _grow(self, end: int) -> None:
        need = end - self._a0
        if need > self._acc.shape[0]:
            self._acc = np.concatenate([self._acc, np.zeros(need - self._acc.shape[0])])
            self._wacc = np.concatenate([self._wacc, np.zeros(need - self._wacc.shape[0])])

    def _emit(self, final: int) -> np.ndarray:
        count = final - self._emitted
        if count <= 0:
            return np.zeros(0)
        lo = self._emitted - self._a0
        out = self._acc[lo : lo + count] / np.maximum(self._wacc[lo : lo + count], 1e-8)
        self._acc = self._acc[lo + count :]
        self._wacc = self._wacc[lo + count :]
        self._a0 = final
        self._emitted = final
        return np.clip(out, -1.0, 1.0)
