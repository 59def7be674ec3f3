"""The compiled CPU subscale sampler: every global step of a chunk in one numba call.

:class:`SubscaleCpuSampler` follows :class:`models.samplers.subscale.SubscaleReferenceSampler`
operation by operation in float32. Per global step, for the running sub-tensors
``lo <= j < hi`` (rows of one (B, ...) batch):

1. gather each context window from the folded history (the layout of
   :func:`models.subscale_net.context_windows`);
2. ``ctx = relu((W_ctx win + b_ctx) + E[j])`` and ``I_ctx ctx`` with the packed mat-vecs of
   :mod:`models.samplers.blocksparse` (batched over the rows, 4 at a time);
3. the gate conditioning at the original position ``t * B + j`` plus ``I_ctx ctx``;
4. one step of the plain compiled sampler, :func:`models.samplers.cpu._run` with ``n = 1`` on
   rows ``lo .. hi - 1`` (its conditioning window is the precomputed vector with phase 0, so
   its interpolation returns it unchanged), which draws coarse then fine for every row.

With ``threads > 1`` the rows of a step are split among cores (numba ``prange``); a step's
windows only read samples of earlier steps (:mod:`models.subscale`), so the split is safe and
the result does not depend on it. Against the reference the mat-vec summation order and the
last bit of ``exp`` differ, so a class can flip when a draw falls within ~1e-7 of a CDF step
(tests bound how often, in lockstep).
"""

from __future__ import annotations

import logging
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from models.samplers.blocksparse import KIND_BSR4x4, matvec, pack_matrix
from models.samplers.cpu import CpuSampler, _run
from models.samplers.subscale import SubscaleState, SubscaleWeights, check_block, emit
from models.subscale import total_steps

logger = logging.getLogger(__name__)

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_SCALE = np.float32(127.5)


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _rows(m):
    """Padded output rows of a packed matrix tuple."""
    return (m[1].shape[0] - 1) * (4 if m[0] == KIND_BSR4x4 else 16)


