"""Audio codec and I/O: 16-bit PCM <-> coarse/fine classes, resampling, wav reading and writing.

The service speaks 24,000 Hz (:data:`models.config.SAMPLE_RATE`), mono, signed 16-bit little
endian. WaveRNN predicts each 16-bit sample as two 8-bit classes (paper section 2): with
``u = x + 32768`` in ``0..65535``, ``coarse = u // 256`` and ``fine = u % 256``.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from scipy.signal import resample_poly

from models.config import SAMPLE_RATE

#: ``numpy.ndarray`` or ``torch.Tensor``; functions return the same library as their input.
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

#: Offset that maps signed 16-bit samples to ``0..65535``.
PCM_OFFSET = 32_768
#: Largest sample count a 44-byte RIFF header can describe for a given frame size.
_MAX_RIFF_BYTES = 0xFFFFFFFF
#: Sentinel written in the size fields of a stream of unknown length.
STREAMING_SIZE = 0xFFFFFFFF


def _not_array(x: object, name: str) -> ValueError:
    return ValueError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")


def _is_int_dtype(v: np.ndarray | torch.Tensor) -> bool:
    if isinstance(v, torch.Tensor):
        return not (v.dtype.is_floating_point or v.dtype.is_complex or v.dtype == torch.bool)
    return bool(np.issubdtype(v.dtype, np.integer))


def split_pcm(pcm: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Split signed 16-bit samples into coarse and fine classes.

    Args:
        pcm: int16 samples, shape ``(...)``, numpy or torch.

    Returns:
        ``(coarse, fine)``, each int64 of shape ``(...)`` with values in ``0..255``, in the
        same library as ``pcm``; ``(coarse * 256 + fine) - 32768 == pcm``.
    """
    if isinstance(pcm, torch.Tensor):
        if pcm.dtype != torch.int16:
            raise ValueError(f"pcm must be int16, got {pcm.dtype}; convert floats with float_to_pcm first")
        u_t = pcm.to(torch.int64) + PCM_OFFSET  # (...) in 0..65535
        return torch.div(u_t, 256, rounding_mode="floor"), torch.remainder(u_t, 256)
    if not isinstance(pcm, np.ndarray):
        raise _not_array(pcm, "pcm")
    if pcm.dtype != np.int16:
        raise ValueError(f"pcm must be int16, got {pcm.dtype}; convert floats with float_to_pcm first")
    u = pcm.astype(np.int64) + PCM_OFFSET  # (...) in 0..65535
    return u // 256, u % 256


def join_pcm(coarse: ArrayT, fine: ArrayT) -> ArrayT:
    """Inverse of :func:`split_pcm`: rebuild signed 16-bit samples from classes.

    Args:
        coarse: integer classes ``0..255``, shape ``(...)``.
        fine: integer classes ``0..255``, same shape and library as ``coarse``.

    Returns:
        int16 samples of shape ``(...)``, same library as the inputs.
    """
    for name, v in (("coarse", coarse), ("fine", fine)):
        if not isinstance(v, (np.ndarray, torch.Tensor)):
            raise _not_array(v, name)
        if not _is_int_dtype(v):
            raise ValueError(f"{name} must hold integer class indices, got dtype {v.dtype}")
        if 0 in tuple(v.shape):  # empty: nothing to range-check
            continue
        lo, hi = int(v.min()), int(v.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{name} classes must be in 0..255, got values in {lo}..{hi}")
    if tuple(coarse.shape) != tuple(fine.shape):
        raise ValueError(f"coarse shape {tuple(coarse.shape)} differs from fine shape {tuple(fine.shape)}")
    if isinstance(coarse, torch.Tensor) and isinstance(fine, torch.Tensor):
        u_t = coarse.to(torch.int64) * 256 + fine.to(torch.int64)  # (...) in 0..65535
        return (u_t - PCM_OFFSET).to(torch.int16)
    if isinstance(coarse, np.ndarray) and isinstance(fine, np.ndarray):
        u = coarse.astype(np.int64) * 256 + fine.astype(np.int64)  # (...) in 0..65535
        return (u - PCM_OFFSET).astype(np.int16)
    raise ValueError("coarse and fine must both be numpy arrays or both torch tensors")


def classes_to_unit(v: ArrayT) -> ArrayT:
    """Map class indices ``0..255`` to floats in ``[-1, 1]`` (``v / 127.5 - 1``).

    This is how the previous coarse and fine samples enter the network.

    Args:
        v: class indices (any integer or float dtype), shape ``(...)``, numpy or torch.

    Returns:
        float32 of shape ``(...)``: 0 maps to -1.0 and 255 to 1.0.
    """
    if isinstance(v, torch.Tensor):
        return v.to(torch.float32) / 127.5 - 1.0
    if not isinstance(v, np.ndarray):
        raise _not_array(v, "v")
    return (v.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def float_to_pcm(x: ArrayT) -> ArrayT:
    """Convert float audio to int16: clip to ``[-1, 1]``, scale by 32767, round.

    Args:
        x: float samples, shape ``(...)``, numpy or torch; values outside ``[-1, 1]`` clip.

    Returns:
        int16 of shape ``(...)`` in ``-32767..32767``.
    """
    if isinstance(x, torch.Tensor):
        if not x.dtype.is_floating_point:
            raise ValueError(f"float_to_pcm expects floating samples, got {x.dtype}")
        return torch.round(x.float().clamp(-1.0, 1.0) * 32767.0).to(torch.int16)
    if not isinstance(x, np.ndarray):
        raise _not_array(x, "x")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"float_to_pcm expects floating samples, got {x.dtype}")
    return np.round(np.clip(x.astype(np.float32), -1.0, 1.0) * np.float32(32767.0)).astype(np.int16)


def pcm_to_float(pcm: ArrayT) -> ArrayT:
    """Convert int16 samples to float32 in ``[-1, 1)`` by dividing by 32768.

    Args:
        pcm: int16 samples, shape ``(...)``, numpy or torch.

    Returns:
        float32 of shape ``(...)``.
    """
    if isinstance(pcm, torch.Tensor):
        if pcm.dtype != torch.int16:
            raise ValueError(f"pcm_to_float expects int16 samples, got {pcm.dtype}")
        return pcm.to(torch.float32) / 32768.0
    if not isinstance(pcm, np.ndarray):
        raise _not_array(pcm, "pcm")
    if pcm.dtype != np.int16:
        raise ValueError(f"pcm_to_float expects int16 samples, got {pcm.dtype}")
    return pcm.astype(np.float32) / np.float32(32768.0)


def resample(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono audio with a polyphase filter (``scipy.signal.resample_poly``).

    The ratio is reduced by its gcd (16000 -> 24000 is up 3, down 2). The output has exactly
    ``ceil(n * target_rate / orig_rate)`` samples.

    Args:
        x: float samples, shape ``(n,)``.
        orig_rate: rate of ``x`` in Hz.
        target_rate: wanted rate in Hz.

    Returns:
        float32 of shape ``(ceil(n * target_rate / orig_rate),)``; a copy when the rates agree.
    """
    for name, rate in (("orig_rate", orig_rate), ("target_rate", target_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise ValueError(f"{name} must be a positive integer number of Hz, got {rate!r}")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"resample expects mono audio of shape (n,), got shape {x.shape}; mix down first")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"resample expects float samples, got {x.dtype}; use pcm_to_float first")
    if orig_rate == target_rate or x.size == 0:
        return x.astype(np.float32, copy=True)
    g = math.gcd(int(orig_rate), int(target_rate))
    up, down = int(target_rate) // g, int(orig_rate) // g
    y = resample_poly(x.astype(np.float64), up, down)
    return np.ascontiguousarray(y, dtype=np.float32)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a wav or flac file as mono float32.

    Args:
        path: file to read.

    Returns:
        ``(x, rate)``: samples of shape ``(n,)`` (channels averaged) and the file's rate in Hz.
    """
    import soundfile as sf  # imported here: training from prepared data or shards runs without it

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"audio file {str(p)!r} does not exist (or is not a file); check the path")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)  # (n, channels)
    except (RuntimeError, sf.SoundFileError, TypeError) as err:
        raise ValueError(f"cannot read {str(p)!r} as audio ({err}); expected a wav or flac file") from err
    if data.shape[0] == 0:
        raise ValueError(f"audio file {str(p)!r} holds no samples; give a non-empty recording")
    x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (n,)
    return np.ascontiguousarray(x, dtype=np.float32), int(rate)


