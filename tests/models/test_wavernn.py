"""The network has the paper's structure: masked input, dual softmax, one R mat-vec, fused GRU."""

from __future__ import annotations

import pytest
import torch

from models.config import VoiceConfig, WaveRNNConfig
from models.wavernn import WaveRNN, upsample_frames


def _inputs(model: WaveRNN, batch: int = 2, frames: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = frames * model.cfg.hop_length
    mel = torch.randn(batch, frames, model.cfg.n_mels, generator=g) * 2 - 5
    coarse = torch.randint(0, 256, (batch, n), generator=g)
    fine = torch.randint(0, 256, (batch, n), generator=g)
    return mel, coarse, fine


@torch.no_grad()
def test_perturbing_current_coarse_changes_only_that_steps_fine_distribution(tiny_model: WaveRNN) -> None:
    mel, coarse, fine = _inputs(tiny_model)
    lc, lf, _ = tiny_model(mel, coarse, fine)
    t = 37
    changed = coarse.clone()
    changed[:, t] = (changed[:, t] + 97) % 256
    lc2, lf2, _ = tiny_model(mel, changed, fine)
    # the coarse distribution of step t (and every earlier step) never sees c_t
    torch.testing.assert_close(lc2[:, : t + 1], lc[:, : t + 1], rtol=0, atol=0)
    # steps before t are untouched entirely
    torch.testing.assert_close(lf2[:, :t], lf[:, :t], rtol=0, atol=0)
    # the fine distribution of step t does depend on c_t
    assert (lf2[:, t] - lf[:, t]).abs().max() > 1e-3
    # and later steps see it through the state (coarse of t+1 depends on c_t via h_t)
    assert (lc2[:, t + 1] - lc[:, t + 1]).abs().max() > 1e-4


def test_input_mask_blocks_current_coarse_from_coarse_rows(tiny_model: WaveRNN) -> None:
    h, half = tiny_model.cfg.hidden_size, tiny_model.cfg.half
    mask = tiny_model.input_mask
    for gate in range(3):
        rows = slice(gate * h, gate * h + half)
        assert torch.all(mask[rows, 2] == 0), "c_t must not reach the coarse half"
        assert torch.all(mask[gate * h + half : (gate + 1) * h, 2] == 1)
    assert torch.all(mask[:, :2] == 1) and torch.all(mask[:, 3:] == 1)


def test_masked_weight_gets_no_gradient_effect(tiny_model: WaveRNN) -> None:
    """Training the raw masked entries cannot leak c_t into the coarse half."""
    mel, coarse, fine = _inputs(tiny_model)
    with torch.no_grad():
        tiny_model.rnn.weight_ih_l0[:, 2] += 100.0  # raw weights under the mask
    lc, _, _ = tiny_model(mel, coarse, fine)
    changed = coarse.clone()
    changed[:, 5] = 255 - changed[:, 5]
    lc2, _, _ = tiny_model(mel, changed, fine)
    assert torch.equal(lc[:, :6], lc2[:, :6])


def test_dual_softmax_heads_read_their_own_half(tiny_model: WaveRNN) -> None:
    cfg = tiny_model.cfg
    assert tiny_model.O1.in_features == cfg.half and tiny_model.O3.in_features == cfg.half
    assert tiny_model.O2.out_features == 256 and tiny_model.O4.out_features == 256


def test_recurrent_matrix_is_one_3h_by_h_matrix(tiny_model: WaveRNN) -> None:
    h = tiny_model.cfg.hidden_size
    assert tuple(tiny_model.rnn.weight_hh_l0.shape) == (3 * h, h)


def test_forward_uses_fused_gru_not_a_python_loop(tiny_model: WaveRNN) -> None:
    """Teacher forcing runs the whole sequence through one nn.GRU call."""
    calls = []
    handle = tiny_model.rnn.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape))
    mel, coarse, fine = _inputs(tiny_model, frames=6)
    tiny_model(mel, coarse, fine)
    handle.remove()
    assert calls == [torch.Size([2, 6 * tiny_model.cfg.hop_length, tiny_model.n_inputs])]


