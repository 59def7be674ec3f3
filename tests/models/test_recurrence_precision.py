"""benchmarks/recurrence_precision.py: its regimes are the ones it names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from models import wavernn
from models.wavernn import WaveRNN

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from recurrence_precision import regime


@torch.no_grad()
def test_regimes_round_the_state_only_where_they_say(tiny_model: WaveRNN) -> None:
    g = torch.Generator().manual_seed(1)
    n = 8 * tiny_model.cfg.hop_length
    mel = torch.randn(2, 8, tiny_model.cfg.n_mels, generator=g) * 2 - 5
    coarse, fine = torch.randint(0, 256, (2, n), generator=g), torch.randint(0, 256, (2, n), generator=g)
    cond = tiny_model.conditioning(mel)
    states = {}
    for mode in ("float32", "bf16_recurrence", "bf16_around"):
        with regime(mode):
            states[mode] = tiny_model.forward_conditioned(cond, coarse, fine)[2].float()
    assert torch.equal(states["bf16_around"], states["float32"])
    assert (states["bf16_recurrence"] - states["float32"]).abs().max() > 1e-3  # rounded at every sample


def test_regime_restores_the_float32_recurrence_and_refuses_unknown_modes() -> None:
    kept = wavernn.float32_gru
    with pytest.raises(RuntimeError, match="inside"), regime("bf16_recurrence"):
        assert wavernn.float32_gru is not kept
        raise RuntimeError("inside")
    assert wavernn.float32_gru is kept
    with pytest.raises(ValueError, match="must be one of"), regime("fp16"):
        pass
