"""Pitch measurement and prosody modification of rendered speech (numpy and scipy).

Festival's HTS engine (``cmu_us_slt_arctic_hts``) predicts its own state durations and F0
from the context labels; it ignores the segment durations and F0 targets of ``SegF0``
utterances. So explicit phoneme durations and pitch targets are imposed afterwards, on the
rendered waveform, by TD-PSOLA (pitch-synchronous overlap-add): :func:`modify_prosody`
maps every target segment onto its source segment (piecewise-linear time warp) and re-spaces
pitch periods to the target F0. :func:`track_f0` (YIN) measures pitch for both the analysis
and the reported :class:`~models.frontend.base.Segment` F0.

References: de Cheveigne & Kawahara, "YIN, a fundamental frequency estimator for speech and
music" (JASA 2002); Moulines & Charpentier, "Pitch-synchronous waveform processing
techniques for text-to-speech synthesis using diphones" (Speech Communication 1990).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import butter, sosfiltfilt

from models.audio import resample

#: F0 analysis step (seconds) and search range (Hz).
F0_HOP_S = 0.005
F0_MIN_HZ, F0_MAX_HZ = 50.0, 500.0
#: YIN's absolute threshold (first dip of the normalised difference below it) and the
#: largest dip still called voiced.
_YIN_THRESHOLD, _VOICED_MAX_DIP = 0.15, 0.35
#: Frames quieter than this (dB below the loudest frame) are unvoiced.
_SILENCE_DB = 45.0
#: Grain spacing (seconds) in unvoiced stretches.
_UNVOICED_STEP_S = 0.005
_FRAMES_PER_CHUNK = 1024
#: F0 is measured on audio resampled to this rate (Hz).
_ANALYSIS_RATE = 8000
#: Zero-phase low-pass (Butterworth, 4th order, 1 kHz at the analysis rate) before YIN.
_LOWPASS_SOS = butter(4, 1000.0, fs=_ANALYSIS_RATE, output="sos")


def track_f0(audio: np.ndarray, sample_rate: int, hop_s: float = F0_HOP_S) -> tuple[np.ndarray, np.ndarray]:
    """Frame-wise F0 by YIN.

    Args:
        audio: float samples, shape ``(n,)``.
        sample_rate: rate in Hz.
        hop_s: frame step in seconds; frame ``i`` is centred at ``i * hop_s``.

    Returns:
        ``(times, f0)``: float64 arrays of shape ``(F,)``, ``F = n // hop + 1``; ``f0`` is NaN
        in unvoiced frames.
    """
    x = np.asarray(audio, dtype=np.float64)
    n_frames = x.shape[0] // max(1, round(hop_s * sample_rate)) + 1
    if sample_rate > _ANALYSIS_RATE:  # low-passed and cheaper; parabolic refinement keeps precision
        x = resample(x, sample_rate, _ANALYSIS_RATE).astype(np.float64)
        sample_rate = _ANALYSIS_RATE
    if x.shape[0] > 64:  # sosfiltfilt needs more samples than its padding
        x = sosfiltfilt(_LOWPASS_SOS, x)  # keeps impulsive voices from tripping on sub-sample lags
    hop = hop_s * sample_rate
    tau_min = int(sample_rate / F0_MAX_HZ)
    tau_max = int(np.ceil(sample_rate / F0_MIN_HZ))
    win = tau_max  # integration window: one longest period
    span = win + tau_max + 1
    padded = np.pad(x, (win // 2, span))  # frame i starts at round(i * hop) in padded
    starts = np.minimum(np.round(np.arange(n_frames) * hop).astype(np.int64), padded.shape[0] - span)
    frames = np.lib.stride_tricks.sliding_window_view(padded, span)[starts]  # (F, span)
    rms = np.sqrt(np.mean(frames[:, :win] ** 2, axis=1))  # (F,)
    loud = rms > max(float(rms.max(initial=0.0)) * 10 ** (-_SILENCE_DB / 20), 1e-5)
    f0 = np.full(n_frames, np.nan)
    nfft = 1 << int(np.ceil(np.log2(span)))
    for c0 in range(0, n_frames, _FRAMES_PER_CHUNK):
        chunk = frames[c0 : c0 + _FRAMES_PER_CHUNK]  # (C, span)
        cmnd = _cmnd(chunk, win, tau_max, nfft)  # (C, tau_max + 1)
        for j in range(chunk.shape[0]):
            if loud[c0 + j]:
                f0[c0 + j] = _pick_period(cmnd[j], tau_min, tau_max, sample_rate)
    times = np.arange(n_frames) * hop_s
    return times, f0


def _cmnd(frames: np.ndarray, win: int, tau_max: int, nfft: int) -> np.ndarray:
    """YIN's cumulative-mean-normalised difference d'(tau), tau = 0..tau_max, per frame."""
    spec_a = np.fft.rfft(frames[:, :win], nfft)  # (C, nfft/2+1)
    spec_b = np.fft.rfft(frames, nfft)
    corr = np.fft.irfft(np.conj(spec_a) * spec_b, nfft)[:, : tau_max + 1]  # (C, tau_max+1)
    energy = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(tau_max + 1)
    e_tau = energy[:, lags + win] - energy[:, lags]  # (C, tau_max+1) window energy at each lag
    diff = np.maximum(e_tau[:, :1] + e_tau - 2.0 * corr, 0.0)
    cum = np.cumsum(diff[:, 1:], axis=1)  # (C, tau_max)
    out = np.ones_like(diff)
    out[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)
    return out


def _pick_period(d: np.ndarray, tau_min: int, tau_max: int, sample_rate: int) -> float:
    below = np.nonzero(d[tau_min:tau_max] < _YIN_THRESHOLD)[0]
    if below.size:
        tau = tau_min + int(below[0])
        while tau + 1 < tau_max and d[tau + 1] < d[tau]:
            tau += 1
    else:
        tau = tau_min + int(np.argmin(d[tau_min:tau_max]))
    if d[tau] > _VOICED_MAX_DIP:
        return float("nan")
    if 0 < tau < d.shape[0] - 1:  # parabolic refinement
        a, b, c = d[tau - 1], d[tau], d[tau + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom > 0 else 0.0
        return sample_rate / (tau + float(np.clip(shift, -0.5, 0.5)))
    return sample_rate / tau


def segment_f0(times: np.ndarray, f0: np.ndarray, start_s: float, end_s: float) -> float | None:
    """Median F0 over the middle half of ``[start_s, end_s]``, or None if mostly unvoiced.

    Args:
        times, f0: a track from :func:`track_f0` (NaN = unvoiced).
        start_s, end_s: the segment (seconds).
    """
    if times.size == 0:
        return None
    quarter = (end_s - start_s) / 4
    sel = np.nonzero((times >= start_s + quarter) & (times <= end_s - quarter))[0]
    if sel.size == 0:
        sel = np.array([int(np.argmin(np.abs(times - 0.5 * (start_s + end_s))))])
    vals = f0[sel]
    voiced = vals[np.isfinite(vals)]
    if voiced.size * 2 < sel.size or voiced.size == 0:
        return None
    return float(np.median(voiced))


def modify_prosody(
    audio: np.ndarray,
    sample_rate: int,
    src_bounds: Sequence[float] | np.ndarray,
    dst_bounds: Sequence[float] | np.ndarray,
    pitch_targets: Sequence[float | None] | None = None,
) -> np.ndarray:
    """Re-time and re-pitch speech segment by segment (TD-PSOLA).

    Segment ``k`` spans ``src_bounds[k]..src_bounds[k+1]`` in the input and
    ``dst_bounds[k]..dst_bounds[k+1]`` in the output (time is warped linearly inside each).
    Where ``pitch_targets[k]`` is given and the segment is voiced, the output F0 over the
    segment's middle half is the source's scaled by target / (the source's median F0 there),
    so it centres on the target; the pitch-scale factor is 1 at the middle of segments without
    a target and interpolated in log scale between, keeping the source's intonation shape.

    Args:
        audio: float samples, shape ``(n,)``.
        sample_rate: rate in Hz.
        src_bounds: ``K + 1`` increasing segment boundaries in the input (seconds).
        dst_bounds: ``K + 1`` increasing boundaries in the output (seconds), starting at 0.
        pitch_targets: ``K`` F0 targets (Hz) or None each; None for no pitch change.

    Returns:
        float32 of shape ``(round(dst_bounds[-1] * sample_rate),)``.
    """
    x = np.asarray(audio, dtype=np.float64)
    src = np.asarray(src_bounds, dtype=np.float64) * sample_rate  # (K+1,) in samples
    dst = np.asarray(dst_bounds, dtype=np.float64) * sample_rate
    if src.shape != dst.shape or src.ndim != 1 or src.size < 2:
        raise ValueError(f"src_bounds and dst_bounds need the same K + 1 >= 2 entries, got {src.shape}, {dst.shape}")
    if np.any(np.diff(dst) <= 0) or np.any(np.diff(src) < 0):
        raise ValueError("segment boundaries must increase (dst strictly, src weakly)")
    times, f0 = track_f0(x, sample_rate)
    marks, mark_voiced = _analysis_marks(x, f0, sample_rate)
    ratio_at = _ratio_curve(times, f0, src / sample_rate, dst / sample_rate, pitch_targets)
    n_out = round(dst[-1])
    pad = int(1.5 * sample_rate / F0_MIN_HZ) + 1  # longest grain half
    out = np.zeros(n_out + 2 * pad)
    t_out, last_mark = 0.0, -1
    while t_out < n_out:
        t_src = float(np.interp(t_out, dst, src))
        k = int(np.clip(np.searchsorted(marks, t_src), 1, marks.size - 1))
        k = k if marks[k] - t_src < t_src - marks[k - 1] else k - 1
        left = int(marks[k] - marks[k - 1]) if k > 0 else int(marks[1] - marks[0])
        right = int(marks[k + 1] - marks[k]) if k + 1 < marks.size else left
        grain = _grain(x, int(marks[k]), min(left, pad), min(right, pad))  # (left + right,)
        if mark_voiced[k]:
            step = right / ratio_at(t_out / sample_rate)  # one target pitch period
        else:
            step = float(right)
            if k == last_mark:
                grain = grain[::-1]  # a repeated noise grain, reversed, buzzes less
        start = pad + round(t_out) - min(left, pad)
        out[start : start + grain.size] += grain
        last_mark = k
        t_out += max(step, 1.0)
    return out[pad : pad + n_out].astype(np.float32)


def _analysis_marks(
    x: np.ndarray, f0: np.ndarray, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pitch marks (sample positions): one per period on waveform peaks where voiced, every
    :data:`_UNVOICED_STEP_S` elsewhere. Returns ``(marks (M,), voiced (M,))``."""
    n = x.shape[0]
    voiced = np.isfinite(f0)
    marks: list[int] = [0]
    flags: list[bool] = [False]
    t = 0
    unvoiced_step = round(_UNVOICED_STEP_S * sample_rate)
    while True:
        frame = min(round(t / (F0_HOP_S * sample_rate)), f0.size - 1)
        if voiced[frame]:
            period = sample_rate / f0[frame]
            guess = t + period if flags[-1] else t + unvoiced_step
            lo, hi = max(int(guess - 0.25 * period), 0), int(guess + 0.25 * period) + 1
            if hi >= n:
                break
            t = max(lo + int(np.argmax(x[lo:hi])), marks[-1] + round(0.5 * period))
            flags.append(True)
        else:
            t += unvoiced_step
            if t >= n:
                break
            flags.append(False)
        marks.append(t)
    if len(marks) < 2:
        marks.append(max(n - 1, 1))
        flags.append(False)
    return np.asarray(marks), np.asarray(flags)


def _ratio_curve(
    times: np.ndarray,
    f0: np.ndarray,
    src_s: np.ndarray,
    dst_s: np.ndarray,
    pitch_targets: Sequence[float | None] | None,
) -> Callable[[float], float]:
    """The pitch-scale factor as a function of output time (seconds)."""
    anchors_t: list[float] = []
    anchors_log: list[float] = []
    if pitch_targets is not None:
        if len(pitch_targets) != src_s.size - 1:
            raise ValueError(f"pitch_targets needs {src_s.size - 1} entries, got {len(pitch_targets)}")
        for k, target in enumerate(pitch_targets):
            mid = 0.5 * (dst_s[k] + dst_s[k + 1])
            source = segment_f0(times, f0, src_s[k], src_s[k + 1])
            if source is None:
                continue
            if target is None:
                anchors_t.append(mid)
                anchors_log.append(0.0)
            else:  # hold the factor over the middle half, so the segment centres on the target
                quarter = 0.25 * (dst_s[k + 1] - dst_s[k])
                anchors_t += [mid - quarter, mid + quarter]
                anchors_log += [float(np.log(target / source))] * 2
    if not anchors_t or not any(anchors_log):
        return lambda t: 1.0
    at, al = np.asarray(anchors_t), np.asarray(anchors_log)
    return lambda t: float(np.exp(np.interp(t, at, al)))


def _grain(x: np.ndarray, centre: int, left: int, right: int) -> np.ndarray:
    """``x[centre - left : centre + right]`` under an asymmetric Hann window (zero-padded)."""
    left, right = max(left, 1), max(right, 1)
    idx = np.arange(centre - left, centre + right)
    seg = np.where((idx >= 0) & (idx < x.shape[0]), x[np.clip(idx, 0, x.shape[0] - 1)], 0.0)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(left) / left)
    fall = 0.5 + 0.5 * np.cos(np.pi * np.arange(right) / right)
    return seg * np.concatenate([rise, fall])