def test_training_step_backpropagates_to_every_parameter(tiny_model: WaveRNN) -> None:
    mel, coarse, fine = _inputs(tiny_model)
    tiny_model.train()
    lc, lf, _ = tiny_model(mel, coarse, fine)
    loss = torch.nn.functional.cross_entropy(lc.transpose(1, 2), coarse) + torch.nn.functional.cross_entropy(
        lf.transpose(1, 2), fine
    )
    loss.backward()
    for name, p in tiny_model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_upsample_interpolates_linearly_between_frame_centres() -> None:
    frames = torch.tensor([[[0.0], [10.0], [20.0]]])  # (1, 3, 1)
    out = upsample_frames(frames, hop=4)[0, :, 0]
    expected = torch.tensor([0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20, 20, 20, 20])
    torch.testing.assert_close(out, expected)


def test_conditioning_lookahead_is_bounded_and_declared(tiny_voice: VoiceConfig) -> None:
    torch.manual_seed(0)
    model = WaveRNN(tiny_voice.model).eval()
    cfg = model.cfg
    t, hop = 12, cfg.hop_length
    mel = torch.randn(1, t, cfg.n_mels) - 5
    base = model.conditioning(mel)
    k = 3  # change frame k: samples before frame k - lookahead_frames must not move
    changed = mel.clone()
    changed[0, k] += 3.0
    diff = (model.conditioning(changed) - base).abs().amax(dim=-1)[0]  # (N,)
    first_affected = int(torch.nonzero(diff > 0)[0])
    assert first_affected == (k - cfg.lookahead_frames) * hop + 1
    assert cfg.lookahead_samples == cfg.lookahead_frames * hop == (cfg.cond_layers + 1) * hop


def test_paper_size_model_has_about_three_million_parameters() -> None:
    model = WaveRNN(WaveRNNConfig(hidden_size=896))
    assert 2.5e6 < model.num_parameters() < 3.5e6


@torch.no_grad()
def test_fed_back_samples_replace_the_previous_sample_inputs_only(tiny_model: WaveRNN) -> None:
    mel, coarse, fine = _inputs(tiny_model)
    lc, lf, _ = tiny_model(mel, coarse, fine)
    cond = tiny_model.conditioning(mel)
    same = tiny_model.forward_conditioned(cond, coarse, fine, fed_back=(coarse, fine))
    assert torch.equal(same[0], lc) and torch.equal(same[1], lf)  # the targets fed back: teacher forcing
    t = 50
    fed_c, fed_f = coarse.clone(), fine.clone()
    fed_c[:, t], fed_f[:, t] = 255 - fed_c[:, t], 255 - fed_f[:, t]
    lc2, lf2, _ = tiny_model.forward_conditioned(cond, coarse, fine, fed_back=(fed_c, fed_f))
    # step t still reads c_t from the targets, and sample t is read from step t + 1 on
    assert torch.equal(lc2[:, : t + 1], lc[:, : t + 1]) and torch.equal(lf2[:, : t + 1], lf[:, : t + 1])
    assert (lc2[:, t + 1] - lc[:, t + 1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="fed_back"):
        tiny_model.forward_conditioned(cond, coarse, fine, fed_back=(fed_c[:, 1:], fed_f))


@torch.no_grad()
def test_recurrence_runs_in_float32_under_bf16_autocast(tiny_model: WaveRNN) -> None:
    # bf16 autocast (train.amp) may speed up the layers around the GRU, but the recurrence runs
    # as the float32 samplers run it: with float32 conditioning the state is bit for bit the same
    mel, coarse, fine = _inputs(tiny_model, frames=8)
    cond = tiny_model.conditioning(mel)
    _, _, h_ref = tiny_model.forward_conditioned(cond, coarse, fine)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lc, _, h_amp = tiny_model.forward_conditioned(cond, coarse, fine)
    assert h_amp.dtype == torch.float32 and torch.equal(h_amp, h_ref)
    assert lc.dtype == torch.bfloat16  # the output layers still autocast
