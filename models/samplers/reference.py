"""The reference sampler: a readable torch loop over samples, the oracle for every fast path.

Each step follows the paper: one mat-vec ``R h`` for all three gates, the coarse half of
the state and the coarse class first, then ``c_t`` is fed back through the masked input
column to produce the fine half and the fine class of the same step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.audio import join_pcm
from models.samplers.base import SamplerState, sample_classes
from models.wavernn import class_to_unit
from models.weights import InferenceWeights


def _gru_half(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """GRU update of one half of the state.

    Args:
        gi: (B, 3, H/2) input + conditioning pre-activations (u, r, e).
        gh: (B, 3, H/2) recurrent pre-activations ``R h + b`` (u, r, e).
        h: (B, H/2) previous state of this half.
    """
    u = torch.sigmoid(gi[:, 0] + gh[:, 0])
    r = torch.sigmoid(gi[:, 1] + gh[:, 1])
    e = torch.tanh(gi[:, 2] + r * gh[:, 2])
    return u * h + (1 - u) * e


class WaveRNNCell(nn.Module):
    """One sampling step for B streams (also the graph exported to ONNX)."""

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

    def __init__(self, weights: InferenceWeights) -> None:
        super().__init__()
        self.hidden_size = weights.hidden_size
        for name, t in weights.tensors().items():
            self.register_buffer(name, t.float())

    def forward(
        self, h: Tensor, c_prev: Tensor, f_prev: Tensor, cond: Tensor, u: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Args:
            h: (B, H) state; c_prev, f_prev: (B,) int64 classes of the last sample;
            cond: (B, 3H) gate conditioning at this sample (bias included);
            u: (B, 2) uniform draws (coarse, fine).
        Returns:
            new h (B, H), coarse (B,), fine (B,), coarse logits (B, 256), fine logits (B, 256).
        """
        b, half = h.shape[0], self.hidden_size // 2
        x_prev = torch.stack([class_to_unit(c_prev), class_to_unit(f_prev)], dim=-1)  # (B, 2)
        gh = (h @ self.R.T + self.R_bias).view(b, 3, 2, half)  # one mat-vec for all gates
        gi = (cond + x_prev @ self.I_prev.T).view(b, 3, 2, half)
        h_c = _gru_half(gi[:, :, 0], gh[:, :, 0], h[:, :half])
        logits_c = F.linear(F.relu(F.linear(h_c, self.O1, self.O1_bias)), self.O2, self.O2_bias)
        c = sample_classes(logits_c, u[:, 0])
        gi_f = gi[:, :, 1] + class_to_unit(c).view(b, 1, 1) * self.I_coarse.view(3, 2, half)[:, 1]
        h_f = _gru_half(gi_f, gh[:, :, 1], h[:, half:])
        logits_f = F.linear(F.relu(F.linear(h_f, self.O3, self.O3_bias)), self.O4, self.O4_bias)
        f = sample_classes(logits_f, u[:, 1])
        return torch.cat([h_c, h_f], dim=-1), c, f, logits_c, logits_f


def interpolate_cond(cond: Tensor, offset: Tensor, hop: int) -> Tensor:
    """Gate conditioning at local sample ``offset`` of each stream's window.

    Args:
        cond: (B, F, 3H) window; offset: (B,) int64 samples since the window's first frame.
    Returns:
        (B, 3H), ``(1 - a) * cond[i] + a * cond[i + 1]`` with ``i = offset // hop``.
    """
    rows = torch.arange(cond.shape[0], device=cond.device)
    i = offset // hop
    a = ((offset % hop).to(cond.dtype) / hop).unsqueeze(-1)
    return cond[rows, i] * (1 - a) + cond[rows, i + 1] * a


class ReferenceSampler:
    """Plain torch loop over samples implementing :class:`models.samplers.base.Sampler`."""

    def __init__(self, weights: InferenceWeights, record_logits: bool = False) -> None:
        self.cell = WaveRNNCell(weights)
        self.hidden_size = weights.hidden_size
        self.hop_length = weights.hop_length
        self.record_logits = record_logits
        self.last_logits: tuple[Tensor, Tensor] | None = None

    @torch.no_grad()
    def generate(self, state: SamplerState, cond: Tensor, uniforms: Tensor) -> tuple[Tensor, SamplerState]:
        """See :meth:`models.samplers.base.Sampler.generate`.

        With ``record_logits`` the step logits are kept in ``last_logits`` as two
        (B, n, 256) tensors, for parity tests.
        """
        n = uniforms.shape[1]
        check_inputs(state, cond, uniforms, self.hidden_size, self.hop_length)
        hop = self.hop_length
        base = state.position % hop  # (B,) offset of the first sample inside frame 0
        h, c, f = state.h, state.coarse, state.fine
        cs, fs, lcs, lfs = [], [], [], []
        for k in range(n):
            g = interpolate_cond(cond, base + k, hop)
            h, c, f, lc, lf = self.cell(h, c, f, g, uniforms[:, k])
            cs.append(c)
            fs.append(f)
            if self.record_logits:
                lcs.append(lc)
                lfs.append(lf)
        if self.record_logits:
            self.last_logits = (torch.stack(lcs, 1), torch.stack(lfs, 1))
        pcm = join_pcm(torch.stack(cs, 1), torch.stack(fs, 1))  # (B, n)
        return pcm, SamplerState(h, c, f, state.position + n)


def check_inputs(state: SamplerState, cond: Tensor, uniforms: Tensor, hidden: int, hop: int) -> None:
    """ValueError unless the block's inputs fit the state and each other."""
    b = state.batch
    if uniforms.ndim != 3 or uniforms.shape[0] != b or uniforms.shape[2] != 2 or uniforms.shape[1] < 1:
        raise ValueError(f"uniforms must be (B={b}, n>=1, 2), got {tuple(uniforms.shape)}")
    if state.h.shape != (b, hidden):
        raise ValueError(f"state.h must be ({b}, {hidden}), got {tuple(state.h.shape)}")
    n = uniforms.shape[1]
    need = int((state.position % hop).max()) + n - 1
    need = need // hop + 2
    if cond.ndim != 3 or cond.shape[0] != b or cond.shape[2] != 3 * hidden or cond.shape[1] < need:
        raise ValueError(
            f"cond must be (B={b}, F>={need}, 3H={3 * hidden}) for a block of {n} samples, "
            f"got {tuple(cond.shape)}; build it with conditioning_window()"
        )
