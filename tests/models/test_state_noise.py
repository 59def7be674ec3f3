"""Perturbed recurrence in teacher forcing: none is the fused GRU; rounding, noise and bf16 gates do what they say."""

from __future__ import annotations

import pytest
import torch

from models.state_noise import StatePerturbation, perturbed_gru
from models.wavernn import WaveRNN


def _inputs(model: WaveRNN, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.gru_params().items()}
    inp = torch.randn(3, 50, model.rnn.input_size, generator=g)
    hx = torch.tanh(torch.randn(1, 3, model.cfg.hidden_size, generator=g))
    return params, inp, hx


def test_without_perturbation_it_is_the_fused_gru_values_and_gradients(tiny_model: WaveRNN) -> None:
    params, inp, hx = _inputs(tiny_model)
    out, h_n = perturbed_gru(params, inp, hx, StatePerturbation(), torch.Generator())
    ref_out, ref_h = torch.func.functional_call(tiny_model.rnn, params, (inp, hx))
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(h_n, ref_h, atol=1e-6)
    grads = torch.autograd.grad(out.square().sum(), list(params.values()))
    ref_grads = torch.autograd.grad(ref_out.square().sum(), list(params.values()))
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, r, atol=1e-4, rtol=1e-4)
    assert torch.equal(out[:, -1], h_n[0])


def test_bf16_rounding_leaves_every_state_on_the_bf16_grid(tiny_model: WaveRNN) -> None:
    params, inp, hx = _inputs(tiny_model)
    plain, _ = perturbed_gru(params, inp, hx, StatePerturbation(), torch.Generator())
    rounded, _ = perturbed_gru(params, inp, hx, StatePerturbation(round_bf16=True), torch.Generator())
    assert torch.equal(rounded, rounded.to(torch.bfloat16).float())
    assert not torch.equal(rounded, plain)
    # the first step differs from the unrounded one by the rounding alone (at most half a bf16 ulp)
    assert torch.equal(rounded[:, 0], plain[:, 0].to(torch.bfloat16).float())
    assert float((rounded - plain).detach().abs().max()) < 0.05  # and it then runs on from the rounded state
    grads = torch.autograd.grad(rounded.sum(), [params["weight_hh_l0"]])
    assert bool(torch.isfinite(grads[0]).all()) and float(grads[0].abs().sum()) > 0  # gradients pass


def test_bf16_gates_keep_a_float32_state(tiny_model: WaveRNN) -> None:
    params, inp, hx = _inputs(tiny_model)
    plain, _ = perturbed_gru(params, inp, hx, StatePerturbation(), torch.Generator())
    gates, _ = perturbed_gru(params, inp, hx, StatePerturbation(gates_bf16=True), torch.Generator())
    both, _ = perturbed_gru(params, inp, hx, StatePerturbation(round_bf16=True, gates_bf16=True), torch.Generator())
    assert gates.dtype == both.dtype == torch.float32
    assert not torch.equal(gates, gates.to(torch.bfloat16).float())  # the state is carried in float32
    assert torch.equal(both, both.to(torch.bfloat16).float())  # with rounding too, it is bf16
    assert 0 < float((gates - plain).detach().abs().max()) < 0.05
    # the first step with both is a bf16 GRU cell's, up to the order of the bf16 arithmetic
    bf = {k: v.detach().to(torch.bfloat16) for k, v in params.items()}
    cell = torch.gru_cell(inp[:, 0].to(torch.bfloat16), hx[0].to(torch.bfloat16), bf["weight_ih_l0"],
                          bf["weight_hh_l0"], bf["bias_ih_l0"], bf["bias_hh_l0"])
    assert float((both[:, 0] - cell.float()).detach().abs().max()) < 0.02
    grads = torch.autograd.grad(gates.sum(), [params["weight_hh_l0"], params["weight_ih_l0"]])
    for grad in grads:  # gradients reach the float32 weights through the casts
        assert grad.dtype == torch.float32 and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_noise_is_seeded_by_the_generator_and_has_the_asked_spread(tiny_model: WaveRNN) -> None:
    params, inp, hx = _inputs(tiny_model)
    plain, _ = perturbed_gru(params, inp, hx, StatePerturbation(), torch.Generator())
    noisy = StatePerturbation(noise_std=0.05)
    a, _ = perturbed_gru(params, inp, hx, noisy, torch.Generator().manual_seed(7))
    b, _ = perturbed_gru(params, inp, hx, noisy, torch.Generator().manual_seed(7))
    c, _ = perturbed_gru(params, inp, hx, noisy, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    first = (a[:, 0] - plain[:, 0]).detach().flatten()  # the first step's difference is the noise itself
    assert 0.03 < float(first.std()) < 0.07
    g = torch.Generator().manual_seed(7)
    expected = torch.randn((inp.shape[1], inp.shape[0], plain.shape[2]), generator=g) * 0.05
    assert torch.allclose(first, expected[0].flatten(), atol=1e-6)
    untouched = torch.Generator().manual_seed(5)
    before = untouched.get_state()
    perturbed_gru(params, inp, hx, StatePerturbation(round_bf16=True), untouched)
    assert torch.equal(untouched.get_state(), before)  # no noise asked: the generator is not drawn from


def test_the_network_runs_it_only_when_asked(tiny_model: WaveRNN) -> None:
    g = torch.Generator().manual_seed(0)
    n = 2 * tiny_model.cfg.hop_length
    cond = tiny_model.conditioning(torch.randn(2, 2, tiny_model.cfg.n_mels, generator=g) - 4).detach()
    coarse, fine = torch.randint(0, 256, (2, n), generator=g), torch.randint(0, 256, (2, n), generator=g)
    ref = tiny_model.forward_conditioned(cond, coarse, fine)
    off = tiny_model.forward_conditioned(cond, coarse, fine, perturb=(StatePerturbation(), torch.Generator()))
    assert all(torch.equal(x, y) for x, y in zip(ref, off, strict=True))
    on = tiny_model.forward_conditioned(cond, coarse, fine,
                                        perturb=(StatePerturbation(noise_std=0.1), torch.Generator().manual_seed(1)))
    assert not torch.equal(on[0], ref[0])


def test_bad_noise_is_a_clear_error() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="noise std"):
            StatePerturbation(noise_std=bad)
