"""Pruning schedule, block masks and the training-time pruner."""

from __future__ import annotations

import itertools

import pytest
import torch

from models.config import VoiceConfig
from models.sparsity import (
    PruneConfig,
    Pruner,
    block_mask,
    gate_masks,
    sparsity_report,
    sparsity_schedule,
)
from models.wavernn import WaveRNN


def test_schedule_follows_the_cubic_ramp() -> None:
    Z, t0, S = 0.95, 1000, 200_000
    assert sparsity_schedule(0, Z, t0, S) == 0.0
    assert sparsity_schedule(t0, Z, t0, S) == 0.0
    assert sparsity_schedule(t0 + S, Z, t0, S) == Z
    assert sparsity_schedule(10**9, Z, t0, S) == Z
    mid = sparsity_schedule(t0 + S // 2, Z, t0, S)
    assert mid == pytest.approx(Z * (1 - 0.5**3))
    values = [sparsity_schedule(t, Z, t0, S) for t in range(0, t0 + S + 1, 500)]
    assert all(b >= a for a, b in itertools.pairwise(values))  # monotone
    # fast early, slow late: the first tenth of the ramp covers more than a quarter of Z
    assert sparsity_schedule(t0 + S // 10, Z, t0, S) > 0.25 * Z
    with pytest.raises(ValueError, match="target sparsity"):
        sparsity_schedule(10, 1.0, t0, S)
    with pytest.raises(ValueError, match="S > 0"):
        sparsity_schedule(10, 0.5, t0, 0)


@pytest.mark.parametrize("block", [(16, 1), (4, 4)])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.95])
def test_block_mask_drops_exactly_the_weakest_blocks(block: tuple[int, int], sparsity: float) -> None:
    torch.manual_seed(0)
    w = torch.randn(64, 32)
    mask = block_mask(w, sparsity, block)
    br, bc = block
    n_blocks = (64 // br) * (32 // bc)
    blocks = mask.reshape(64 // br, br, 32 // bc, bc)
    # whole blocks are kept or dropped
    assert torch.all(blocks.all(dim=(1, 3)) == blocks.any(dim=(1, 3)))
    kept = blocks.all(dim=(1, 3))
    assert int((~kept).sum()) == round(sparsity * n_blocks)
    scores = w.abs().reshape(64 // br, br, 32 // bc, bc).mean(dim=(1, 3))
    if sparsity > 0:
        assert float(scores[~kept].max()) <= float(scores[kept].min())


def test_block_mask_rejects_bad_shapes_with_a_fix() -> None:
    with pytest.raises(ValueError, match="not divisible into 16x1 blocks"):
        block_mask(torch.randn(20, 8), 0.5, (16, 1))
    with pytest.raises(ValueError, match="not supported"):
        block_mask(torch.randn(16, 8), 0.5, (8, 2))
    with pytest.raises(ValueError, match="sparsity"):
        block_mask(torch.randn(16, 8), 1.5)


def test_gate_masks_prune_each_gate_separately() -> None:
    torch.manual_seed(0)
    h = 32
    R = torch.randn(3 * h, h)
    R[h : 2 * h] *= 100.0  # one gate far stronger: a global threshold would spare it entirely
    mask = gate_masks(R, 0.5, (16, 1))
    for g in range(3):
        assert float(mask[g * h : (g + 1) * h].float().mean()) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(3H, H\)"):
        gate_masks(torch.randn(10, 4), 0.5)


def _model() -> WaveRNN:
    torch.manual_seed(0)
    return WaveRNN(VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30).model)


def test_pruner_follows_the_schedule_and_masks_stay_zero() -> None:
    model = _model()
    pruner = Pruner(PruneConfig(target=0.75, t0=2, S=8, every=2, block=(16, 1), prune_heads=True))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    seen = []
    for step in range(14):
        loss = sum((p**2).sum() for p in model.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
        pruner.apply(model)
        stats = pruner.step(model, step)
        seen.append(stats["prune/target"])
        w = model.rnn.weight_hh_l0
        for name, mask in pruner.masks.items():
            weight = w if name == "rnn.weight_hh_l0" else getattr(model, name).weight
            assert torch.all(weight[~mask] == 0)  # exactly zero where pruned
    assert seen[0] == 0.0 and seen[-1] == 0.75
    assert all(b >= a for a, b in itertools.pairwise(seen))
    report = sparsity_report(model)
    for gate in ("u", "r", "e"):
        assert report["recurrent"][gate] >= 0.75
    assert report["heads"]["O1"] >= 0.75
    assert report["recurrent_blocks"] == pytest.approx(0.75)


def test_pruner_state_survives_a_checkpoint(tmp_path) -> None:
    model = _model()
    cfg = PruneConfig(target=0.5, t0=0, S=4, every=1)
    pruner = Pruner(cfg)
    for step in range(6):
        pruner.step(model, step)
    path = tmp_path / "ck.pt"
    torch.save({"pruner": pruner.state_dict(), "model": model.state_dict()}, path)
    ck = torch.load(path, weights_only=True)
    restored_model = _model()
    restored_model.load_state_dict(ck["model"])
    restored = Pruner(cfg)
    restored.load_state_dict(ck["pruner"])
    assert restored.sparsity == pruner.sparsity and restored.last_update == pruner.last_update
    assert torch.equal(restored.masks["rnn.weight_hh_l0"], pruner.masks["rnn.weight_hh_l0"])
    with torch.no_grad():
        restored_model.rnn.weight_hh_l0.add_(1.0)  # an optimizer step touching pruned weights
    restored.apply(restored_model)
    assert torch.all(restored_model.rnn.weight_hh_l0[~restored.masks["rnn.weight_hh_l0"]] == 0)
    with pytest.raises(ValueError, match="same pruning config"):
        Pruner(PruneConfig(target=0.9)).load_state_dict(ck["pruner"])


def test_prune_config_validates_and_round_trips() -> None:
    cfg = PruneConfig(target=0.9, block=[4, 4])  # type: ignore[arg-type]  # JSON gives lists
    assert cfg.block == (4, 4)
    assert PruneConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="block"):
        PruneConfig(block=(2, 8))
    with pytest.raises(ValueError, match="every"):
        PruneConfig(every=0)
    with pytest.raises(ValueError, match="unknown PruneConfig"):
        PruneConfig.from_dict({"targett": 0.9})