@njit(cache=True, nogil=True, error_model="numpy")
def _substep(g, j0, j1, nb, fh, past, frames, hop, h, last, cbuf, fbuf, gates, uni, ctxW, ctx_b, emb, Ictx,
             R, R_bias, I0, I1, Ic, O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, rec):
    """Global step ``g`` for sub-tensors ``j0 <= j < j1`` (arguments as :func:`_steps`)."""
    hid = h.shape[1]
    w = past + fh
    k_in = 2 * (nb - 1) * w
    cc = ctx_b.shape[0]
    win = np.zeros((nb, k_in), np.float32)
    zc = np.zeros((nb, max(_rows(ctxW), cc)), np.float32)
    gc = np.zeros((nb, _rows(Ictx)), np.float32)
    cond = np.zeros((nb, 2, 3 * hid), np.float32)
    uni1 = np.zeros((nb, 1, 2), np.float32)
    pos0 = np.zeros(nb, np.int64)
    pcm = np.zeros((nb, 1), np.int16)
    record = rec.shape[0] > 0
    lg = np.zeros((nb, 1, 2, 256) if record else (0, 0, 0, 0), np.float32)
    for j in range(j0, j1):
        t = g - j * fh
        k = 0
        for ch in range(2):
            buf = cbuf if ch == 0 else fbuf
            for r in range(1, nb):
                for d in range(w):
                    win[j, k] = np.float32(buf[j - r, t + d]) / _SCALE - _F1 if r <= j else _F0
                    k += 1
    matvec(ctxW, win, 0, zc, j0, j1)
    for j in range(j0, j1):
        for c in range(cc):
            zc[j, c] = max((zc[j, c] + ctx_b[c]) + emb[j, c], _F0)
    matvec(Ictx, zc, 0, gc, j0, j1)
    for j in range(j0, j1):
        t = g - j * fh
        n = t * nb + j
        f0 = min(n // hop, frames - 1)
        f1 = min(n // hop + 1, frames - 1)
        a = np.float32(n % hop) / np.float32(hop)
        a1 = _F1 - a
        for i in range(3 * hid):
            cond[j, 0, i] = (gates[f0, i] * a1 + gates[f1, i] * a) + gc[j, i]
        uni1[j, 0, 0] = uni[n, 0]
        uni1[j, 0, 1] = uni[n, 1]
    _run(h, last, pos0, cond, uni1, 1, R, R_bias, I0, I1, Ic, O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, pcm, lg,
         j0, j1)
    for j in range(j0, j1):
        t = g - j * fh
        cbuf[j, t + past] = last[j, 0]
        fbuf[j, t + past] = last[j, 1]
        if record:
            rec[j, t, 0] = lg[j, 0, 0]
            rec[j, t, 1] = lg[j, 0, 1]


@njit(cache=True, nogil=True, error_model="numpy")
def _active(g, nb, fh, steps):
    lo = max(0, -((steps - 1 - g) // fh))  # ceil((g - T + 1) / F)
    hi = min(nb - 1, g // fh) + 1
    return lo, hi


@njit(cache=True, nogil=True, error_model="numpy")
def _steps(g0, g1, nb, fh, past, steps, frames, hop, h, last, cbuf, fbuf, gates, uni, ctxW, ctx_b, emb, Ictx,
           R, R_bias, I0, I1, Ic, O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, rec):
    """Global steps ``g0 <= g < g1`` on one core.

    Args:
        nb, fh, past: B, F and the context's past steps; steps: T; frames: gate frames of the
            utterance; hop: samples per frame.
        h: (B, H) float32 and last: (B, 2) int64, updated in place; cbuf, fbuf: (B, past + T +
            F - 1) int64 folded history, updated in place.
        gates: (>= needed, 3H) float32; uni: (T * B, 2) float32 in original order.
        ctxW, Ictx, R, O1..O4: packed matrices; ctx_b (Cc,), emb (B, Cc), the rest as
            :func:`models.samplers.cpu._run`.
        rec: (B, T, 2, 256) float32 logits record, or (0, 0, 0, 0) to skip.
    """
    for g in range(g0, g1):
        lo, hi = _active(g, nb, fh, steps)
        _substep(g, lo, hi, nb, fh, past, frames, hop, h, last, cbuf, fbuf, gates, uni, ctxW, ctx_b, emb, Ictx,
                 R, R_bias, I0, I1, Ic, O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, rec)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _steps_parallel(g0, g1, nb, fh, past, steps, frames, hop, h, last, cbuf, fbuf, gates, uni, ctxW, ctx_b, emb,
                    Ictx, R, R_bias, I0, I1, Ic, O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, rec, parts):
    """:func:`_steps` with each step's running rows split into ``parts`` ranges, one task each."""
    for g in range(g0, g1):
        lo, hi = _active(g, nb, fh, steps)
        n = hi - lo
        for p in prange(parts):
            a = lo + (n * p) // parts
            b = lo + (n * (p + 1)) // parts
            if b > a:
                _substep(g, a, b, nb, fh, past, frames, hop, h, last, cbuf, fbuf, gates, uni, ctxW, ctx_b, emb,
                         Ictx, R, R_bias, I0, I1, Ic, O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, rec)


class SubscaleCpuSampler:
    """Compiled subscale sampler with the API of :class:`~models.samplers.subscale.SubscaleReferenceSampler`.

    Args:
        weights: :class:`SubscaleWeights`.
        block: block shape of pruned weights (as :class:`~models.samplers.cpu.CpuSampler`).
        threads: cores that share each step's rows (1 = one core; None = numba's default).
        record_logits: keep every sample's logits in ``logits`` (two (B, T, 256) tensors).
    """

    def __init__(self, weights: SubscaleWeights, block: tuple[int, int] | None = None, threads: int | None = 1,
                 record_logits: bool = False) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.weights = weights
        self.sub = weights.sub
        self.hidden_size = weights.base.hidden_size
        self.hop_length = weights.base.hop_length
        self.threads = threads
        self.record_logits = record_logits
        self.logits: tuple[Tensor, Tensor] | None = None
        self._rec: np.ndarray | None = None
        self.step_sampler = CpuSampler(weights.base, block=block, threads=1)  # packs R, O1..O4

        def vec(t: Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().float().cpu().numpy())

        self._ctx = (pack_matrix(vec(weights.ctx_w), (16, 1), dense=True).as_tuple(), vec(weights.ctx_b),
                     vec(weights.emb), pack_matrix(vec(weights.I_ctx), (16, 1), dense=True).as_tuple())

    def initial_state(self, frames: int) -> SubscaleState:
        """Fresh state for an utterance of ``frames`` gate frames."""
        return SubscaleState.initial(self.sub, self.hidden_size, frames, self.hop_length)

    @torch.no_grad()
    def generate(
        self, state: SubscaleState, gates: Tensor, uniforms: Tensor, n_steps: int
    ) -> tuple[Tensor, SubscaleState]:
        """See :meth:`models.samplers.subscale.SubscaleReferenceSampler.generate`."""
        sub = self.sub
        run = check_block(state, gates, uniforms, self.hidden_size, self.hop_length, n_steps, sub)
        state = state.copy()
        steps, before = state.steps_per_subtensor, state.step
        h = state.h.float().numpy().copy()
        last = state.last.numpy().astype(np.int64).copy()
        cbuf = state.coarse.numpy().astype(np.int64).copy()
        fbuf = state.fine.numpy().astype(np.int64).copy()
        g_np = np.ascontiguousarray(gates.detach().float().cpu().numpy())
        u_np = np.ascontiguousarray(uniforms.detach().float().cpu().numpy())
        if self.record_logits and self._rec is None:
            self._rec = np.zeros((sub.factor, steps, 2, 256), np.float32)
        rec = self._rec if self._rec is not None else np.zeros((0, 0, 0, 0), np.float32)
        args: tuple[Any, ...] = (
            state.step, state.step + run, sub.factor, sub.horizon, sub.past, steps, state.frames, self.hop_length,
            h, last, cbuf, fbuf, g_np, u_np, *self._ctx, *self.step_sampler._args(), rec,
        )
        threads = min(self.threads or numba.get_num_threads(), sub.factor,
                      numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        if threads > 1:
            old = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                _steps_parallel(*(*args, threads))
            finally:
                numba.set_num_threads(old)
        elif run > 0:
            _steps(*args)
        if self._rec is not None:
            lt = torch.from_numpy(self._rec)
            self.logits = (lt[:, :, 0], lt[:, :, 1])
        state.h, state.last = torch.from_numpy(h), torch.from_numpy(last)
        state.coarse, state.fine = torch.from_numpy(cbuf), torch.from_numpy(fbuf)
        state.step += run
        pcm = emit(state, before, sub)
        state.emitted += int(pcm.shape[0])
        return pcm, state

    def total_steps(self, state: SubscaleState) -> int:
        """Global steps of the whole utterance."""
        return total_steps(self.sub.factor, self.sub.horizon, state.steps_per_subtensor)
