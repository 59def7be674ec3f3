"""Checkpoints store config and format version and refuse mismatches clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoint import FORMAT_VERSION, load_checkpoint, read_checkpoint, save_checkpoint
from models.config import VoiceConfig
from models.wavernn import WaveRNN


def test_round_trip_keeps_weights_config_and_meta(tmp_path: Path, tiny_model: WaveRNN, tiny_voice: VoiceConfig) -> None:
    path = tmp_path / "v.pt"
    save_checkpoint(path, tiny_model, tiny_voice, meta={"trained": False, "step": 3})
    model, voice, meta = load_checkpoint(path)
    assert voice == tiny_voice and meta == {"trained": False, "step": 3}
    for (k, a), (k2, b) in zip(tiny_model.state_dict().items(), model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert not model.training


def test_version_mismatch_is_refused(tmp_path: Path, tiny_model: WaveRNN, tiny_voice: VoiceConfig) -> None:
    path = tmp_path / "v.pt"
    save_checkpoint(path, tiny_model, tiny_voice)
    blob = torch.load(path, weights_only=True)
    blob["format_version"] = FORMAT_VERSION + 1
    torch.save(blob, path)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}"):
        read_checkpoint(path)


def test_expected_config_mismatch_is_refused(tmp_path: Path, tiny_model: WaveRNN, tiny_voice: VoiceConfig) -> None:
    path = tmp_path / "v.pt"
    save_checkpoint(path, tiny_model, tiny_voice)
    other = VoiceConfig.tiny(hidden_size=64)
    with pytest.raises(ValueError, match="was expected"):
        load_checkpoint(path, expect=other)


def test_weights_that_do_not_fit_the_config_are_refused(
    tmp_path: Path, tiny_model: WaveRNN, tiny_voice: VoiceConfig
) -> None:
    path = tmp_path / "v.pt"
    save_checkpoint(path, tiny_model, tiny_voice)
    blob = torch.load(path, weights_only=True)
    blob["voice"]["model"]["hidden_size"] = 64
    torch.save(blob, path)
    with pytest.raises(ValueError, match="do not match its config"):
        load_checkpoint(path)


def test_missing_corrupt_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a wavernn-tts checkpoint"):
        load_checkpoint(foreign)


def test_save_refuses_a_config_that_is_not_the_models(tmp_path: Path, tiny_model: WaveRNN) -> None:
    with pytest.raises(ValueError, match="differs"):
        save_checkpoint(tmp_path / "x.pt", tiny_model, VoiceConfig.tiny(hidden_size=64))
