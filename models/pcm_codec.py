"""Lossless compression of int16 PCM with numpy and zlib alone (for data shards).

The codec, :data:`CODEC`: the second difference of the samples (modulo 2**16, so it always
inverts), zigzag-mapped to unsigned (small magnitudes of either sign become small numbers),
split into a high-byte and a low-byte plane, each plane deflated with zlib at level 9 and the
two streams concatenated. Speech is smooth at 24 kHz, so the differences are small and the
high plane is mostly zeros. On 20 utterances of each prepared corpus here it gave 52% (Festival
synthetic speech) and 55% (LibriSpeech) of the raw bytes, against 79% for zlib on the raw
samples and 58-60% for the first difference with the planes deflated together.
"""

from __future__ import annotations

import zlib

import numpy as np

#: The name recorded in shard headers; a reader refuses any other.
CODEC = "delta2-zigzag-planes-zlib9"
_ORDER = 2  # differences taken
_LEVEL = 9  # zlib level


def encode_pcm(pcm: np.ndarray) -> bytes:
    """Compress int16 samples losslessly.

    Args:
        pcm: int16 samples, shape ``(n,)``.

    Returns:
        the compressed bytes; :func:`decode_pcm` gives back ``pcm`` bit for bit.
    """
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"encode_pcm expects a 1-D int16 numpy array, got {getattr(pcm, 'dtype', type(pcm))} "
                         f"of shape {getattr(pcm, 'shape', None)}")
    d = pcm.view(np.uint16)
    for _ in range(_ORDER):
        d = np.diff(d, prepend=np.uint16(0))  # (n,) uint16, wraps modulo 2**16
    signed = d.view(np.int16).astype(np.int32)
    zigzag = ((signed << 1) ^ (signed >> 31)).astype("<u2")  # 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
    planes = zigzag.view(np.uint8).reshape(-1, 2)  # (n, 2): little endian, [:, 0] low byte
    return zlib.compress(planes[:, 1].tobytes(), _LEVEL) + zlib.compress(planes[:, 0].tobytes(), _LEVEL)


def decode_pcm(blob: bytes, n_samples: int) -> np.ndarray:
    """Decompress what :func:`encode_pcm` made.

    Args:
        blob: the compressed bytes.
        n_samples: the expected number of samples.

    Returns:
        int16 samples, shape ``(n_samples,)``.

    Raises:
        ValueError: the bytes are not two complete zlib streams of ``n_samples`` bytes each.
    """
    try:
        first = zlib.decompressobj()
        high = first.decompress(bytes(blob))
        if not first.eof:
            raise ValueError("the high-byte stream is truncated")
        low = zlib.decompress(first.unused_data)
    except zlib.error as exc:
        raise ValueError(f"corrupt compressed PCM ({exc})") from exc
    if len(high) != n_samples or len(low) != n_samples:
        raise ValueError(f"compressed PCM holds {len(high)}/{len(low)} bytes per plane, expected {n_samples}")
    planes = np.empty((n_samples, 2), dtype=np.uint8)
    planes[:, 0] = np.frombuffer(low, dtype=np.uint8)
    planes[:, 1] = np.frombuffer(high, dtype=np.uint8)
    zigzag = planes.reshape(-1).view("<u2").astype(np.uint32)
    d = ((zigzag >> 1) ^ (0 - (zigzag & 1))).astype(np.uint16)  # undo the zigzag, modulo 2**16
    for _ in range(_ORDER):
        d = np.cumsum(d, dtype=np.uint16)  # wraps modulo 2**16: inverts the differences
    return d.view(np.int16)
