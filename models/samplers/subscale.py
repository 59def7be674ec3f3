"""Subscale generation: the B sub-tensors of one utterance as one batch with staggered starts.

Sub-tensor ``j`` generates its step ``t = g - j * F`` at global step ``g``
(:func:`models.subscale.generation_schedule`), so from step ``(B - 1) * F`` on every step
yields B samples. One step: for each running sub-tensor, read its context window from the
samples generated so far (:func:`models.subscale_net.context_windows`, the same layout),
compute ``ctx = relu(W_ctx window + b_ctx + E[j])`` and its gate contribution ``I_ctx ctx``,
add the log-mel gate conditioning interpolated at the original position ``t * B + j``, and run
the plain WaveRNN step (:class:`models.samplers.reference.WaveRNNCell`) on all of them as one
batch.

Randomness is an input: ``uniforms`` (T * B, 2) in *original* sample order (row ``n`` draws
sample ``n``), e.g. ``UniformSource(seed).draw(T * B)``. The utterance of ``frames`` gate
frames has ``L = frames * hop`` samples; when ``L`` is not a multiple of B the tail of the
last row is generated too (conditioning clamped to the last frame) and dropped.

Chunked generation: :meth:`SubscaleReferenceSampler.generate` runs any number of global steps
from a :class:`SubscaleState` and returns the samples that became final, in order; any split
of the steps gives the same audio. Row ``t`` (samples ``t * B .. t * B + B - 1``) is final after
step ``t + (B - 1) * F``, when the newest generated sample is ``(t + (B - 1) * F) * B``: the
first output needs conditioning through sample :func:`models.subscale.subscale_lag_samples`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.audio import join_pcm
from models.config import SubscaleConfig
from models.samplers.reference import WaveRNNCell
from models.subscale import total_steps
from models.subscale_net import SubscaleWaveRNN
from models.wavernn import SILENCE_COARSE, SILENCE_FINE, class_to_unit
from models.weights import InferenceWeights, extract_weights


@dataclass(frozen=True)
class SubscaleWeights:
    """Inference weights of a Subscale WaveRNN.

    Attributes:
        base: the WaveRNN step's weights (:class:`~models.weights.InferenceWeights`).
        sub: the subscale settings (B, F, past, context channels Cc).
        ctx_w: (Cc, K) context layer, ``K = 2 * (B - 1) * (past + horizon)``; ctx_b: (Cc,).
        emb: (B, Cc) sub-tensor embedding.
        I_ctx: (3H, Cc) input columns of ``ctx``, rows in the paper's gate order (u, r, e).
    """

    base: InferenceWeights
    sub: SubscaleConfig
    ctx_w: Tensor
    ctx_b: Tensor
    emb: Tensor
    I_ctx: Tensor

    def __post_init__(self) -> None:
        h, cc, k, nb = self.base.hidden_size, self.sub.context_channels, self.sub.context_inputs, self.sub.factor
        expected = {"ctx_w": (cc, k), "ctx_b": (cc,), "emb": (nb, cc), "I_ctx": (3 * h, cc)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"SubscaleWeights.{name} has shape {got}, expected {shape} for H={h}, {self.sub}")


@torch.no_grad()
def extract_subscale_weights(model: SubscaleWaveRNN, temperature: float = 1.0) -> SubscaleWeights:
    """Read a trained :class:`SubscaleWaveRNN` into :class:`SubscaleWeights` (float32, CPU), its
    heads at sampling ``temperature`` (see :mod:`models.weights`)."""
    if not isinstance(model, SubscaleWaveRNN):
        raise ValueError(f"expected a SubscaleWaveRNN, got {type(model).__name__}; plain voices use extract_weights")
    h = model.cfg.hidden_size
    w_ctx = (model.gru_params()["weight_ih_l0"] * model.input_mask)[:, 3 + model.n_cond :]  # (3H, Cc) r, z, n
    r, z, n = w_ctx.split(h, dim=0)

    def cpu(t: Tensor) -> Tensor:
        return t.detach().float().cpu().contiguous()

    return SubscaleWeights(
        base=extract_weights(model, extra_inputs=True, temperature=temperature), sub=model.sub,
        ctx_w=cpu(model.context.weight), ctx_b=cpu(model.context.bias),
        emb=cpu(model.sub_embedding.weight), I_ctx=cpu(torch.cat([z, r, n], dim=0)),
    )


@dataclass
class SubscaleState:
    """Generation state of one utterance.

    Attributes:
        h: (B, H) float32 state of each sub-tensor.
        last: (B, 2) int64 last (coarse, fine) of each sub-tensor (silence before its start).
        coarse, fine: (B, past + T + horizon - 1) int64 folded history; step ``s`` of sub-tensor
            ``i`` at column ``s + past``, silence where nothing is (or will be) generated.
        frames: gate-conditioning frames of the utterance (``L = frames * hop`` samples).
        length: L; step: next global step; emitted: samples returned so far.
    """

    h: Tensor
    last: Tensor
    coarse: Tensor
    fine: Tensor
    frames: int
    length: int
    step: int = 0
    emitted: int = 0

    @classmethod
    def initial(cls, sub: SubscaleConfig, hidden_size: int, frames: int, hop: int) -> SubscaleState:
        """Zero states and silence for an utterance of ``frames`` frames at ``hop`` samples each."""
        if frames < 1 or hop < 1:
            raise ValueError(f"need frames >= 1 and hop >= 1, got frames={frames}, hop={hop}")
        nb, length = sub.factor, frames * hop
        steps = -(-length // nb)
        width = sub.past + steps + sub.horizon - 1
        last = torch.tensor([[SILENCE_COARSE, SILENCE_FINE]] * nb, dtype=torch.long)
        return cls(torch.zeros(nb, hidden_size), last, torch.full((nb, width), SILENCE_COARSE, dtype=torch.long),
                   torch.full((nb, width), SILENCE_FINE, dtype=torch.long), frames, length)

    @property
    def steps_per_subtensor(self) -> int:
        """T = ceil(L / B)."""
        return -(-self.length // int(self.h.shape[0]))

    def copy(self) -> SubscaleState:
        return replace(self, h=self.h.clone(), last=self.last.clone(), coarse=self.coarse.clone(),
                       fine=self.fine.clone())


def active_range(g: int, sub: SubscaleConfig, steps: int) -> tuple[int, int]:
    """Sub-tensors ``lo <= j < hi`` that run at global step ``g`` (``0 <= g - j * F < T``)."""
    f = sub.horizon
    lo = max(0, -(-(g - steps + 1) // f))
    hi = min(sub.factor - 1, g // f) + 1
    return lo, hi


def final_samples(steps_done: int, sub: SubscaleConfig, steps: int, length: int) -> int:
    """Original samples that are final (every sample before them generated) after ``steps_done`` steps."""
    rows = min(steps, max(0, steps_done - (sub.factor - 1) * sub.horizon))
    return min(length, rows * sub.factor)


def newest_sample(steps_done: int, sub: SubscaleConfig, steps: int) -> int:
    """The highest original sample index generated in steps ``0 .. steps_done - 1`` (-1 if none)."""
    if steps_done <= 0:
        return -1
    g = min(steps_done, total_steps(sub.factor, sub.horizon, steps)) - 1
    if g < steps:  # sub-tensor 0 still runs and leads: its sample (0, g)
        return g * sub.factor
    return (steps - 1) * sub.factor + min(sub.factor - 1, (g - steps + 1) // sub.horizon)  # within the last row


def frames_needed(steps_done: int, sub: SubscaleConfig, steps: int, hop: int, frames: int) -> int:
    """Gate frames (a prefix of the utterance's) that steps ``0 .. steps_done - 1`` read."""
    n = newest_sample(steps_done, sub, steps)
    return 0 if n < 0 else min(n // hop + 1, frames - 1) + 1


def check_block(state: SubscaleState, gates: Tensor, uniforms: Tensor, hidden: int, hop: int, n_steps: int,
                sub: SubscaleConfig) -> int:
    """ValueError unless the inputs fit; returns the steps to run (``n_steps`` clipped at the end)."""
    steps = state.steps_per_subtensor
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    run = min(n_steps, total_steps(sub.factor, sub.horizon, steps) - state.step)
    if uniforms.shape != (steps * sub.factor, 2):
        raise ValueError(f"uniforms must be (T * B = {steps * sub.factor}, 2) in original sample order, "
                         f"got {tuple(uniforms.shape)}; draw them with UniformSource(seed).draw({steps * sub.factor})")
    need = frames_needed(state.step + run, sub, steps, hop, state.frames)
    if gates.ndim != 2 or gates.shape[1] != 3 * hidden or not need <= gates.shape[0] <= state.frames:
        raise ValueError(f"gates must be (F, 3H={3 * hidden}) with {need} <= F <= {state.frames} frames for "
                         f"{run} more steps from step {state.step}, got {tuple(gates.shape)}; "
                         "feed more conditioning frames or run fewer steps")
    return run


def emit(state: SubscaleState, steps_before: int, sub: SubscaleConfig) -> Tensor:
    """int16 samples that became final since ``steps_before`` (rows read from the history)."""
    steps = state.steps_per_subtensor
    start = final_samples(steps_before, sub, steps, state.length)
    stop = final_samples(state.step, sub, steps, state.length)
    r0, r1 = start // sub.factor, -(-stop // sub.factor)
    cols = slice(sub.past + r0, sub.past + r1)
    pcm = join_pcm(state.coarse[:, cols], state.fine[:, cols])  # (B, rows)
    flat = pcm.T.reshape(-1)  # (rows * B,) original order
    return flat[start - r0 * sub.factor : stop - r0 * sub.factor]


class SubscaleReferenceSampler:
    """Readable torch subscale sampler: one batched WaveRNN step per global step.

    Args:
        weights: :class:`SubscaleWeights`.
        record_logits: keep the logits of every generated sample in ``logits`` (two (B, T, 256)
            folded tensors, filled as steps run), for tests.
    """

    def __init__(self, weights: SubscaleWeights, record_logits: bool = False) -> None:
        self.weights = weights
        self.sub = weights.sub
        self.cell = WaveRNNCell(weights.base)
        self.hidden_size = weights.base.hidden_size
        self.hop_length = weights.base.hop_length
        self.record_logits = record_logits
        self.logits: tuple[Tensor, Tensor] | None = None

    def initial_state(self, frames: int) -> SubscaleState:
        """Fresh state for an utterance of ``frames`` gate frames."""
        return SubscaleState.initial(self.sub, self.hidden_size, frames, self.hop_length)

    def _windows(self, state: SubscaleState, js: Tensor, ts: Tensor) -> Tensor:
        """(n, K) context inputs of samples (js[k], ts[k]) from the history (layout of context_windows)."""
        nb, w = self.sub.factor, self.sub.window
        r = torch.arange(1, nb)
        src = (js.view(-1, 1) - r.view(1, -1)).clamp(min=0)  # (n, B-1)
        cols = ts.view(-1, 1) + torch.arange(w).view(1, -1)  # (n, W): column t + k is step t - past + k
        valid = (r.view(1, -1) <= js.view(-1, 1)).float().unsqueeze(-1)  # (n, B-1, 1)
        chans = [class_to_unit(buf[src.unsqueeze(-1), cols.unsqueeze(1)]) * valid for buf in (state.coarse, state.fine)]
        return torch.stack(chans, dim=1).reshape(js.shape[0], self.sub.context_inputs)  # (n, 2, B-1, W) -> (n, K)

    @torch.no_grad()
    def generate(
        self, state: SubscaleState, gates: Tensor, uniforms: Tensor, n_steps: int
    ) -> tuple[Tensor, SubscaleState]:
        """Run up to ``n_steps`` global steps.

        Args:
            state: the utterance's state (not modified; a new one is returned).
            gates: (F, 3H) gate conditioning frames of the utterance (all, or a prefix long
                enough for these steps, see :func:`frames_needed`).
            uniforms: (T * B, 2) float32 draws in original sample order.
            n_steps: global steps to run (clipped at the end of the utterance).
        Returns:
            the samples that became final, int16 (m,) in original order, and the new state.
        """
        sub, hop, wt = self.sub, self.hop_length, self.weights
        run = check_block(state, gates, uniforms, self.hidden_size, hop, n_steps, sub)
        state = state.copy()
        steps, before = state.steps_per_subtensor, state.step
        if self.record_logits and self.logits is None:
            self.logits = (torch.zeros(sub.factor, steps, 256), torch.zeros(sub.factor, steps, 256))
        last_frame = state.frames - 1
        for g in range(state.step, state.step + run):
            lo, hi = active_range(g, sub, steps)
            js = torch.arange(lo, hi)
            ts = g - js * sub.horizon
            z = F.linear(self._windows(state, js, ts), wt.ctx_w, wt.ctx_b) + wt.emb[js]
            g_ctx = F.relu(z) @ wt.I_ctx.T  # (n, 3H)
            pos = ts * sub.factor + js  # original sample positions
            i0 = (pos // hop).clamp(max=last_frame)
            i1 = (pos // hop + 1).clamp(max=last_frame)
            a = ((pos % hop).float() / hop).unsqueeze(-1)
            cond = (gates[i0] * (1 - a) + gates[i1] * a) + g_ctx
            h, c, f, lc, lf = self.cell(state.h[lo:hi], state.last[lo:hi, 0], state.last[lo:hi, 1], cond,
                                        uniforms[pos])
            state.h[lo:hi] = h
            state.last[lo:hi] = torch.stack([c, f], dim=1)
            state.coarse[js, ts + sub.past] = c
            state.fine[js, ts + sub.past] = f
            if self.logits is not None:
                self.logits[0][js, ts] = lc
                self.logits[1][js, ts] = lf
        state.step += run
        pcm = emit(state, before, sub)
        state.emitted += int(pcm.shape[0])
        return pcm, state


def generate_utterance(sampler: SubscaleReferenceSampler, gates: Tensor, uniforms: Tensor,
                       chunk_steps: int = 0) -> np.ndarray:
    """The whole utterance, int16 (frames * hop,), in chunks of ``chunk_steps`` steps (0 = one call).

    Works with any sampler that has ``initial_state(frames)`` and ``generate(state, gates,
    uniforms, n_steps)`` (the reference and the compiled one).
    """
    state = sampler.initial_state(int(gates.shape[0]))
    total = total_steps(sampler.sub.factor, sampler.sub.horizon, state.steps_per_subtensor)
    chunk = chunk_steps or total
    out = []
    while state.step < total:
        pcm, state = sampler.generate(state, gates, uniforms, chunk)
        out.append(pcm.numpy())
    return np.concatenate(out).astype(np.int16)
