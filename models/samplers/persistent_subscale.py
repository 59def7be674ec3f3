"""The fused persistent kernel for Subscale WaveRNN (Triton): a block of global steps in one launch.

One launch generates global steps ``g0 <= g < g1`` of one utterance folded into ``NB``
sub-tensors (:mod:`models.samplers.subscale`). The ``NB`` rows of a step (sub-tensor ``j`` at
its step ``t = g - j * FH``, running while ``0 <= t < T``) are the batch of the plain kernel
(:mod:`models.samplers.persistent`), whose helpers it reuses: weights split over programs and
kept on chip, hidden state exchanged through L2, a grid barrier after each phase. A step is
five phases:

===================  =================================================================
``PHASE_CONTEXT``    draw ``f`` of step ``g - 1`` for the rows that ran then (every program
                     identically; program 0 writes it into the folded history), then the
                     context network for this step's rows: each task (row ``j``, a group of
                     ``UX`` channels) gathers the row's window of earlier sub-tensors from the
                     history and computes ``relu(W_ctx win + b_ctx + E[j])`` into ``ctx``
``PHASE_RECURRENT``  ``R h`` and the coarse gates; the gate input of row ``j`` is the
                     log-mel gates interpolated at its original position ``t * NB + j``, plus
                     ``I_ctx ctx_j``, plus ``I_prev [c, f]`` of the row's previous sample
                     (read from the history; silence before its first step)
``PHASE_COARSE_HEAD``  as the plain kernel
``PHASE_FINE_GATES``   draw ``c`` (program 0 writes it into the history), the fine gates
``PHASE_FINE_HEAD``    as the plain kernel
===================  =================================================================

and ``PHASE_FINAL`` (after the last step) draws the last ``f``. A step's context window only
holds samples of earlier steps (:mod:`models.subscale`); its newest one, row ``j - 1``'s ``f``
of step ``g - 1``, is drawn in the same phase, so every program takes it from its own
registers rather than from memory. The uniform of row ``j`` at step ``g`` is
``uni[(g - j * FH) * NB + j]``: base ``g * NB``, row stride ``1 - FH * NB`` (negative).

Launch modes as the plain kernel: ``PERSISTENT`` (one launch, grid barriers, CUDA only) or
phased (one launch per phase and step; what Triton's CPU interpreter runs in CI). Host
wrapper: :mod:`models.samplers.gpu_subscale`.
"""

from __future__ import annotations

import triton
import triton.language as tl

from models.samplers.persistent import (
    _fine_gates,
    _grid_sync,
    _gru,
    _head_partial,
    _matmul,
    _recurrent_rows,
    _reset_logits,
    _resident_tiles,
    _sample,
    _slot,
    _unit,
)

PHASE_CONTEXT = 0
PHASE_RECURRENT = 1
PHASE_COARSE_HEAD = 2
PHASE_FINE_GATES = 3
PHASE_FINE_HEAD = 4
PHASE_FINAL = 5
#: Phases (and grid barriers) per global step.
PHASES_PER_STEP = tl.constexpr(5)
SILENCE_C = tl.constexpr(128)
SILENCE_F = tl.constexpr(0)


