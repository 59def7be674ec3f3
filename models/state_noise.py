"""Teacher forcing with a perturbed GRU recurrence: state noise, bf16 rounding, or bf16 gates.

Every CPU training run that lowered the network-alone word error rate (docs/quality.md sections
9-11) had its GRU state rounded to bf16 at every sample by CPU autocast, and lost it once the
recurrence ran in float32. :func:`perturbed_gru` makes that perturbation a deliberate, device-
independent training option: after each sample's update the state is rounded to bf16
(``round_bf16``) and/or has Gaussian noise of standard deviation ``noise_std`` added, and the
next sample's update starts from the perturbed state. ``gates_bf16`` instead runs the gates in
bf16 (the input and recurrent products, with bf16 weights and operands, and the gate
nonlinearities) while the state itself is carried in float32; with ``round_bf16`` as well the
whole recurrence is bf16, as CPU autocast once ran it (docs/quality.md section 14). The fused
``nn.GRU`` cannot do that from the inside, so this is a Python loop over samples with the input
projection hoisted out of it; a WaveRNN-384 training step in float32 takes 1.13x as long on one
CPU thread (``benchmarks/bench_train.py``, docs/training.md).

With no perturbation it equals the fused GRU (``tests/models/test_state_noise.py``).
Gradients pass the dtype casts unchanged (a cast's gradient; with bf16 gates the backward of
their products and activations runs in bf16 too) and do not see the noise. The noise is drawn
on the CPU with ``generator`` (the training run's, saved in each checkpoint) so a resumed run
draws what the uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class StatePerturbation:
    """How :func:`perturbed_gru` perturbs the state after every sample."""

    noise_std: float = 0.0
    """Standard deviation of the Gaussian added to each state unit (the state lies in [-1, 1])."""
    round_bf16: bool = False
    """Round the state to bf16 (round to nearest even) before the noise is added."""
    gates_bf16: bool = False
    """Compute the gates in bf16 (bf16 weights, operands and activations); the state's update
    ``(1 - z) n + z h`` and the state stay float32."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise_std <= 1.0:
            raise ValueError(f"state noise std {self.noise_std} must be in [0, 1] (0 = none)")

    @property
    def active(self) -> bool:
        return self.noise_std > 0 or self.round_bf16 or self.gates_bf16


def perturbed_gru(params: dict[str, Tensor], inp: Tensor, hx: Tensor | None, perturbation: StatePerturbation,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A one-layer, batch-first ``nn.GRU`` with ``params`` over ``inp``, perturbing its state.

    Args:
        params: ``weight_ih_l0`` (3H, I), ``weight_hh_l0`` (3H, H), ``bias_ih_l0``, ``bias_hh_l0``
            (3H,), torch gate order (r, z, n).
        inp: (B, N, I).
        hx: (1, B, H) initial state, or None for zeros.
        perturbation: what to do to the state after each sample.
        generator: CPU generator the noise is drawn from (not touched when ``noise_std`` is 0).
    Returns:
        out (B, N, H), the perturbed state after every sample, and h_n (1, B, H), the last one,
        as ``nn.GRU`` returns them; in float32 under autocast too.
    """
    with torch.autocast(inp.device.type, enabled=False):
        inp = inp.float()
        b, n, _ = inp.shape
        dt = torch.bfloat16 if perturbation.gates_bf16 else torch.float32
        w_hh, b_hh = params["weight_hh_l0"].to(dt), params["bias_hh_l0"].to(dt)
        hidden = w_hh.shape[1]
        h = inp.new_zeros(b, hidden) if hx is None else hx[0].float()
        gates_in = F.linear(inp.to(dt), params["weight_ih_l0"].to(dt),
                            params["bias_ih_l0"].to(dt)).unbind(1)  # N x (B, 3H)
        noise: tuple[Tensor, ...] = ()
        if perturbation.noise_std > 0:
            draw = torch.randn((n, b, hidden), generator=generator, dtype=torch.float32)
            noise = (draw.mul_(perturbation.noise_std).to(inp.device)).unbind(0)
        states = []
        for t in range(n):
            i_r, i_z, i_n = gates_in[t].chunk(3, dim=1)
            h_r, h_z, h_n = F.linear(h.to(dt), w_hh, b_hh).chunk(3, dim=1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            h = torch.lerp(torch.tanh(i_n + r * h_n).float(), h, z.float())  # (1 - z) n + z h
            if perturbation.round_bf16:
                h = h.to(torch.bfloat16).to(torch.float32)
            if noise:
                h = h + noise[t]
            states.append(h)
        return torch.stack(states, dim=1), h.unsqueeze(0)
