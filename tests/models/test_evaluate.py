"""Tests for ``wavernn-tts eval`` (models.evaluate): metric selection, checks, an end-to-end run.

The end-to-end run uses a tiny untrained checkpoint on the standard features, one 16 kHz file
and one sentence; its copy part skips without ``pesq``/``pystoi``, its wer part without
``pocketsphinx`` or Festival.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from models import evaluate
from models.audio import float_to_pcm, write_wav
from models.checkpoint import save_checkpoint
from models.config import FeatureConfig, VoiceConfig, WaveRNNConfig
from models.frontend import FestivalFrontend
from models.voices import untrained_voice

TINY = VoiceConfig(features=FeatureConfig(), model=WaveRNNConfig(hidden_size=16, cond_channels=8, cond_layers=1))
HAVE_COPY = all(importlib.util.find_spec(m) is not None for m in ("pesq", "pystoi"))
HAVE_WER = importlib.util.find_spec("pocketsphinx") is not None and FestivalFrontend().available()


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    voice = untrained_voice(TINY)
    save_checkpoint(path, voice.model, TINY, meta={"step": 0, "trained": False})
    return path


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real")
    t = np.arange(16_000) / 16_000  # 1 s at 16 kHz: a vowel-like buzz, on and off
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20)) * (np.sin(2 * np.pi * 3 * t) > 0)
    (root / "spk").mkdir()
    write_wav(root / "spk" / "utt.wav", float_to_pcm((0.3 * x / np.abs(x).max()).astype(np.float32)), 16_000)
    return root


def test_parse_metrics_accepts_commas_and_spaces() -> None:
    assert evaluate.parse_metrics(["wer,nll", "copy"]) == ["nll", "copy", "wer"]
    assert evaluate.parse_metrics("copy") == ["copy"]
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.parse_metrics(["nll,pesq"])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.parse_metrics([","])


def test_run_says_what_each_metric_needs(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="needs --data"):
        evaluate.run(_args(["--checkpoint", str(checkpoint)]))
    with pytest.raises(ValueError, match="needs --real"):
        evaluate.run(_args(["--checkpoint", str(checkpoint), "--metrics", "copy"]))


def test_module_entry_point_turns_bad_input_into_exit_2(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m models.evaluate`` (used on a bare GPU machine): the message on stderr, exit 2, no traceback."""
    assert evaluate.main(["--checkpoint", str(checkpoint), "--metrics", "nll"]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_eval_end_to_end_on_a_tiny_checkpoint(checkpoint: Path, real_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    metrics = ["nll"] + (["copy"] if HAVE_COPY else []) + (["wer"] if HAVE_WER else [])
    out = tmp_path / "results.json"
    argv = ["--checkpoint", str(checkpoint), "--metrics", ",".join(metrics), "--data", str(real_dir),
            "--segments", "4", "--real", str(real_dir), "--max-seconds", "0.5", "--max-sentences", "1",
            "--out", str(out), "--audio-dir", str(tmp_path / "audio")]
    assert evaluate.run(_args(argv)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["step"] == 0 and printed["metrics"] == metrics
    assert set(printed["nll"]) >= {"coarse_bits", "fine_bits", "total_bits"} and printed["utterances"] == 1
    if HAVE_COPY:
        copy = printed["copy"]
        assert copy["count"] == 1 and copy["audio_seconds"] == pytest.approx(0.5)
        assert set(copy["mean"]) == {"pesq_wb", "stoi", "log_mel_distance", "mcd_db", "rtf"}
        assert copy["utterances"][0]["file"].endswith("utt.wav") and copy["mean"]["log_mel_distance"] > 0
        assert (tmp_path / "audio" / "copy" / "000_utt.wav").is_file()
    if HAVE_WER:
        wer = printed["wer"]
        assert set(wer) == {"wer", "frontend_wer", "words", "sentences"} and len(wer["sentences"]) == 1
        assert wer["sentences"][0]["text"] == "Please call Stella." and wer["words"] == 3
        assert 0.0 <= wer["frontend_wer"] <= 1.0
