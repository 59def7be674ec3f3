"""Configs validate their fields and round-trip through dicts."""

from __future__ import annotations

import pytest

from models.config import FeatureConfig, VoiceConfig, WaveRNNConfig, config_from_dict, config_to_dict


def test_round_trip() -> None:
    v = VoiceConfig.tiny()
    assert config_from_dict(VoiceConfig, config_to_dict(v)) == v
    assert config_from_dict(VoiceConfig, config_to_dict(VoiceConfig())) == VoiceConfig()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hop_length": 0}, "hop_length"),
        ({"win_length": 4096}, "win_length"),
        ({"fmax": 20_000.0}, "fmax"),
        ({"fmin": 500.0, "fmax": 400.0}, "fmin"),
        ({"log_base": "2"}, "log_base"),
    ],
)
def test_feature_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FeatureConfig(**kwargs)


def test_model_config_rejects_odd_hidden_size() -> None:
    with pytest.raises(ValueError, match="even"):
        WaveRNNConfig(hidden_size=33)


def test_voice_config_requires_matching_features_and_model() -> None:
    with pytest.raises(ValueError, match="n_mels"):
        VoiceConfig(features=FeatureConfig(n_mels=40), model=WaveRNNConfig(n_mels=80))


def test_unknown_fields_are_named() -> None:
    with pytest.raises(ValueError, match="hiden_size"):
        config_from_dict(WaveRNNConfig, {"hiden_size": 8})


def test_frame_count_formula() -> None:
    cfg = FeatureConfig()
    assert cfg.n_frames(0) == 1 and cfg.n_frames(299) == 1 and cfg.n_frames(300) == 2
    assert WaveRNNConfig().lookahead_samples == 900
