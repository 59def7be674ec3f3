"""The WaveRNN network of Kalchbrenner et al. (2018), section 2.

One GRU-like layer of H units whose state is split into a coarse half and a fine half::

    x_t = [c_{t-1}, f_{t-1}, c_t]
    u_t = sigmoid(R_u h_{t-1} + I*_u x_t)
    r_t = sigmoid(R_r h_{t-1} + I*_r x_t)
    e_t = tanh(r_t * (R_e h_{t-1}) + I*_e x_t)
    h_t = u_t * h_{t-1} + (1 - u_t) * e_t
    P(c_t) = softmax(O_2 relu(O_1 y_c)),  P(f_t) = softmax(O_4 relu(O_3 y_f))

``I*`` is masked so that ``c_t`` reaches only the fine half of the gates. Frame-level
conditioning (log-mel) goes through a small conv network, is upsampled to the sample rate
by linear interpolation, and is added to the gate pre-activations.

``forward`` is teacher forcing: the whole sequence runs through PyTorch's fused GRU
(``nn.GRU``) with the mask applied to its input weights, so training has no Python loop
over samples. The step-by-step samplers read the same weights through
:mod:`models.weights`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from models.config import N_CLASSES, WaveRNNConfig
from models.state_noise import StatePerturbation, perturbed_gru

#: Coarse and fine class of the 16-bit sample 0 (u = 32768): the state before any audio.
SILENCE_COARSE = 128
SILENCE_FINE = 0


def float32_gru(rnn: nn.GRU, params: dict[str, Tensor], inp: Tensor, hx: Tensor | None) -> tuple[Tensor, Tensor]:
    """``rnn`` with ``params`` over ``inp``, its recurrence in float32 even under autocast.

    Under CPU bf16 autocast the GRU's recurrent matmuls round the state to bf16 at every sample,
    a regime the float32 samplers never run: a network trained in it lost 0.1 bits of held-out
    NLL on LibriSpeech when evaluated in float32, and step 118,003 (trained on a GPU) scored 0.68
    bits worse under it (docs/quality.md section 11). So autocast may speed up the layers around
    the GRU, but the recurrence itself always runs as it is served.
    """
    with torch.autocast(inp.device.type, enabled=False):
        return functional_call(rnn, params, (inp.float(), None if hx is None else hx.float()))


def class_to_unit(v: Tensor) -> Tensor:
    """Class index 0..255 -> network input in [-1, 1] (float32)."""
    return v.to(torch.float32) / 127.5 - 1.0


class ConditioningNetwork(nn.Module):
    """Frame-level conditioning: log-mel (B, T, n_mels) -> features (B, T, C).

    A fixed affine normalisation (buffers ``input_mean``/``input_std``, which training may
    set from data statistics) followed by ``cond_layers`` centred Conv1d layers of kernel 3
    with replicate padding. Each layer looks one frame ahead, so the right context is
    ``cond_layers`` frames.
    """

    input_mean: Tensor
    input_std: Tensor

    def __init__(self, cfg: WaveRNNConfig) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.full((cfg.n_mels,), -5.0))
        self.register_buffer("input_std", torch.full((cfg.n_mels,), 4.0))
        layers: list[nn.Conv1d] = []
        width = cfg.n_mels
        for _ in range(cfg.cond_layers):
            layers.append(nn.Conv1d(width, cfg.cond_channels, kernel_size=3))
            width = cfg.cond_channels
        self.convs = nn.ModuleList(layers)
        self.out_channels = width

    def forward(self, mel: Tensor) -> Tensor:
        """Args: mel (B, T, n_mels). Returns (B, T, C)."""
        x = ((mel - self.input_mean) / self.input_std).transpose(1, 2)  # (B, n_mels, T)
        for i, conv in enumerate(self.convs):
            x = conv(F.pad(x, (1, 1), mode="replicate"))
            x = torch.tanh(x) if i == len(self.convs) - 1 else F.relu(x)
        return x.transpose(1, 2)  # (B, T, C)


def upsample_frames(frames: Tensor, hop: int) -> Tensor:
    """Linear interpolation of frame features to the sample rate.

    Sample ``n`` lies at frame position ``n / hop``: with ``i = n // hop`` and
    ``a = (n % hop) / hop`` it gets ``(1 - a) * frames[i] + a * frames[i + 1]``; the last
    frame is repeated past the end. This is the rule every sampler follows.

    Args:
        frames: (B, T, C).
        hop: samples per frame.
    Returns:
        (B, T * hop, C).
    """
    b, t, c = frames.shape
    nxt = torch.cat([frames[:, 1:], frames[:, -1:]], dim=1)  # (B, T, C)
    a = torch.arange(hop, dtype=frames.dtype, device=frames.device) / hop  # (hop,)
    a = a.view(1, 1, hop, 1)
    out = frames.unsqueeze(2) * (1 - a) + nxt.unsqueeze(2) * a  # (B, T, hop, C)
    return out.reshape(b, t * hop, c)


class WaveRNN(nn.Module):
    """WaveRNN with dual softmax and masked input matrix.

    Parameters live in an ``nn.GRU`` (PyTorch's gate order r, z, n, i.e. the paper's
    r, u, e) whose input is ``[c_{t-1}, f_{t-1}, c_t, cond_t]``; the mask ``I*`` zeroes the
    ``c_t`` column on the coarse rows of every gate and is applied on each forward.
    """

    input_mask: Tensor

    def __init__(self, cfg: WaveRNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, half, hh = cfg.hidden_size, cfg.half, cfg.head_hidden
        self.cond_net = ConditioningNetwork(cfg)
        self.n_inputs = 3 + self.cond_net.out_channels
        self.rnn = nn.GRU(self.n_inputs, h, batch_first=True)
        mask = torch.ones(3 * h, self.n_inputs)
        for g in range(3):
            mask[g * h : g * h + half, 2] = 0.0  # c_t never reaches the coarse half
        self.register_buffer("input_mask", mask)
        self.O1 = nn.Linear(half, hh)
        self.O2 = nn.Linear(hh, N_CLASSES)
        self.O3 = nn.Linear(half, hh)
        self.O4 = nn.Linear(hh, N_CLASSES)

    # -- conditioning ---------------------------------------------------------------
    def conditioning(self, mel: Tensor) -> Tensor:
        """Per-sample conditioning features.

        Args:
            mel: (B, T, n_mels) log-mel frames.
        Returns:
            (B, T * hop, C).
        """
        return upsample_frames(self.cond_net(mel), self.cfg.hop_length)

    def gate_conditioning(self, mel: Tensor) -> Tensor:
        """Frame-level gate pre-activation contributions, the samplers' input.

        Args:
            mel: (B, T, n_mels).
        Returns:
            (B, T, 3H) in the paper's gate order (u, r, e), input bias included; upsample
            with :func:`upsample_frames` to get the per-sample addition to ``I x``.
        """
        h = self.cfg.hidden_size
        p = self.gru_params()
        w_cond = p["weight_ih_l0"][:, 3:]  # (3H, C), torch order (r, z, n)
        g = self.cond_net(mel) @ w_cond.T + p["bias_ih_l0"]  # (B, T, 3H)
        r, z, n = g.split(h, dim=-1)
        return torch.cat([z, r, n], dim=-1)

    # -- teacher forcing ------------------------------------------------------------
    def forward(
        self,
        mel: Tensor,
        coarse: Tensor,
        fine: Tensor,
        h0: Tensor | None = None,
        prev: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced logits for a whole sequence.

        Args:
            mel: (B, T, n_mels) frames covering the N = T * hop target samples.
            coarse, fine: (B, N) int64 classes of the target samples.
            h0: (B, H) initial state (zeros if None).
            prev: (c, f) each (B,) classes of the sample before the first target
                (silence if None).
        Returns:
            coarse logits (B, N, 256), fine logits (B, N, 256), final state (B, H).
        """
        return self.forward_conditioned(self.conditioning(mel), coarse, fine, h0, prev)

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
        """As :meth:`forward`, from per-sample conditioning ``cond`` (B, N, C).

        ``fed_back`` = (coarse, fine), each (B, N) int64, are the samples fed back as the
        previous-sample inputs in place of the targets: step t reads ``fed_back[:, t - 1]``
        (``prev`` at t = 0). The current coarse input of the fine half stays ``coarse``, the
        coarse class the fine target belongs to. None feeds back the targets (teacher forcing).
        ``perturb`` = (perturbation, generator) perturbs the GRU's state after every sample
        (:func:`models.state_noise.perturbed_gru`, a training option); None, or an inactive
        perturbation, runs the fused GRU.
        """
        b, n = coarse.shape
        if cond.shape[:2] != (b, n) or fine.shape != (b, n):
            raise ValueError(
                f"conditioning {tuple(cond.shape)}, coarse {tuple(coarse.shape)} and fine "
                f"{tuple(fine.shape)} must agree on (batch, samples)"
            )
        c_fed, f_fed = (coarse, fine) if fed_back is None else fed_back
        if c_fed.shape != (b, n) or f_fed.shape != (b, n):
            raise ValueError(f"fed_back {tuple(c_fed.shape)}, {tuple(f_fed.shape)} must each be {(b, n)}")
        if prev is None:
            c0 = torch.full((b, 1), SILENCE_COARSE, dtype=torch.long, device=coarse.device)
            f0 = torch.full((b, 1), SILENCE_FINE, dtype=torch.long, device=coarse.device)
        else:
            c0, f0 = prev[0].view(b, 1), prev[1].view(b, 1)
        c_prev = torch.cat([c0, c_fed[:, :-1]], dim=1)  # (B, N)
        f_prev = torch.cat([f0, f_fed[:, :-1]], dim=1)  # (B, N)
        x = torch.stack([class_to_unit(c_prev), class_to_unit(f_prev), class_to_unit(coarse)], dim=-1)
        inp = torch.cat([x, cond], dim=-1)  # (B, N, 3 + C)
        hx = None if h0 is None else h0.unsqueeze(0).contiguous()  # (1, B, H)
        params = self.gru_params()
        params["weight_ih_l0"] = params["weight_ih_l0"] * self.input_mask
        if perturb is not None and perturb[0].active:
            out, h_n = perturbed_gru(params, inp, hx, *perturb)
        else:
            out, h_n = float32_gru(self.rnn, params, inp, hx)  # out (B, N, H)
        half = self.cfg.half
        logits_c = self.O2(F.relu(self.O1(out[..., :half])))
        logits_f = self.O4(F.relu(self.O3(out[..., half:])))
        return logits_c, logits_f, h_n.squeeze(0)

    def gru_params(self) -> dict[str, Tensor]:
        """The GRU's raw parameters by name (``weight_ih_l0`` unmasked), torch gate order."""
        return dict(self.rnn.named_parameters())

    def num_parameters(self) -> int:
        """Total trainable parameters."""
        return sum(p.numel() for p in self.parameters())
