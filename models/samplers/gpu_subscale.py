"""The GPU subscale sampler: host side of :mod:`models.samplers.persistent_subscale`.

:class:`GpuSubscaleSampler` has the API of
:class:`models.samplers.subscale.SubscaleReferenceSampler` (``initial_state``, ``generate``
over any number of global steps, chunked generation equal to whole). The WaveRNN step's
matrices are held as float16 on the device (:func:`half_subscale_weights` gives the float32
weights the kernel effectively computes with, for the reference); the context network's
matrices stay float32. Per call the utterance's folded history, state and draws go to the
device, one persistent launch (or, ``mode="phased"``, one launch per phase and step: what
Triton's CPU interpreter runs in CI) generates the steps, and the history comes back to hand
out the samples that became final. Dense weights only (a pruned voice runs with its zeros).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from torch import Tensor

from models.samplers.gpu import MAX_SPINS, MODES, SAMPLE_ROWS, GpuSampler, _pow2, dot_block_k, half_weights
from models.samplers.persistent_subscale import (
    PHASE_CONTEXT,
    PHASE_FINAL,
    PHASE_FINE_HEAD,
    subscale_block_kernel,
)
from models.samplers.subscale import SubscaleState, SubscaleWeights, check_block, emit

logger = logging.getLogger(__name__)


def half_subscale_weights(weights: SubscaleWeights) -> SubscaleWeights:
    """The weights as the kernel sees them: the step's matrices rounded to float16, the rest float32."""
    return replace(weights, base=half_weights(weights.base))


