"""Log-mel features: the conditioning contract between audio, voices and the vocoder.

A :class:`~models.config.FeatureConfig` fixes the recipe. Frames are centred: the signal is
padded by ``n_fft // 2`` on the left and ``n_fft - n_fft // 2`` on the right (reflect, or zeros
when the signal is too short to reflect), so frame ``i`` is centred on sample
``i * hop_length`` and ``n`` samples give exactly ``cfg.n_frames(n) = n // hop_length + 1``
frames. Each frame is windowed by a periodic Hann window of ``win_length`` samples, zero-padded
(centred) to ``n_fft``; the STFT magnitude (power 1) is projected on a Slaney mel filterbank,
clamped to ``log_floor`` and logged (natural or base 10).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.audio import load_audio
from models.config import FeatureConfig

#: Largest ``|value|`` accepted by :func:`validate_features`. Real log-mels lie within roughly
#: ``log(log_floor)`` (-11.5 natural log for 1e-5) and ``log`` of a full-scale magnitude (under
#: +10); anything beyond 1e4 is not a log-mel (raw power, dB*100, garbage) and is refused.
MAX_ABS_LOG_MEL = 1e4

# Slaney (Auditory Toolbox) mel scale, as librosa's ``htk=False``: linear below 1 kHz, log above.
_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mels
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel value of frequencies ``hz`` (Hz), any shape; returns float64 of that shape."""
    f = np.asarray(hz, dtype=np.float64)
    lin = f / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`; any shape, float64."""
    m = np.asarray(mel, dtype=np.float64)
    lin = m * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log, lin)


def mel_band_edges(cfg: FeatureConfig) -> np.ndarray:
    """The ``n_mels + 2`` mel-spaced frequencies (Hz) from ``fmin`` to ``fmax``.

    Band ``k`` rises from ``edges[k]`` to its centre ``edges[k + 1]`` and falls to ``edges[k + 2]``.

    Returns:
        float64 of shape ``(n_mels + 2,)``.
    """
    mels = np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2)
    return mel_to_hz(mels)


def mel_band_centres(cfg: FeatureConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band, float64 of shape ``(n_mels,)``."""
    return mel_band_edges(cfg)[1:-1]


@functools.lru_cache(maxsize=16)
def _filterbank(cfg: FeatureConfig) -> np.ndarray:
    fft_freqs = np.linspace(0.0, cfg.sample_rate / 2.0, cfg.n_freqs)  # (F,)
    edges = mel_band_edges(cfg)  # (M + 2,)
    widths = np.diff(edges)  # (M + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]  # (M + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]  # (M, F) rising slope
    upper = ramps[2:] / widths[1:, None]  # (M, F) falling slope
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney area normalisation
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """Triangular Slaney mel filterbank with area normalisation (librosa's default).

    With a small ``n_fft`` and many mels the lowest bands can fall between STFT bins and be
    all zero; such bands then sit at ``log_floor``.

    Args:
        cfg: the feature recipe (``sample_rate``, ``n_fft``, ``n_mels``, ``fmin``, ``fmax``).

    Returns:
        float32 of shape ``(n_mels, n_freqs)``, ``n_freqs = n_fft // 2 + 1``.
    """
    return _filterbank(cfg).copy()


@functools.lru_cache(maxsize=16)
def _torch_constants(cfg: FeatureConfig) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float32)  # (win,)
    left = (cfg.n_fft - cfg.win_length) // 2
    window = torch.nn.functional.pad(window, (left, cfg.n_fft - cfg.win_length - left))  # (n_fft,)
    fb_t = torch.from_numpy(_filterbank(cfg).T.copy())  # (F, M)
    return window, fb_t


def log_mel(audio: np.ndarray | torch.Tensor, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram of mono audio.

    Args:
        audio: float samples at ``cfg.sample_rate``, shape ``(n,)`` (numpy or torch).
        cfg: the feature recipe.

    Returns:
        float32 of shape ``(T, n_mels)`` with ``T = cfg.n_frames(n) = n // hop_length + 1``.
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"log_mel expects mono audio of shape (n,), got shape {x.shape}; mix down first")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"log_mel expects float samples in [-1, 1], got {x.dtype}; use pcm_to_float")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"audio holds {int(np.sum(~np.isfinite(x)))} NaN/inf samples; clean it first")
    left, right = cfg.n_fft // 2, cfg.n_fft - cfg.n_fft // 2
    if x.shape[0] > right:  # reflect needs pad < n
        padded = np.pad(x, (left, right), mode="reflect")  # (n + n_fft,)
    else:
        padded = np.pad(x, (left, right), mode="constant")  # (n + n_fft,)
    window, fb_t = _torch_constants(cfg)
    spec = torch.stft(
        torch.from_numpy(padded),
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        window=window,
        center=False,
        return_complex=True,
    )  # (F, T)
    mel = spec.abs().T @ fb_t  # (T, F) @ (F, M) -> (T, M)
    mel = mel.clamp_min(cfg.log_floor)
    mel = mel.log() if cfg.log_base == "e" else mel.log10()
    out = mel.numpy().astype(np.float32, copy=False)
    expected = cfg.n_frames(x.shape[0])
    if out.shape[0] != expected:  # guards the padding arithmetic above
        raise ValueError(f"internal error: {out.shape[0]} frames computed, {expected} expected")
    return np.ascontiguousarray(out)


def features_from_file(path: str | Path, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel features of a wav or flac file (mono mix, resampled to ``cfg.sample_rate``).

    Args:
        path: audio file.
        cfg: the feature recipe.

    Returns:
        float32 of shape ``(T, n_mels)``, ``T = cfg.n_frames(ceil(n * cfg.sample_rate / rate))``.
    """
    return log_mel(load_audio(path, cfg.sample_rate), cfg)


def validate_features(mel: Any, cfg_or_n_mels: FeatureConfig | int) -> np.ndarray:
    """Check caller-supplied log-mel features and return them as float32.

    Args:
        mel: log-mel frames of shape ``(T, n_mels)``: numpy array, torch tensor, or anything
            ``np.asarray`` accepts (nested lists).
        cfg_or_n_mels: the voice's :class:`FeatureConfig`, or just its ``n_mels``.

    Returns:
        C-contiguous float32 copy of shape ``(T, n_mels)``.

    Raises:
        ValueError: not 2-D, wrong width, no frames, non-float values, NaN/inf, or values
            beyond ``+-MAX_ABS_LOG_MEL``; the message says how to fix it.
    """
    if isinstance(cfg_or_n_mels, FeatureConfig):
        n_mels = cfg_or_n_mels.n_mels
    elif (
        isinstance(cfg_or_n_mels, (int, np.integer))
        and not isinstance(cfg_or_n_mels, bool)
        and cfg_or_n_mels > 0
    ):
        n_mels = int(cfg_or_n_mels)
    else:
        raise ValueError(f"cfg_or_n_mels must be a FeatureConfig or a positive int, got {cfg_or_n_mels!r}")
    if isinstance(mel, torch.Tensor):
        if not mel.dtype.is_floating_point:
            raise ValueError(f"features have dtype {mel.dtype}; float32 log-mel values expected")
        mel = mel.detach().cpu().float().numpy()
    try:
        arr = np.asarray(mel)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"features are not a rectangular array ({err}); send a 2-D (frames, {n_mels}) array "
            "of float32 log-mel values"
        ) from err
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"features have dtype {arr.dtype}; float32 log-mel values expected "
            "(not ints, bools, strings or objects)"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"features must be 2-D (frames, n_mels={n_mels}), got {arr.ndim}-D shape {arr.shape}"
            + ("; drop the batch dimension" if arr.ndim == 3 and arr.shape[0] == 1 else "")
        )
    if arr.shape[1] != n_mels:
        hint = "; it looks like (n_mels, frames): transpose it (mel.T)" if arr.shape[0] == n_mels else ""
        raise ValueError(
            f"features must have n_mels={n_mels} values per frame, got shape {arr.shape} "
            f"(width {arr.shape[1]}){hint}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"features are empty: 0 frames of shape (0, {n_mels}); send at least one frame")
    bad = ~np.isfinite(arr)
    if bad.any():
        frame, band = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"features hold {int(bad.sum())} NaN/inf values (first at frame {frame}, band {band}); "
            "send finite log-mel values"
        )
    too_big = np.abs(arr) > MAX_ABS_LOG_MEL
    if too_big.any():
        frame, band = (int(i) for i in np.argwhere(too_big)[0])
        raise ValueError(
            f"features reach |value| = {float(np.abs(arr).max()):.3g} (first at frame {frame}, band "
            f"{band}), beyond the plausible log-mel range +-{MAX_ABS_LOG_MEL:g}; send log-magnitudes "
            "(not power, dB or raw spectra) computed with the voice's feature config"
        )
    out = np.array(arr, dtype=np.float32, order="C", copy=True)  # (T, n_mels)
    return out