@triton.jit
def _active(g, NB, FH, T):
    """Rows ``lo <= j < hi`` that run at global step ``g`` (``0 <= g - j * FH < T``)."""
    x = g - T + 1
    lo = tl.where(x > 0, (x + FH - 1) // FH, 0)
    hi = tl.minimum(NB - 1, g // FH) + 1
    return lo, hi


@triton.jit
def _draw_fine(g, g0, pid, lf_ptr, uni_ptr, fbuf_ptr, NB, FH, T, PAST, WIDTH, BB: tl.constexpr, SB: tl.constexpr):
    """``f`` of step ``g - 1`` for the rows that ran then ((BB,) int32, zeros when ``g == g0``);
    program 0 writes it into the history."""
    bcol = tl.arange(0, BB)
    f = tl.zeros((BB,), dtype=tl.int32)
    if g > g0:
        gp = g - 1
        lo, hi = _active(gp, NB, FH, T)
        f = _sample(lf_ptr, uni_ptr + gp * NB * 2 + 1, (1 - FH * NB) * 2, lo, hi, BB, SB)
        if pid == 0:
            ok = (bcol >= lo) & (bcol < hi)
            tl.store(fbuf_ptr + bcol * WIDTH + (gp - bcol * FH) + PAST, f, mask=ok)
    return f


@triton.jit
def _context(g, g0, pid, nprog, fnew, ctxw_ptr, ctxb_ptr, emb_ptr, cbuf_ptr, fbuf_ptr, ctx_ptr,
             NB, FH, T, PAST, WIDTH, CC, NG, BB: tl.constexpr, KP: tl.constexpr, UX: tl.constexpr):
    """``ctx[j] = relu(W_ctx win_j + b_ctx + E[j])`` for this step's rows, tasks (row, channel group)
    spread over the programs (as :meth:`SubscaleReferenceSampler._windows` lays the window out)."""
    lo, hi = _active(g, NB, FH, T)
    W = PAST + FH
    per = (NB - 1) * W
    K = 2 * per
    k = tl.arange(0, KP)
    ch2 = k // per  # 0 coarse, 1 fine
    rem = k % per
    r = rem // W + 1  # offset to the earlier sub-tensor
    d = rem % W  # column within the window
    bcol = tl.arange(0, BB)
    for task in range(pid, NB * NG, nprog):
        j = task % NB
        grp = task // NB
        if (j >= lo) & (j < hi):
            t = g - j * FH
            valid = (k < K) & (r <= j)
            src = (j - r) * WIDTH + t + d
            vc = tl.load(cbuf_ptr + src, mask=valid & (ch2 == 0), other=0, cache_modifier=".cg")
            vf = tl.load(fbuf_ptr + src, mask=valid & (ch2 == 1), other=0, cache_modifier=".cg")
            win = tl.where(valid, _unit(vc + vf), 0.0)
            # the newest sample of the window, row j-1's f of step g-1, was drawn in this very phase
            newest = (ch2 == 1) & (r == 1) & (d == W - 1) & (j >= 1) & (t + FH - 1 < T) & (g > g0)
            f_last = tl.sum(tl.where(bcol == j - 1, fnew, 0))
            win = tl.where(newest, _unit(f_last), win)
            ch = grp * UX + tl.arange(0, UX)
            chok = ch < CC
            w = tl.load(ctxw_ptr + ch[:, None] * K + k[None, :], mask=chok[:, None] & (k < K)[None, :], other=0.0)
            z = tl.sum(w * win[None, :], axis=1) + tl.load(ctxb_ptr + ch, mask=chok, other=0.0)
            z = z + tl.load(emb_ptr + j * CC + ch, mask=chok, other=0.0)
            tl.store(ctx_ptr + j * CC + ch, tl.maximum(z, 0.0), mask=chok)


@triton.jit
def _gate_input(gates_ptr, I_prev_ptr, Ictx_ptr, ctx_ptr, grow, row_ok, pos, ok, frames, hop, H3, CC, NB, xc, xf,
                BB: tl.constexpr, CCP: tl.constexpr):
    """Gate rows ``grow`` of every row: interpolated gates + ``I_ctx ctx`` + ``I_prev [c, f]`` -> (R, BB)."""
    bcol = tl.arange(0, BB)
    i = pos // hop
    i0 = tl.minimum(i, frames - 1)
    i1 = tl.minimum(i + 1, frames - 1)
    a = tl.math.div_rn((pos % hop).to(tl.float32), hop * 1.0)
    m = row_ok[:, None] & ok[None, :]
    c0 = tl.load(gates_ptr + (i0 * H3)[None, :] + grow[:, None], mask=m, other=0.0)
    c1 = tl.load(gates_ptr + (i1 * H3)[None, :] + grow[:, None], mask=m, other=0.0)
    cond = c0 * (1.0 - a)[None, :] + c1 * a[None, :]
    cc = tl.arange(0, CCP)
    wc = tl.load(Ictx_ptr + grow[:, None] * CC + cc[None, :], mask=row_ok[:, None] & (cc < CC)[None, :], other=0.0)
    gctx = tl.zeros(cond.shape, dtype=tl.float32)
    for b in tl.static_range(BB):
        xb = tl.load(ctx_ptr + b * CC + cc, mask=(cc < CC) & (cc * 0 + b < NB), other=0.0,
                     cache_modifier=".cg")
        col = tl.sum(wc * xb[None, :], axis=1)
        gctx = tl.where(bcol[None, :] == b, col[:, None], gctx)
    cond = cond + gctx
    w0 = tl.load(I_prev_ptr + grow * 2, mask=row_ok, other=0.0)[:, None]
    w1 = tl.load(I_prev_ptr + grow * 2 + 1, mask=row_ok, other=0.0)[:, None]
    return cond + (xc * w0 + xf * w1)


@triton.jit
def _phase(phase, g, g0, pid, nprog, w_r, w_o1, w_o2, w_o3, w_o4,
           R_ptr, R_bias_ptr, I_prev_ptr, I_coarse_ptr,
           O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr, O4_bias_ptr,
           ctxw_ptr, ctxb_ptr, emb_ptr, Ictx_ptr,
           gates_ptr, uni_ptr, cbuf_ptr, fbuf_ptr, h_ptr, scratch_ptr, ctx_ptr, lc_ptr, lf_ptr,
           T, frames, hop, H, HH, NB, FH, PAST, WIDTH, CC, NG,
           UC: tl.constexpr, UO: tl.constexpr, HP: tl.constexpr, HALFP: tl.constexpr, BB: tl.constexpr,
           BK: tl.constexpr, DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, SB: tl.constexpr,
           KP: tl.constexpr, CCP: tl.constexpr, UX: tl.constexpr):
    """One phase of global step ``g`` for program ``pid`` (see the module docstring)."""
    half = H // 2
    H3 = 3 * H
    bcol = tl.arange(0, BB)
    lo, hi = _active(g, NB, FH, T)
    t = g - bcol * FH  # (BB,) each row's own step
    ok = (bcol >= lo) & (bcol < hi)
    pos = t * NB + bcol  # original sample positions
    j = tl.arange(0, UC)
    unit = pid * UC + j
    unit_ok = unit < half
    m2 = unit_ok[:, None] & ok[None, :]
    h_prev = h_ptr + ((g - g0) % 2) * NB * H
    h_next = h_ptr + ((g - g0 + 1) % 2) * NB * H
    if phase == 0:  # PHASE_CONTEXT
        fnew = _draw_fine(g, g0, pid, lf_ptr, uni_ptr, fbuf_ptr, NB, FH, T, PAST, WIDTH, BB, SB)
        _context(g, g0, pid, nprog, fnew, ctxw_ptr, ctxb_ptr, emb_ptr, cbuf_ptr, fbuf_ptr, ctx_ptr,
                 NB, FH, T, PAST, WIDTH, CC, NG, BB, KP, UX)
    elif phase == 1:  # PHASE_RECURRENT
        started = ok & (t >= 1)
        prev = bcol * WIDTH + t - 1 + PAST
        c_prev = tl.where(started, tl.load(cbuf_ptr + prev, mask=started, other=0, cache_modifier=".cg"), SILENCE_C)
        f_prev = tl.where(started, tl.load(fbuf_ptr + prev, mask=started, other=0, cache_modifier=".cg"), SILENCE_F)
        xc = _unit(c_prev)[None, :]
        xf = _unit(f_prev)[None, :]
        _r, _slot_ids, rows, r_ok = _recurrent_rows(pid, H, UC)  # rows of R in the paper's order
        gh = _matmul(w_r, R_ptr, rows, r_ok, H, h_prev, H, H, hi, 8 * UC, HP, BB, BK, DOT, DOT_PRECISION)
        gh = gh + tl.load(R_bias_ptr + rows, mask=r_ok, other=0.0)[:, None]
        gh3 = tl.reshape(gh, (8, UC, BB))
        h_old = tl.load(h_prev + bcol[None, :] * H + unit[:, None], mask=m2, other=0.0, cache_modifier=".cg")
        gi_u = _gate_input(gates_ptr, I_prev_ptr, Ictx_ptr, ctx_ptr, unit, unit_ok, pos, ok, frames, hop, H3, CC,
                           NB, xc, xf, BB, CCP)
        gi_r = _gate_input(gates_ptr, I_prev_ptr, Ictx_ptr, ctx_ptr, H + unit, unit_ok, pos, ok, frames, hop, H3,
                           CC, NB, xc, xf, BB, CCP)
        gi_e = _gate_input(gates_ptr, I_prev_ptr, Ictx_ptr, ctx_ptr, 2 * H + unit, unit_ok, pos, ok, frames, hop,
                           H3, CC, NB, xc, xf, BB, CCP)
        h_new = _gru(gi_u, gi_r, gi_e, _slot(gh3, 0), _slot(gh3, 1), _slot(gh3, 2), h_old)
        tl.store(h_next + bcol[None, :] * H + unit[:, None], h_new, mask=m2)
        sp = scratch_ptr + bcol[None, :] * (6 * half) + unit[:, None]
        for gate in tl.static_range(3):
            gi = _gate_input(gates_ptr, I_prev_ptr, Ictx_ptr, ctx_ptr, gate * H + half + unit, unit_ok, pos, ok,
                             frames, hop, H3, CC, NB, xc, xf, BB, CCP)
            tl.store(sp + gate * half, gi, mask=m2)
            tl.store(sp + (3 + gate) * half, _slot(gh3, 4 + gate), mask=m2)
    elif phase == 2:  # PHASE_COARSE_HEAD
        if pid == 0:
            _reset_logits(lf_ptr, O4_bias_ptr, hi, BB, SB)
        _head_partial(w_o1, O1_ptr, w_o2, O2_ptr, O1_bias_ptr, h_next, lc_ptr, pid, H, HH, half, hi,
                      UO, HALFP, BB, BK, DOT, DOT_PRECISION)
    elif phase == 3:  # PHASE_FINE_GATES
        c = _sample(lc_ptr, uni_ptr + g * NB * 2, (1 - FH * NB) * 2, lo, hi, BB, SB)
        if pid == 0:
            tl.store(cbuf_ptr + bcol * WIDTH + t + PAST, c, mask=ok)
        _fine_gates(c, scratch_ptr, I_coarse_ptr, h_prev, h_next, bcol, unit, unit_ok, m2, H)
    elif phase == 4:  # PHASE_FINE_HEAD
        if pid == 0:
            _reset_logits(lc_ptr, O2_bias_ptr, hi, BB, SB)
        _head_partial(w_o3, O3_ptr, w_o4, O4_ptr, O3_bias_ptr, h_next + half, lf_ptr, pid, H, HH, half, hi,
                      UO, HALFP, BB, BK, DOT, DOT_PRECISION)
    else:  # PHASE_FINAL: f of the block's last step
        _draw_fine(g, g0, pid, lf_ptr, uni_ptr, fbuf_ptr, NB, FH, T, PAST, WIDTH, BB, SB)


@triton.jit(do_not_specialize=["g0", "g1", "T", "frames", "step", "phase"])  # as wavernn_block_kernel's
def subscale_block_kernel(
    R_ptr, R_bias_ptr, I_prev_ptr, I_coarse_ptr,
    O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr, O4_bias_ptr,
    ctxw_ptr, ctxb_ptr, emb_ptr, Ictx_ptr,
    gates_ptr, uni_ptr, cbuf_ptr, fbuf_ptr, h_ptr, scratch_ptr, ctx_ptr, lc_ptr, lf_ptr,
    counter_ptr, flag_ptr,
    g0, g1, T, frames, hop, H, HH, NB, FH, PAST, WIDTH, CC, NG, step, phase, max_spins,
    UC: tl.constexpr, UO: tl.constexpr, HP: tl.constexpr, HALFP: tl.constexpr, BB: tl.constexpr,
    BK: tl.constexpr, DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, SB: tl.constexpr, PERSISTENT: tl.constexpr,
    KP: tl.constexpr, CCP: tl.constexpr, UX: tl.constexpr,
):
    """Global steps ``g0 <= g < g1`` (persistent), or one phase of step ``step`` (phased).

    Shapes (row-major, one device): R, O1..O4, biases, I_prev, I_coarse as
    :func:`models.samplers.persistent.wavernn_block_kernel`; ctx_w (CC, K) fp32 with
    ``K = 2 (NB - 1)(PAST + FH)``, ctx_b (CC,), emb (NB, CC), I_ctx (3H, CC) fp32; gates
    (frames, 3H) fp32 (bias included); uni (T * NB, 2) fp32 in original sample order; cbuf/fbuf
    (NB, WIDTH) int32 folded history (step ``s`` of row ``j`` at column ``s + PAST``), read and
    written; h (2, NB, H) fp32, both halves holding the state in, ``h[(g1 - g0) % 2]`` out;
    scratch (NB, 6, H/2) and ctx (NB, CC) fp32; lc/lf (NB, 256) fp32 set to the output biases;
    counter, flag (1,) int32 zeros.
    """
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    w_r, _cols, w_o1, w_o2, w_o3, w_o4 = _resident_tiles(R_ptr, O1_ptr, O2_ptr, O3_ptr, O4_ptr, R_ptr, counter_ptr,
                                                         pid, H, HH, UC, UO, HP, HALFP, DOT, 16, False)
    if PERSISTENT:
        for g in range(g0, g1):
            for ph in tl.static_range(PHASES_PER_STEP):
                _phase(ph, g, g0, pid, nprog, w_r, w_o1, w_o2, w_o3, w_o4, R_ptr, R_bias_ptr, I_prev_ptr,
                       I_coarse_ptr, O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr,
                       O4_bias_ptr, ctxw_ptr, ctxb_ptr, emb_ptr, Ictx_ptr, gates_ptr, uni_ptr, cbuf_ptr, fbuf_ptr,
                       h_ptr, scratch_ptr, ctx_ptr, lc_ptr, lf_ptr, T, frames, hop, H, HH, NB, FH, PAST, WIDTH, CC,
                       NG, UC, UO, HP, HALFP, BB, BK, DOT, DOT_PRECISION, SB, KP, CCP, UX)
                _grid_sync(counter_ptr, flag_ptr, ((g - g0) * PHASES_PER_STEP + ph + 1) * nprog, max_spins)
        _phase(5, g1, g0, pid, nprog, w_r, w_o1, w_o2, w_o3, w_o4, R_ptr, R_bias_ptr, I_prev_ptr,
               I_coarse_ptr, O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr,
               O4_bias_ptr, ctxw_ptr, ctxb_ptr, emb_ptr, Ictx_ptr, gates_ptr, uni_ptr, cbuf_ptr, fbuf_ptr,
               h_ptr, scratch_ptr, ctx_ptr, lc_ptr, lf_ptr, T, frames, hop, H, HH, NB, FH, PAST, WIDTH, CC,
               NG, UC, UO, HP, HALFP, BB, BK, DOT, DOT_PRECISION, SB, KP, CCP, UX)
    else:
        _phase(phase, step, g0, pid, nprog, w_r, w_o1, w_o2, w_o3, w_o4, R_ptr, R_bias_ptr, I_prev_ptr,
               I_coarse_ptr, O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr,
               O4_bias_ptr, ctxw_ptr, ctxb_ptr, emb_ptr, Ictx_ptr, gates_ptr, uni_ptr, cbuf_ptr, fbuf_ptr,
               h_ptr, scratch_ptr, ctx_ptr, lc_ptr, lf_ptr, T, frames, hop, H, HH, NB, FH, PAST, WIDTH, CC,
               NG, UC, UO, HP, HALFP, BB, BK, DOT, DOT_PRECISION, SB, KP, CCP, UX)
