"""Bundled voices: packing a training checkpoint into a voice folder and loading it back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.checkpoint import read_checkpoint, save_checkpoint
from models.config import VoiceConfig
from models.voices import load_voice, untrained_voice
from models.voices.pack import pack_voice
from models.wavernn import WaveRNN


def test_pack_then_load_a_voice_folder(tmp_path: Path, tiny_voice: VoiceConfig) -> None:
    torch.manual_seed(3)
    model = WaveRNN(tiny_voice.model)
    ckpt = tmp_path / "step.pt"
    save_checkpoint(ckpt, model, tiny_voice, meta={"step": 7, "valid": {"total_bits": 9.5},
                                                   "data": ["synthetic:10", "/x/librispeech_train_clean"]},
                    train_state={"optimizer": {"state": {}}, "step": 7})
    card_path = pack_voice(ckpt, tmp_path / "v", "myvoice", description="test voice", reproduce="wavernn-tts train",
                           quality={"wer": 0.5}, speed={"rtf": 0.8})
    card = json.loads(card_path.read_text())
    assert card["name"] == "myvoice" and card["trained"] is True and card["training"]["steps"] == 7
    assert card["quality"] == {"wer": 0.5} and card["speed"] == {"rtf": 0.8}
    assert card["model"]["hidden_size"] == tiny_voice.model.hidden_size
    licences = [d["licence"] for d in card["training"]["data"]]
    assert "CC BY 4.0" in licences and any("EST-2003" in lic for lic in licences)
    assert "train_state" not in read_checkpoint(tmp_path / "v" / "model.pt")  # slim: weights only

    voice = load_voice(str(tmp_path / "v"))
    assert voice.name == "myvoice" and voice.trained and voice.config == tiny_voice
    bare = load_voice(str(ckpt))  # a training checkpoint has no card: its step still tells what is served
    assert bare.name == "step" and bare.card["training"] == {"steps": 7}
    for (k, a), (_, b) in zip(model.state_dict().items(), voice.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_pack_names_the_data_given_over_a_shard_checkpoint(tmp_path: Path, tiny_voice: VoiceConfig) -> None:
    """A checkpoint whose last piece ran on a GPU shard names only the shard: --data gives the corpora."""
    ckpt = tmp_path / "gpu.pt"
    shard = ["data/shards/shard_001.npz"]
    save_checkpoint(ckpt, WaveRNN(tiny_voice.model), tiny_voice, meta={"step": 9, "data": shard})
    shard_card = json.loads(pack_voice(ckpt, tmp_path / "a", "a", description="d", reproduce="r").read_text())
    assert [d["licence"] for d in shard_card["training"]["data"]] == ["unknown: see the data's own terms"]
    card = json.loads(pack_voice(ckpt, tmp_path / "b", "b", description="d", reproduce="r",
                                 data=["synthetic:1500", "/x/librispeech_train_clean"]).read_text())
    assert [d["spec"] for d in card["training"]["data"]] == ["synthetic:1500", "/x/librispeech_train_clean"]
    assert all("unknown" not in d["licence"] for d in card["training"]["data"])


def test_untrained_voice_is_deterministic_and_labelled(tiny_voice: VoiceConfig) -> None:
    a, b = untrained_voice(tiny_voice, seed=5), untrained_voice(tiny_voice, seed=5)
    assert not a.trained and a.card["trained"] is False
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True))


def test_unknown_voice_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="bundled voices"):
        load_voice("no-such-voice")


def test_the_card_sets_the_sampling_temperature(tmp_path: Path, tiny_voice: VoiceConfig) -> None:
    from models.evaluate import eval_temperature

    ckpt = tmp_path / "step.pt"
    save_checkpoint(ckpt, WaveRNN(tiny_voice.model), tiny_voice, meta={"step": 1})
    card_path = pack_voice(ckpt, tmp_path / "v", "cold", description="d", reproduce="r", temperature=0.6)
    assert json.loads(card_path.read_text())["sampling"] == {"temperature": 0.6}
    assert load_voice(str(tmp_path / "v")).temperature == 0.6
    # eval samples a voice folder's model.pt as served, a bare checkpoint as trained, --temperature over both
    assert eval_temperature(tmp_path / "v" / "model.pt", None) == 0.6
    assert eval_temperature(ckpt, None) == 1.0 and eval_temperature(ckpt, 0.8) == 0.8
    pack_voice(ckpt, tmp_path / "plain", "plain", description="d", reproduce="r")
    assert load_voice(str(tmp_path / "plain")).temperature == 1.0  # the paper's sampling
    with pytest.raises(ValueError, match="temperature must be a number"):
        pack_voice(ckpt, tmp_path / "bad", "bad", description="d", reproduce="r", temperature=0.0)


@pytest.mark.parametrize("sampling", [{"temperature": 7}, {"temperature": "cold"}, 0.6])
def test_a_bad_sampling_entry_fails_at_load(tmp_path: Path, tiny_voice: VoiceConfig, sampling: object) -> None:
    ckpt = tmp_path / "step.pt"
    save_checkpoint(ckpt, WaveRNN(tiny_voice.model), tiny_voice, meta={"step": 1})
    card_path = pack_voice(ckpt, tmp_path / "v", "v", description="d", reproduce="r")
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "sampling": sampling}))
    with pytest.raises(ValueError, match=r"voice card of 'v'.*(temperature|sampling)"):
        load_voice(str(tmp_path / "v"))


def test_a_card_that_is_not_a_json_object_fails_at_load(tmp_path: Path, tiny_voice: VoiceConfig) -> None:
    from models.evaluate import eval_temperature

    ckpt = tmp_path / "step.pt"
    save_checkpoint(ckpt, WaveRNN(tiny_voice.model), tiny_voice, meta={"step": 1})
    card_path = pack_voice(ckpt, tmp_path / "v", "v", description="d", reproduce="r")
    for text, message in (("[0.6]", "must hold a JSON object"), ("{oops", "is not valid JSON")):
        card_path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_voice(str(tmp_path / "v"))
        with pytest.raises(ValueError, match=message):  # eval reads the same card the same way
            eval_temperature(tmp_path / "v" / "model.pt", None)
