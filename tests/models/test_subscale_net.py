"""The Subscale WaveRNN network: masked dependencies, context layout, config, checkpoints, training."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.audio import float_to_pcm, write_wav
from models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from models.config import SubscaleConfig, VoiceConfig, config_from_dict, config_to_dict
from models.data import folder_corpus, load_prepared, prepare
from models.subscale import context_mask, fold
from models.subscale_net import SubscaleWaveRNN, build_model, context_windows
from models.train import TrainConfig, checkpoint_files, load_run_config, train
from models.wavernn import WaveRNN, class_to_unit

BASE = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)
SUB = SubscaleConfig(factor=4, horizon=2, past=2, context_channels=16)
VOICE = dataclasses.replace(BASE, subscale=SUB)
REPO = Path(__file__).resolve().parents[2]


def _model(sub: SubscaleConfig = SUB, seed: int = 0) -> SubscaleWaveRNN:
    torch.manual_seed(seed)
    model = SubscaleWaveRNN(BASE.model, sub).eval()
    with torch.no_grad():
        model.rnn.weight_ih_l0.mul_(3.0)
    return model


def _folded_logits(model: SubscaleWaveRNN, cond: torch.Tensor, c: torch.Tensor, f: torch.Tensor):
    with torch.no_grad():
        lc, lf, _ = model.forward_conditioned(cond, c, f)
    nb = model.sub.factor
    return fold(lc.transpose(1, 2), nb)[0], fold(lf.transpose(1, 2), nb)[0]  # (256, B, T) each


@pytest.mark.parametrize("sub", [SUB, SubscaleConfig(factor=3, horizon=1, past=0, context_channels=16),
                                 SubscaleConfig(factor=4, horizon=3, past=1, context_channels=16)])
def test_logits_depend_exactly_on_the_visible_samples(sub: SubscaleConfig) -> None:
    """Changing sample (i, s) changes the coarse logits of (j, t) iff visible(j, t, i, s, F);
    the fine logits additionally see the coarse class of (j, t) itself."""
    model = _model(sub)
    nb, steps = sub.factor, 6
    n = nb * steps
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(1, n, model.n_cond, generator=g)
    c, f = torch.randint(0, 256, (1, n), generator=g), torch.randint(0, 256, (1, n), generator=g)
    base_c, base_f = _folded_logits(model, cond, c, f)
    changed_c = np.zeros((nb, steps, nb, steps), dtype=bool)
    changed_f = np.zeros_like(changed_c)
    for i in range(nb):
        for s in range(steps):
            c2, f2 = c.clone(), f.clone()
            c2[0, s * nb + i] = (c2[0, s * nb + i] + 77) % 256
            f2[0, s * nb + i] = (f2[0, s * nb + i] + 101) % 256
            lc, lf = _folded_logits(model, cond, c2, f2)
            changed_c[:, :, i, s] = ((lc - base_c).abs().amax(0) > 0).numpy()
            changed_f[:, :, i, s] = ((lf - base_f).abs().amax(0) > 0).numpy()
    mask = context_mask(nb, sub.horizon, steps)
    assert np.array_equal(changed_c, mask)
    itself = np.eye(nb * steps, dtype=bool).reshape(nb, steps, nb, steps)
    assert np.array_equal(changed_f, mask | itself)


def test_changing_only_the_fine_class_of_a_sample_leaves_its_own_logits() -> None:
    model = _model()
    n = 24
    cond = torch.randn(1, n, model.n_cond)
    c, f = torch.randint(0, 256, (1, n)), torch.randint(0, 256, (1, n))
    base_c, base_f = _folded_logits(model, cond, c, f)
    f2 = f.clone()
    f2[0, 13] = (f2[0, 13] + 50) % 256  # sample (j=1, t=3)
    lc, lf = _folded_logits(model, cond, c, f2)
    assert torch.equal(lc[:, 1, 3], base_c[:, 1, 3]) and torch.equal(lf[:, 1, 3], base_f[:, 1, 3])
    assert not torch.equal(lc[:, 1, 4], base_c[:, 1, 4])  # its successor does see it


def test_context_window_layout() -> None:
    sub = SubscaleConfig(factor=4, horizon=2, past=1, context_channels=8)
    g = torch.Generator().manual_seed(0)
    c, f = torch.randint(0, 256, (2, 4, 5), generator=g), torch.randint(0, 256, (2, 4, 5), generator=g)
    win = context_windows(c, f, sub).view(2, 4, 5, 2, 3, 3)  # (b, j, t, channel, r - 1, k)
    assert win.shape[-3:] == (2, sub.factor - 1, sub.window)
    silence = class_to_unit(torch.tensor([128, 0]))
    for j, t, r, k in [(3, 2, 1, 0), (3, 0, 3, 1), (2, 4, 2, 2), (1, 1, 1, 2)]:
        s = t - sub.past + k
        for ch, src in enumerate((c, f)):
            want = class_to_unit(src[1, j - r, s]) if 0 <= s < 5 else silence[ch]
            assert win[1, j, t, ch, r - 1, k] == want
    assert torch.all(win[:, 1, :, :, 1:] == 0) and torch.all(win[:, 0] == 0)  # r > j: no sub-tensor


def test_forward_refuses_bad_input() -> None:
    model = _model()
    cond = torch.randn(1, 22, model.n_cond)
    with pytest.raises(ValueError, match="multiple of 4"):
        model.forward_conditioned(cond, torch.zeros(1, 22, dtype=torch.long), torch.zeros(1, 22, dtype=torch.long))
    cond = torch.randn(1, 24, model.n_cond)
    z = torch.zeros(1, 24, dtype=torch.long)
    with pytest.raises(ValueError, match="h0=None"):
        model.forward_conditioned(cond, z, z, h0=torch.zeros(1, 32))
    with pytest.raises(ValueError, match="agree"):
        model.forward_conditioned(cond, z, z[:, :20])
    with pytest.raises(ValueError, match="plain WaveRNN"):
        model.forward_conditioned(cond, z, z, fed_back=(z, z))


def test_config_round_trip_and_validation() -> None:
    assert config_from_dict(VoiceConfig, config_to_dict(VOICE)) == VOICE
    old = config_to_dict(BASE)
    del old["subscale"]  # configs written before the subscale block
    assert config_from_dict(VoiceConfig, old) == BASE and BASE.subscale is None
    assert SUB.context_inputs == 2 * 3 * 4
    for field, value in (("factor", 1), ("horizon", 0), ("past", -1), ("context_channels", 0)):
        with pytest.raises(ValueError, match=f"subscale.{field}"):
            SubscaleConfig(**{field: value})
    assert isinstance(build_model(VOICE), SubscaleWaveRNN) and type(build_model(BASE)) is WaveRNN
    voice, cfg = load_run_config(REPO / "configs" / "subscale_h128.json")
    assert voice.subscale == SubscaleConfig(factor=16, horizon=8, past=8, context_channels=64)
    assert cfg.seq_frames * voice.model.hop_length % 16 == 0
    plain, plain_cfg = load_run_config(REPO / "configs" / "subscale_h128_plain.json")
    assert plain == dataclasses.replace(voice, subscale=None) and plain_cfg == cfg
    matched, matched_cfg = load_run_config(REPO / "configs" / "subscale_plain168.json")
    assert matched.model == dataclasses.replace(plain.model, hidden_size=168) and matched_cfg == cfg


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _model()
    save_checkpoint(tmp_path / "m.pt", model, VOICE, meta={"step": 1})
    loaded, voice, _ = load_checkpoint(tmp_path / "m.pt")
    assert isinstance(loaded, SubscaleWaveRNN) and voice == VOICE
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="subscale"):
        save_checkpoint(tmp_path / "x.pt", model, BASE)
    with pytest.raises(ValueError, match="subscale"):
        save_checkpoint(tmp_path / "y.pt", WaveRNN(BASE.model), VOICE)


# -- training --------------------------------------------------------------------------------
FAST = TrainConfig(steps=20, batch_size=4, seq_frames=4, lr=1e-2, warmup_steps=2, checkpoint_every=10,
                   validate_every=10, valid_segments=4, valid_seq_frames=8, log_every=5, num_threads=1,
                   keep_checkpoints=0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sines")
    rng = np.random.default_rng(0)
    for i in range(3):
        t = np.arange(6000) / 24000
        x = 0.5 * np.sin(2 * np.pi * (200 + 90 * i) * t) + 0.01 * rng.standard_normal(6000)
        write_wav(root / f"s{i}.wav", float_to_pcm(x.astype(np.float32)))
    out = tmp_path_factory.mktemp("prepared")
    prepare(folder_corpus(root), VOICE.features, out, valid_count=1)
    return out


def test_training_learns_saves_and_resumes_exactly(prepared: Path, tmp_path: Path) -> None:
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    whole = train(VOICE, FAST, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    assert isinstance(whole.model, SubscaleWaveRNN)
    records = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid"]
    assert valid[-1]["total_bits"] < valid[0]["total_bits"] - 0.3, valid
    halfway = checkpoint_files(tmp_path / "a")[0]
    assert halfway.name == "step_00000010.pt"
    assert read_checkpoint(halfway)["voice"]["subscale"] == config_to_dict(SUB)
    torch.manual_seed(999)
    resumed = train(VOICE, FAST, train_utts, valid_utts, tmp_path / "b", resume=halfway, progress=io.StringIO())
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert resumed.step == 20 and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="another voice config"):
        train(BASE, FAST, train_utts, valid_utts, tmp_path / "c", resume=halfway, progress=io.StringIO())


def test_training_refuses_segments_that_do_not_fold(prepared: Path, tmp_path: Path) -> None:
    voice = dataclasses.replace(VOICE, subscale=dataclasses.replace(SUB, factor=16))
    cfg = dataclasses.replace(FAST, seq_frames=3)  # 90 samples: not a multiple of 16
    with pytest.raises(ValueError, match="seq_frames"):
        train(voice, cfg, load_prepared(prepared, "train"), [], tmp_path / "r", progress=io.StringIO())
    with pytest.raises(ValueError, match="self_feed"):
        train(VOICE, dataclasses.replace(FAST, self_feed=0.5), load_prepared(prepared, "train"), [], tmp_path / "s",
              progress=io.StringIO())
