"""The inference-weights contract: the one structure every sampler reads.

A trained :class:`~models.wavernn.WaveRNN` keeps its parameters in PyTorch's layout
(an ``nn.GRU`` with gate order r, z, n and a masked input matrix). Samplers instead read
:class:`InferenceWeights`, laid out as the paper writes the step:

- gate rows are in the paper's order ``[u; r; e]``, each block H rows, and within each
  block the first H/2 rows are the coarse half, the last H/2 the fine half;
- ``R`` (3H, H) is the single recurrent matrix (one mat-vec per step for all gates),
  ``R_bias`` (3H,) is added inside the reset product for ``e``
  (``e = tanh(r * (R_e h + R_bias_e) + ...)``);
- ``I_prev`` (3H, 2) multiplies ``[c_{t-1}, f_{t-1}]`` scaled to [-1, 1];
- ``I_coarse`` (3H,) multiplies ``c_t``; it is zero on every coarse row (the mask I*);
- the conditioning term and the input bias arrive separately, per frame, from
  :meth:`models.wavernn.WaveRNN.gate_conditioning` (B, T, 3H) in the same row order;
- ``O1..O4`` with biases are the two softmax heads (coarse from ``h[:H/2]``, fine from
  ``h[H/2:]``).

Sampling temperature: drawing from ``softmax(logits / T)`` instead of ``softmax(logits)`` is
the same as drawing from the softmax of a head whose last layer (``O2`` or ``O4`` and its bias)
is divided by ``T``. :func:`extract_weights` applies it there, so every sampler (reference,
compiled CPU, fused GPU, subscale) samples at the voice's temperature with no code of its own,
and block-sparse heads keep their zero blocks. ``T = 1`` is the paper's sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from models.config import N_CLASSES
from models.wavernn import WaveRNN


@dataclass(frozen=True)
class InferenceWeights:
    """Sampler weights (float32 tensors on one device). Shapes in the module docstring."""

    hop_length: int
    R: Tensor
    R_bias: Tensor
    I_prev: Tensor
    I_coarse: Tensor
    O1: Tensor
    O1_bias: Tensor
    O2: Tensor
    O2_bias: Tensor
    O3: Tensor
    O3_bias: Tensor
    O4: Tensor
    O4_bias: Tensor

    def __post_init__(self) -> None:
        h = self.hidden_size
        hh = self.O1.shape[0]
        half = h // 2
        expected = {
            "R": (3 * h, h),
            "R_bias": (3 * h,),
            "I_prev": (3 * h, 2),
            "I_coarse": (3 * h,),
            "O1": (hh, half),
            "O1_bias": (hh,),
            "O2": (N_CLASSES, hh),
            "O2_bias": (N_CLASSES,),
            "O3": (hh, half),
            "O3_bias": (hh,),
            "O4": (N_CLASSES, hh),
            "O4_bias": (N_CLASSES,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"InferenceWeights.{name} has shape {got}, expected {shape} for H={h}")
        coarse_rows = torch.cat([self.I_coarse[g * h : g * h + half] for g in range(3)])
        if torch.any(coarse_rows != 0):
            raise ValueError("InferenceWeights.I_coarse must be zero on the coarse rows (the I* mask)")

    @property
    def hidden_size(self) -> int:
        """H, the number of recurrent units."""
        return int(self.R.shape[1])

    def tensors(self) -> dict[str, Tensor]:
        """The weight tensors by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hop_length"}

    def to(self, device: torch.device | str) -> InferenceWeights:
        """A copy on ``device``."""
        return InferenceWeights(self.hop_length, **{k: v.to(device) for k, v in self.tensors().items()})


def _to_paper_order(t: Tensor, h: int) -> Tensor:
    """Rows in torch GRU order (r, z, n) -> the paper's (u, r, e)."""
    r, z, n = t.split(h, dim=0)
    return torch.cat([z, r, n], dim=0)


#: Accepted sampling temperatures (below 0.05 the draw is an argmax; above 2 it is noise).
TEMPERATURE_RANGE = (0.05, 2.0)


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float, or ValueError naming the accepted range."""
    lo, hi = TEMPERATURE_RANGE
    try:
        t = math.nan if isinstance(temperature, bool) else float(temperature)
    except (TypeError, ValueError):
        t = math.nan
    if not (lo <= t <= hi):
        raise ValueError(f"sampling temperature must be a number from {lo} to {hi} (1.0 samples the softmax as "
                         f"trained, lower is less noisy), got {temperature!r}")
    return t


@torch.no_grad()
def extract_weights(model: WaveRNN, *, extra_inputs: bool = False, temperature: float = 1.0) -> InferenceWeights:
    """Read a trained module into the sampler contract (float32, detached, on CPU).

    Args:
        model: a plain WaveRNN.
        extra_inputs: read the plain part of a model that has more GRU inputs (the subscale
            weights extractor does, and handles the rest itself).
        temperature: sampling temperature of both softmax heads (module docstring); 1.0 = the
            paper's sampling.

    Raises:
        ValueError: ``model`` has inputs beyond ``[c_{t-1}, f_{t-1}, c_t, cond]`` (a Subscale
            WaveRNN, whose context the plain samplers would silently drop); ``temperature``
            outside :data:`TEMPERATURE_RANGE`.
    """
    if model.n_inputs != 3 + model.cond_net.out_channels and not extra_inputs:
        raise ValueError(f"{type(model).__name__} has {model.n_inputs} GRU inputs, more than the plain WaveRNN's "
                         f"{3 + model.cond_net.out_channels}: a subscale model runs on the subscale samplers "
                         "(models.samplers.subscale.extract_subscale_weights), not on the plain ones")
    inv_t = 1.0 / check_temperature(temperature)
    h = model.cfg.hidden_size
    p = model.gru_params()
    w_ih = (p["weight_ih_l0"] * model.input_mask).float().cpu()  # (3H, 3 + C)

    def cpu(t: Tensor) -> Tensor:
        return t.detach().float().cpu().contiguous()

    return InferenceWeights(
        hop_length=model.cfg.hop_length,
        R=cpu(_to_paper_order(p["weight_hh_l0"], h)),
        R_bias=cpu(_to_paper_order(p["bias_hh_l0"], h)),
        I_prev=cpu(_to_paper_order(w_ih[:, :2], h)),
        I_coarse=cpu(_to_paper_order(w_ih[:, 2], h)),
        O1=cpu(model.O1.weight),
        O1_bias=cpu(model.O1.bias),
        O2=cpu(model.O2.weight * inv_t),
        O2_bias=cpu(model.O2.bias * inv_t),
        O3=cpu(model.O3.weight),
        O3_bias=cpu(model.O3.bias),
        O4=cpu(model.O4.weight * inv_t),
        O4_bias=cpu(model.O4.bias * inv_t),
    )
