"""Tests for models.audio: PCM codec, conversions, resampling, wav header and file I/O."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from models.audio import (
    classes_to_unit,
    float_to_pcm,
    join_pcm,
    load_audio,
    pcm_to_float,
    read_audio,
    resample,
    split_pcm,
    wav_header,
    write_wav,
)
from models.config import SAMPLE_RATE

ALL_PCM = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)


def test_split_join_roundtrip_all_values_numpy() -> None:
    coarse, fine = split_pcm(ALL_PCM)
    assert coarse.dtype == np.int64 and fine.dtype == np.int64
    assert coarse.min() == 0 and coarse.max() == 255
    assert fine.min() == 0 and fine.max() == 255
    assert coarse[0] == 0 and fine[0] == 0 and coarse[-1] == 255 and fine[-1] == 255
    back = join_pcm(coarse, fine)
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, ALL_PCM)


def test_split_join_roundtrip_all_values_torch() -> None:
    pcm = torch.from_numpy(ALL_PCM.copy()).reshape(256, 256)
    coarse, fine = split_pcm(pcm)
    assert isinstance(coarse, torch.Tensor) and coarse.dtype == torch.int64
    assert int(coarse.min()) == 0 and int(coarse.max()) == 255
    assert int(fine.min()) == 0 and int(fine.max()) == 255
    back = join_pcm(coarse, fine)
    assert back.dtype == torch.int16 and back.shape == (256, 256)
    assert torch.equal(back, pcm)
    # Same classes as the numpy path.
    np.testing.assert_array_equal(coarse.reshape(-1).numpy(), split_pcm(ALL_PCM)[0])


def test_split_and_join_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="int16"):
        split_pcm(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        join_pcm(np.array([256]), np.array([0]))
    with pytest.raises(ValueError, match="shape"):
        join_pcm(np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64))


def test_classes_to_unit_endpoints() -> None:
    v = np.array([0, 255, 127, 128])
    u = classes_to_unit(v)
    assert u.dtype == np.float32
    assert u[0] == -1.0 and u[1] == 1.0
    assert abs(u[2] + u[3]) < 1e-6  # symmetric about 0
    t = classes_to_unit(torch.tensor([0, 255]))
    assert t.dtype == torch.float32 and t.tolist() == [-1.0, 1.0]


def test_float_pcm_conversion_clips_and_scales() -> None:
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], dtype=np.float32)
    pcm = float_to_pcm(x)
    assert pcm.dtype == np.int16
    assert pcm.tolist() == [-32767, -32767, -16384, 0, 16384, 32767, 32767]
    t = float_to_pcm(torch.from_numpy(x))
    assert t.dtype == torch.int16 and t.tolist() == pcm.tolist()
    back = pcm_to_float(np.array([-32768, 0, 16384], dtype=np.int16))
    assert back.dtype == np.float32 and back.tolist() == [-1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="floating"):
        float_to_pcm(np.array([1, 2]))


@pytest.mark.parametrize(
    "orig,target,n",
    [
        (16000, 24000, 16000),
        (22050, 24000, 22050),
        (48000, 24000, 4801),
        (8000, 24000, 999),
        (44100, 24000, 44101),
        (16000, 24000, 40001),
    ],
)
def test_resample_output_length(orig: int, target: int, n: int) -> None:
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    y = resample(x, orig, target)
    assert y.dtype == np.float32
    assert y.shape == (-(-n * target // orig),)  # ceil(n * target / orig)


def test_resample_same_rate_is_copy() -> None:
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    y = resample(x, 24000, 24000)
    np.testing.assert_array_equal(x, y)
    y[0] = 5.0
    assert x[0] == -1.0


def test_resample_keeps_tone_frequency() -> None:
    n = 16000
    t = np.arange(n) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    y = resample(x, 16000, 24000)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), d=1 / 24000)
    bin_hz = freqs[1]
    assert abs(freqs[np.argmax(spectrum)] - 440.0) <= 2 * bin_hz
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=0.02)  # gain preserved


def test_resample_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        resample(np.zeros(10, np.float32), 0, 24000)
    with pytest.raises(ValueError, match="mono"):
        resample(np.zeros((10, 2), np.float32), 16000, 24000)


def test_wav_header_fields() -> None:
    h = wav_header(1000)
    assert len(h) == 44
    fields = struct.unpack("<4sI4s4sIHHIIHH4sI", h)
    assert fields == (
        b"RIFF",
        36 + 2000,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        SAMPLE_RATE,
        SAMPLE_RATE * 2,
        2,
        16,
        b"data",
        2000,
    )
    stereo = struct.unpack("<4sI4s4sIHHIIHH4sI", wav_header(10, sample_rate=16000, channels=2))
    assert stereo[1] == 36 + 40 and stereo[6] == 2 and stereo[8] == 64000 and stereo[9] == 4
    assert stereo[12] == 40


def test_wav_header_streaming_sizes() -> None:
    h = wav_header(None)
    assert len(h) == 44
    assert h[4:8] == b"\xff\xff\xff\xff" and h[40:44] == b"\xff\xff\xff\xff"
    assert h[:4] == b"RIFF" and h[36:40] == b"data"
    with pytest.raises(ValueError, match="non-negative"):
        wav_header(-1)


def test_write_wav_reads_back(tmp_path: Path) -> None:
    pcm = np.concatenate(
        [
            np.array([-32768, -1, 0, 1, 32767], np.int16),
            np.random.default_rng(1).integers(-32768, 32768, 995).astype(np.int16),
        ]
    )
    path = tmp_path / "out.wav"
    write_wav(path, pcm)
    data = path.read_bytes()
    assert data[:44] == wav_header(len(pcm)) and len(data) == 44 + 2 * len(pcm)
    sf_data, sf_rate = sf.read(str(path), dtype="int16")
    assert sf_rate == SAMPLE_RATE
    np.testing.assert_array_equal(sf_data, pcm)
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SAMPLE_RATE
        assert w.getnframes() == len(pcm)
        np.testing.assert_array_equal(np.frombuffer(w.readframes(len(pcm)), "<i2"), pcm)
    x, rate = read_audio(path)
    assert rate == SAMPLE_RATE
    np.testing.assert_allclose(x, pcm_to_float(pcm))


def test_write_wav_rejects_floats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="float_to_pcm"):
        write_wav(tmp_path / "x.wav", np.zeros(10, np.float32))


def test_read_audio_mixes_stereo_and_loads_flac(tmp_path: Path) -> None:
    left = np.full(800, 0.5, np.float32)
    right = np.full(800, -0.25, np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    x, rate = read_audio(path)
    assert rate == 16000 and x.shape == (800,) and x.dtype == np.float32
    np.testing.assert_allclose(x, 0.125, atol=1e-4)
    y = load_audio(path)
    assert y.shape == (1200,) and y.dtype == np.float32


def test_read_audio_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_audio(tmp_path / "nope.wav")


def test_read_audio_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(2).integers(0, 256, 4000).astype(np.uint8).tobytes())
    with pytest.raises(ValueError, match="cannot read"):
        read_audio(path)


def test_read_audio_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    write_wav(path, np.zeros(0, np.int16))
    with pytest.raises(ValueError, match="no samples"):
        read_audio(path)