def context_tasks(rows: int, channels: int, programs: int) -> tuple[int, int]:
    """(NG channel groups, UX channels per group): about one (row, group) task per program."""
    groups = 1
    while groups * 2 <= max(1, programs // rows) and groups * 2 <= _pow2(channels):
        groups *= 2
    return groups, max(1, _pow2(channels) // groups)


class GpuSubscaleSampler:
    """Fused-kernel subscale sampler with the API of :class:`~models.samplers.subscale.SubscaleReferenceSampler`.

    Args:
        weights: :class:`SubscaleWeights` (any device; copied to ``device``).
        device, mode, max_programs, dot_precision, max_spins: as :class:`~models.samplers.gpu.GpuSampler`
            (a persistent barrier that gives up reruns the call in phased mode, kept from then on).
    """

    def __init__(self, weights: SubscaleWeights, device: torch.device | str = "cuda", mode: str = "persistent",
                 max_programs: int | None = None, dot_precision: str = "tf32x3", max_spins: int = MAX_SPINS) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.step_sampler = GpuSampler(weights.base, device, mode, max_programs, dot_precision, max_spins,
                                       sparse="never")  # checks the device and holds R, O1..O4 as fp16
        self.weights = weights
        self.sub = weights.sub
        self.device = self.step_sampler.device
        self.mode = mode
        self.hidden_size = weights.base.hidden_size
        self.hop_length = weights.base.hop_length
        dev = self.device
        self.ctx = {name: getattr(weights, name).to(dev, torch.float32).contiguous()
                    for name in ("ctx_w", "ctx_b", "emb", "I_ctx")}

    def initial_state(self, frames: int) -> SubscaleState:
        """Fresh state for an utterance of ``frames`` gate frames (CPU tensors, as the reference's)."""
        return SubscaleState.initial(self.sub, self.hidden_size, frames, self.hop_length)

    def _meta(self) -> tuple[dict[str, object], int, int]:
        gs = self.step_sampler
        part, bb, dot = gs.partition(self.sub.factor)
        groups, per = context_tasks(self.sub.factor, self.sub.context_channels, part.programs)
        h = self.hidden_size
        meta: dict[str, object] = {
            "UC": part.units, "UO": part.head_rows, "HP": _pow2(h), "HALFP": _pow2(h // 2), "BB": bb,
            "BK": dot_block_k(h, bb), "DOT": dot, "DOT_PRECISION": gs.dot_precision, "SB": min(bb, SAMPLE_ROWS),
            "KP": _pow2(self.sub.context_inputs), "CCP": _pow2(self.sub.context_channels), "UX": per}
        return meta, part.programs, groups

    @torch.no_grad()
    def generate(self, state: SubscaleState, gates: Tensor, uniforms: Tensor,
                 n_steps: int) -> tuple[Tensor, SubscaleState]:
        """See :meth:`models.samplers.subscale.SubscaleReferenceSampler.generate`."""
        sub, hop = self.sub, self.hop_length
        run = check_block(state, gates, uniforms, self.hidden_size, hop, n_steps, sub)
        state = state.copy()
        before = state.step
        if run > 0:
            self._launch(state, gates, uniforms, run)
        state.step += run
        pcm = emit(state, before, sub)
        state.emitted += int(pcm.shape[0])
        return pcm, state

    def _launch(self, state: SubscaleState, gates: Tensor, uniforms: Tensor, run: int) -> None:
        """Run ``run`` steps from ``state.step``; updates ``state``'s h, last and history in place."""
        sub, dev, h = self.sub, self.device, self.hidden_size
        nb, steps = sub.factor, state.steps_per_subtensor
        w, c = self.step_sampler.w, self.ctx
        meta, programs, groups = self._meta()
        g0, g1 = state.step, state.step + run
        gates_d = gates.to(dev, torch.float32).contiguous()
        uni = uniforms.to(dev, torch.float32).contiguous()
        cbuf = state.coarse.to(dev, torch.int32).contiguous()
        fbuf = state.fine.to(dev, torch.int32).contiguous()
        h_buf = state.h.to(dev, torch.float32).unsqueeze(0).repeat(2, 1, 1).contiguous()  # both halves: state in
        scratch = torch.zeros(nb, 6, h // 2, device=dev, dtype=torch.float32)
        ctx = torch.zeros(nb, sub.context_channels, device=dev, dtype=torch.float32)
        lc = w["O2_bias"].repeat(nb, 1)
        lf = w["O4_bias"].repeat(nb, 1)
        counter = torch.zeros(1, device=dev, dtype=torch.int32)
        flag = torch.zeros(1, device=dev, dtype=torch.int32)
        args = (w["R"], w["R_bias"], w["I_prev"], w["I_coarse"], w["O1"], w["O1_bias"], w["O2"], w["O2_bias"],
                w["O3"], w["O3_bias"], w["O4"], w["O4_bias"], c["ctx_w"], c["ctx_b"], c["emb"], c["I_ctx"],
                gates_d, uni, cbuf, fbuf, h_buf, scratch, ctx, lc, lf, counter, flag,
                g0, g1, steps, state.frames, self.hop_length, h, self.step_sampler.head_hidden, nb, sub.horizon,
                sub.past, int(cbuf.shape[1]), sub.context_channels, groups)
        grid = (programs,)
        if self.mode == "persistent":
            subscale_block_kernel[grid](*args, 0, 0, self.step_sampler.max_spins, PERSISTENT=True, num_warps=8,
                                        **meta)
            if int(flag.item()):
                logger.warning("GPU subscale sampler: a grid barrier timed out (%d programs not all resident); "
                               "rerunning in phased mode from now on", grid[0])
                self.mode = "phased"
                cbuf.copy_(state.coarse.to(dev, torch.int32))
                fbuf.copy_(state.fine.to(dev, torch.int32))
                h_buf.copy_(state.h.to(dev, torch.float32).unsqueeze(0).expand(2, -1, -1))
                lc.copy_(w["O2_bias"].repeat(nb, 1))
                lf.copy_(w["O4_bias"].repeat(nb, 1))
        if self.mode == "phased":
            for g in range(g0, g1):
                for phase in range(PHASE_CONTEXT, PHASE_FINE_HEAD + 1):
                    subscale_block_kernel[grid](*args, g, phase, self.step_sampler.max_spins, PERSISTENT=False,
                                                num_warps=4, **meta)
            subscale_block_kernel[grid](*args, g1, PHASE_FINAL, self.step_sampler.max_spins, PERSISTENT=False,
                                        num_warps=4, **meta)
        state.coarse = cbuf.long().cpu()
        state.fine = fbuf.long().cpu()
        state.h = h_buf[run % 2].cpu()
        # each started row's last sample, as the reference keeps it (the kernel reads it from the history)
        rows = torch.arange(nb)
        done = (g1 - rows * sub.horizon).clamp(min=0, max=steps)  # steps each row has generated
        col = (done - 1 + sub.past).clamp(min=0)
        started = done > 0
        state.last = torch.where(started.unsqueeze(1),
                                 torch.stack([state.coarse[rows, col], state.fine[rows, col]], dim=1), state.last)
