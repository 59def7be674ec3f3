"""The Subscale WaveRNN network (Kalchbrenner et al. 2018, section 4): teacher forcing.

The utterance of ``N`` samples is folded into ``B`` sub-tensors of ``T = N / B`` steps
(:func:`models.subscale.fold`: sub-tensor ``j``, step ``t`` is original sample ``t * B + j``).
Every sub-tensor runs the same WaveRNN (one GRU, dual softmax, masked ``I*``; weights shared
across sub-tensors) over its own past, with two extra inputs per step:

- the log-mel conditioning at the original position ``t * B + j`` (the plain WaveRNN's
  conditioning network and upsampling, then folded);
- a *context* vector from the samples of the earlier sub-tensors: for every ``r`` in
  ``1 .. B - 1`` with ``r <= j`` and every step offset ``d`` in ``-past .. horizon - 1``, the
  (coarse, fine) pair of sample ``(j - r, t + d)`` scaled to [-1, 1] (silence outside
  ``0 <= t + d < T``; zero for ``r > j``, which has no sub-tensor), through one linear layer
  plus an embedding of ``j`` and a ReLU::

      ctx_{j,t} = relu(W_ctx window_{j,t} + b_ctx + E[j])        (context_channels,)

Sample ``(i, s)`` enters the window of ``(j, t)`` only if ``i < j`` and ``s < t + horizon``,
so with the lead ``F = horizon`` the model sees exactly what
:func:`models.subscale.visible` allows (own past through the GRU state, earlier sub-tensors up
to ``F - 1`` steps into their future through the context), and a sample is never conditioned on
one generated at the same or a later step. Indexing the window by the *relative* sub-tensor
``r = j - i`` makes each context weight mean one fixed original-time offset ``d * B - r``.

Each sub-tensor starts from a zero state and silence, as generation does: a training segment
is folded as a short utterance of its own (the real previous sample is not used).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import SubscaleConfig, VoiceConfig, WaveRNNConfig
from models.state_noise import StatePerturbation
from models.subscale import fold, unfold
from models.wavernn import SILENCE_COARSE, SILENCE_FINE, WaveRNN, class_to_unit, float32_gru


def silence_units(device: torch.device | str = "cpu") -> Tensor:
    """(2,) float32 [-1, 1] inputs of the silence sample (coarse 128, fine 0): the context padding."""
    return class_to_unit(torch.tensor([SILENCE_COARSE, SILENCE_FINE], device=device))


def context_windows(coarse: Tensor, fine: Tensor, sub: SubscaleConfig) -> Tensor:
    """The context-layer inputs of every sample of folded sequences.

    Args:
        coarse, fine: (b, B, T) int64 folded classes.
        sub: the subscale settings (``B = factor``, ``past``, ``horizon``).
    Returns:
        (b, B, T, 2 * (B - 1) * W) float32 with ``W = past + horizon``, flattened in the order
        (channel: coarse then fine, r = 1 .. B - 1, k = 0 .. W - 1): entry (c, r, k) of
        (j, t) is channel c of sample ``(j - r, t - past + k)`` (silence outside the sequence),
        0 where ``r > j``.
    """
    b, nb, steps = coarse.shape
    if nb != sub.factor or fine.shape != coarse.shape:
        raise ValueError(f"coarse {tuple(coarse.shape)} and fine {tuple(fine.shape)} must both be "
                         f"(b, B={sub.factor}, T)")
    w = sub.window
    vals = torch.stack([class_to_unit(coarse), class_to_unit(fine)], dim=1)  # (b, 2, B, T)
    sil = silence_units(vals.device).view(1, 2, 1, 1)
    padded = torch.cat([sil.expand(b, 2, nb, sub.past), vals, sil.expand(b, 2, nb, sub.horizon - 1)],
                       dim=-1)  # (b, 2, B, P + T + F - 1)
    win = padded.unfold(-1, w, 1)  # (b, 2, B, T, W): win[:, :, i, t, k] = sample (i, t - P + k)
    j = torch.arange(nb, device=coarse.device).view(nb, 1)
    r = torch.arange(1, nb, device=coarse.device).view(1, nb - 1)
    src = (j - r).clamp(min=0)  # (B, B-1) sub-tensor read by (j, r)
    valid = (r <= j).to(vals.dtype).view(1, 1, nb, nb - 1, 1, 1)
    ctx = win[:, :, src] * valid  # (b, 2, B, B-1, T, W)
    return ctx.permute(0, 2, 4, 1, 3, 5).reshape(b, nb, steps, sub.context_inputs)  # (b, B, T, 2(B-1)W)


class SubscaleWaveRNN(WaveRNN):
    """WaveRNN over B folded sub-tensors with a masked context network (module docstring).

    The GRU input is ``[c_{t-1}, f_{t-1}, c_t, cond_t, ctx_t]`` (3 + C + context_channels);
    ``I*`` masks ``c_t`` on the coarse rows, as in :class:`~models.wavernn.WaveRNN`.
    """

    def __init__(self, cfg: WaveRNNConfig, sub: SubscaleConfig) -> None:
        super().__init__(cfg)
        self.sub = sub
        h, half = cfg.hidden_size, cfg.half
        self.n_cond = self.cond_net.out_channels
        self.context = nn.Linear(sub.context_inputs, sub.context_channels)
        self.sub_embedding = nn.Embedding(sub.factor, sub.context_channels)
        nn.init.normal_(self.sub_embedding.weight, std=0.1)
        self.n_inputs = 3 + self.n_cond + sub.context_channels
        self.rnn = nn.GRU(self.n_inputs, h, batch_first=True)
        mask = torch.ones(3 * h, self.n_inputs)
        for g in range(3):
            mask[g * h : g * h + half, 2] = 0.0  # c_t never reaches the coarse half
        self.input_mask = mask

    def gate_conditioning(self, mel: Tensor) -> Tensor:
        """As :meth:`WaveRNN.gate_conditioning` (B, T, 3H), from the mel columns of the input matrix."""
        h = self.cfg.hidden_size
        p = self.gru_params()
        w_cond = p["weight_ih_l0"][:, 3 : 3 + self.n_cond]  # (3H, C), torch order (r, z, n)
        g = self.cond_net(mel) @ w_cond.T + p["bias_ih_l0"]  # (B, T, 3H)
        r, z, n = g.split(h, dim=-1)
        return torch.cat([z, r, n], dim=-1)

    def context_vectors(self, coarse: Tensor, fine: Tensor) -> Tensor:
        """``ctx`` of every folded sample: (b, B, T) classes -> (b, B, T, context_channels)."""
        z = self.context(context_windows(coarse, fine, self.sub))  # (b, B, T, Cc)
        return F.relu(z + self.sub_embedding.weight.unsqueeze(1))  # + E[j], (B, 1, Cc)

    def forward_conditioned(
        self,
        cond: Tensor,
        coarse: Tensor,
        fine: Tensor,
        h0: Tensor | None = None,
        prev: tuple[Tensor, Tensor] | None = None,
        fed_back: tuple[Tensor, Tensor] | None = None,
        perturb: tuple[StatePerturbation, torch.Generator] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced logits in original sample order.

        Args:
            cond: (b, N, C) per-sample conditioning; coarse, fine: (b, N) int64 classes with
                ``N`` a multiple of B.
            h0: must be None (every sub-tensor starts from a zero state).
            prev: ignored: every sub-tensor starts from silence, as in generation.
            fed_back: must be None (self-fed training is built for the plain WaveRNN only).
            perturb: None or inactive (state perturbation is built for the plain WaveRNN only).
        Returns:
            coarse logits (b, N, 256), fine logits (b, N, 256) in original order, and the final
            states (b, B, H) of the sub-tensors.
        """
        if fed_back is not None:
            raise ValueError("fed_back (self-fed training) is built for the plain WaveRNN, not the subscale one")
        if perturb is not None and perturb[0].active:
            raise ValueError("perturb (state noise) is built for the plain WaveRNN, not the subscale one")
        b, n = coarse.shape
        nb = self.sub.factor
        if cond.shape[:2] != (b, n) or fine.shape != (b, n):
            raise ValueError(f"conditioning {tuple(cond.shape)}, coarse {tuple(coarse.shape)} and fine "
                             f"{tuple(fine.shape)} must agree on (batch, samples)")
        if n % nb:
            raise ValueError(f"{n} samples do not fold into subscale.factor={nb} sub-tensors; use segments "
                             f"whose length (train.seq_frames * hop) is a multiple of {nb}")
        if h0 is not None:
            raise ValueError("SubscaleWaveRNN starts every sub-tensor from a zero state; pass h0=None")
        cf, ff = fold(coarse, nb), fold(fine, nb)  # (b, B, T) each
        steps = cf.shape[-1]
        c_prev = torch.cat([torch.full_like(cf[..., :1], SILENCE_COARSE), cf[..., :-1]], dim=-1)  # (b, B, T)
        f_prev = torch.cat([torch.full_like(ff[..., :1], SILENCE_FINE), ff[..., :-1]], dim=-1)  # (b, B, T)
        x = torch.stack([class_to_unit(c_prev), class_to_unit(f_prev), class_to_unit(cf)], dim=-1)  # (b, B, T, 3)
        cond_f = fold(cond.transpose(1, 2), nb).permute(0, 2, 3, 1)  # (b, B, T, C)
        inp = torch.cat([x, cond_f.to(x.dtype), self.context_vectors(cf, ff).to(x.dtype)], dim=-1)
        inp = inp.reshape(b * nb, steps, self.n_inputs)  # (b*B, T, 3 + C + Cc)
        params = self.gru_params()
        params["weight_ih_l0"] = params["weight_ih_l0"] * self.input_mask
        out, h_n = float32_gru(self.rnn, params, inp, None)  # out (b*B, T, H)
        half = self.cfg.half
        logits_c = self.O2(F.relu(self.O1(out[..., :half])))  # (b*B, T, 256)
        logits_f = self.O4(F.relu(self.O3(out[..., half:])))

        def original_order(lg: Tensor) -> Tensor:
            folded = lg.reshape(b, nb, steps, -1).permute(0, 3, 1, 2)  # (b, 256, B, T)
            return unfold(folded, n).transpose(1, 2)  # (b, N, 256)

        return original_order(logits_c), original_order(logits_f), h_n.squeeze(0).reshape(b, nb, -1)


def build_model(voice: VoiceConfig) -> WaveRNN:
    """The network a voice config describes: :class:`SubscaleWaveRNN` if it has a subscale block."""
    if voice.subscale is not None:
        return SubscaleWaveRNN(voice.model, voice.subscale)
    return WaveRNN(voice.model)
