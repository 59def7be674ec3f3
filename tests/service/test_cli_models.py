"""`wavernn-tts features` then `wavernn-tts vocode` on a real 16 kHz recording."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from models.checkpoint import save_checkpoint
from models.config import FeatureConfig, VoiceConfig, WaveRNNConfig
from models.wavernn import WaveRNN

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-speech" / "vctk_autovc" / "p225" / "p225_003.wav"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def small_checkpoint(tmp_path: Path) -> Path:
    """A small untrained voice with the default 24 kHz feature recipe (hop 300, 80 mels)."""
    voice = VoiceConfig(features=FeatureConfig(), model=WaveRNNConfig(hidden_size=16, cond_channels=8, cond_layers=1))
    torch.manual_seed(0)
    path = tmp_path / "small.pt"
    save_checkpoint(path, WaveRNN(voice.model), voice, meta={"trained": False})
    return path


def test_features_then_vocode_a_real_16khz_recording(tmp_path: Path, small_checkpoint: Path) -> None:
    if not REAL.is_file():
        pytest.skip(f"real speech not found at {REAL}")
    src = tmp_path / "clip16k.wav"
    audio, rate = sf.read(REAL, dtype="float32")
    assert rate == 16_000
    sf.write(src, audio[:16_000], rate, subtype="PCM_16")  # the first second keeps the test quick
    mel_path, wav_path = tmp_path / "mel.npy", tmp_path / "out.wav"

    res = _cli("features", str(src), "-o", str(mel_path))
    assert res.returncode == 0, res.stderr
    mel = np.load(mel_path)
    n24 = 24_000  # ceil(16000 * 24000 / 16000)
    assert mel.shape == (FeatureConfig().n_frames(n24), 80) and mel.dtype == np.float32

    res = _cli("vocode", str(mel_path), "-o", str(wav_path), "--checkpoint", str(small_checkpoint), "--seed", "3")
    assert res.returncode == 0, res.stderr
    with wave.open(str(wav_path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24_000, 1, 2)
        assert w.getnframes() == mel.shape[0] * 300
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert pcm.std() > 0  # real samples, not a silent file

    again = tmp_path / "again.wav"
    res = _cli("vocode", str(mel_path), "-o", str(again), "--checkpoint", str(small_checkpoint), "--seed", "3")
    assert res.returncode == 0, res.stderr
    assert again.read_bytes() == wav_path.read_bytes()  # same seed, same audio


def test_vocode_rejects_bad_features_with_a_clear_message(tmp_path: Path, small_checkpoint: Path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 40), np.float32))
    res = _cli("vocode", str(bad), "-o", str(tmp_path / "o.wav"), "--checkpoint", str(small_checkpoint))
    assert res.returncode == 2 and "80" in res.stderr and "error:" in res.stderr
    res = _cli("vocode", str(tmp_path / "missing.npy"), "-o", str(tmp_path / "o.wav"))
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = _cli("features", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "m.npy"))
    assert res.returncode == 2 and "error:" in res.stderr


def test_vocode_samples_at_the_temperature_asked_for(tmp_path: Path, small_checkpoint: Path) -> None:
    mel_path = tmp_path / "mel.npy"
    np.save(mel_path, np.random.default_rng(0).normal(-5, 2, (4, 80)).astype(np.float32))
    cold, default = tmp_path / "cold.wav", tmp_path / "default.wav"
    res = _cli("vocode", str(mel_path), "-o", str(cold), "--checkpoint", str(small_checkpoint), "--temperature", "0.3")
    assert res.returncode == 0, res.stderr
    assert _cli("vocode", str(mel_path), "-o", str(default), "--checkpoint", str(small_checkpoint)).returncode == 0
    with wave.open(str(cold)) as a, wave.open(str(default)) as b:
        assert a.getnframes() == b.getnframes() == 4 * 300
        # no card: the paper's T = 1 by default; at T = 0.3 the draws differ
        assert a.readframes(a.getnframes()) != b.readframes(b.getnframes())
    res = _cli("vocode", str(mel_path), "-o", str(tmp_path / "x.wav"), "--checkpoint", str(small_checkpoint),
               "--temperature", "9")
    assert res.returncode == 2 and "temperature must be a number from 0.05 to 2" in res.stderr


def test_vocode_pitch_sync_switches_the_pitch_synchronous_draws(tmp_path: Path, small_checkpoint: Path) -> None:
    from models.config import FeatureConfig
    from models.features import log_mel

    t = np.arange(6000) / 24000
    tone = sum(np.cos(2 * np.pi * 150 * k * t) / k for k in range(1, 20)) * 0.05
    mel_path = tmp_path / "tone.npy"
    np.save(mel_path, log_mel(tone.astype(np.float32), FeatureConfig()))
    outs = {}
    for mode in ("on", "off"):
        outs[mode] = tmp_path / f"{mode}.wav"
        res = _cli("vocode", str(mel_path), "-o", str(outs[mode]), "--checkpoint", str(small_checkpoint),
                   "--pitch-sync", mode)
        assert res.returncode == 0, res.stderr
    res = _cli("vocode", str(mel_path), "-o", str(tmp_path / "d.wav"), "--checkpoint", str(small_checkpoint))
    assert res.returncode == 0, res.stderr
    assert outs["on"].read_bytes() != outs["off"].read_bytes()
    assert (tmp_path / "d.wav").read_bytes() == outs["off"].read_bytes()  # a bare checkpoint has no card: off
    res = _cli("vocode", str(mel_path), "-o", str(tmp_path / "x.wav"), "--checkpoint", str(small_checkpoint),
               "--pitch-sync", "yes")
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_say_speaks_text_through_festival_and_the_voice(tmp_path: Path, small_checkpoint: Path) -> None:
    from models.frontend import FestivalFrontend

    if not FestivalFrontend().available():
        pytest.skip("Festival (festival festvox-us-slt-hts) is not installed")
    out = tmp_path / "say.wav"
    res = _cli("say", "Good morning. See you soon.", "-o", str(out), "--checkpoint", str(small_checkpoint))
    assert res.returncode == 0, res.stderr
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24_000, 1, 2)
        n = w.getnframes()
    assert n % 300 == 0 and 1.0 < n / 24_000 < 6.0  # two short sentences, whole frames of hop 300
    res = _cli("say", "   ", "-o", str(tmp_path / "empty.wav"), "--checkpoint", str(small_checkpoint))
    assert res.returncode == 2 and "error:" in res.stderr


def test_pack_shards_prints_a_line_per_shard_and_a_json_summary(tmp_path: Path) -> None:
    import json

    from models.audio import write_wav
    from models.data import folder_corpus, prepare

    voice = VoiceConfig.tiny()
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        t = np.arange(6000) / 24000
        pcm = (8000 * np.sin(2 * np.pi * (150 + 40 * i) * t) + rng.normal(0, 50, t.size)).astype(np.int16)
        write_wav(audio / f"u{i}.wav", pcm)
    prepare(folder_corpus(audio), voice.features, tmp_path / "prepared", valid_count=1)
    done = _cli("pack-shards", "--data", str(tmp_path / "prepared"), "--out", str(tmp_path / "shards"),
                "--shard-mb", "0.03")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["shards"] == len(lines) - 1 >= 2 and summary["train"] == 5 and summary["valid"] == 1
    assert all(line.startswith(f"shard_{i:03d}.npz") for i, line in enumerate(lines[:-1]))
    bad = _cli("pack-shards", "--data", str(audio), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "not a prepared data folder" in bad.stderr