def load_audio(path: str | Path, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a wav or flac file as mono float32 at ``target_rate``.

    Args:
        path: file to read.
        target_rate: output rate in Hz.

    Returns:
        float32 samples of shape ``(ceil(n * target_rate / file_rate),)``.
    """
    x, rate = read_audio(path)
    return resample(x, rate, target_rate)


def wav_header(
    n_samples: int | None, sample_rate: int = SAMPLE_RATE, channels: int = 1, bits: int = 16
) -> bytes:
    """The 44-byte RIFF/WAVE PCM header (pure function).

    Args:
        n_samples: samples per channel that follow, or ``None`` for a stream of unknown length,
            in which case the RIFF and data size fields are ``0xFFFFFFFF``.
        sample_rate: rate in Hz.
        channels: number of interleaved channels.
        bits: bits per sample (8, 16, 24 or 32).

    Returns:
        44 bytes: RIFF size ``36 + data_bytes``, ``fmt `` chunk (PCM, 16 bytes), data size
        ``n_samples * channels * bits / 8``.
    """
    if bits not in (8, 16, 24, 32):
        raise ValueError(f"bits must be 8, 16, 24 or 32, got {bits!r}")
    if not isinstance(channels, int) or not 1 <= channels <= 65535:
        raise ValueError(f"channels must be an integer in 1..65535, got {channels!r}")
    if not isinstance(sample_rate, int) or not 1 <= sample_rate <= 0xFFFFFFFF:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    block_align = channels * bits // 8
    byte_rate = sample_rate * block_align
    if n_samples is None:
        riff_size = data_size = STREAMING_SIZE
    else:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
            raise ValueError(f"n_samples must be a non-negative integer or None, got {n_samples!r}")
        data_size = n_samples * block_align
        if 36 + data_size > _MAX_RIFF_BYTES:
            raise ValueError(
                f"{n_samples} samples do not fit a RIFF file (4 GiB limit); pass n_samples=None to stream"
            )
        riff_size = 36 + data_size
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        byte_rate,
        block_align,
        bits,
        b"data",
        data_size,
    )


def write_wav(path: str | Path, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit PCM as a wav file (header from :func:`wav_header`).

    Args:
        path: destination file.
        pcm: int16 samples, shape ``(n,)``.
        sample_rate: rate in Hz.
    """
    if isinstance(pcm, torch.Tensor):
        pcm = pcm.detach().cpu().numpy()
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16:
        raise ValueError(f"write_wav expects int16 samples, got {pcm.dtype}; convert with float_to_pcm")
    if pcm.ndim != 1:
        raise ValueError(f"write_wav expects mono samples of shape (n,), got shape {pcm.shape}")
    header = wav_header(int(pcm.shape[0]), sample_rate=sample_rate, channels=1, bits=16)
    with open(path, "wb") as f:
        f.write(header)
        f.write(pcm.astype("<i2", copy=False).tobytes())
