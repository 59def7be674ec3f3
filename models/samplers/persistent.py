"""The fused persistent WaveRNN kernel (Triton): every step of a block in one GPU launch.

Paper, section 3: the weights are split across all multiprocessors and stay on chip for the
whole launch; the hidden state is exchanged through L2 with a grid-wide barrier between the
dependent phases of a step. One step is four phases (and four barriers):

======================  =============================================================
``PHASE_RECURRENT``     sample ``f_{t-1}`` (every program, identically), ``R h_{t-1}``
                        for the program's units, coarse gates -> ``h_c(t)`` to L2
``PHASE_COARSE_HEAD``   ``a = relu(O1 y_c)`` for the program's O1 rows, partial
                        ``O2[:, rows] a`` atomically added into the coarse logits
``PHASE_FINE_GATES``    sample ``c_t`` (every program), fine gates -> ``h_f(t)`` to L2
``PHASE_FINE_HEAD``     ``relu(O3 y_f)`` rows, partial ``O4`` logits atomically added
======================  =============================================================

after the last step ``PHASE_FINAL`` samples the last fine class. Sampling needs all 256
logits but no barrier of its own: every program reads the summed logits after the barrier
and draws the same class from the same uniform (same data, same arithmetic), so only program
0 writes it out.

Partition (program ``p`` of ``P``): hidden units ``[p*UC, (p+1)*UC)`` of each half (rows u, r,
e of ``R`` for those units, 6 of 8 row slots of a ``(8*UC, H)`` tile) and O1/O3 rows
``[p*UO, (p+1)*UO)`` with the matching columns of O2/O4. Weights are float16, arithmetic and
accumulation float32.

Two mat-mul paths, chosen by the constexpr ``DOT``: for small batches (``BB <= 4``) the
program's weight tiles are loaded into registers once per launch and each stream's mat-vec
is a broadcast multiply and row sum in fp32 (weights resident in registers); for batches of
16 and more, ``tl.dot`` over K chunks (tensor cores; ``DOT_PRECISION`` ``tf32x3`` keeps fp32
accuracy since fp16 weights are exact in tf32) reading the tiles through L1 with
``evict_last`` so they stay on chip.

The same phase functions run in two launch modes (constexpr ``PERSISTENT``):

- persistent: one launch, a loop over the block's steps with a grid barrier (atomic arrive
  with release semantics, acquire spin) after each phase. All ``P`` programs must be resident
  at once (``P`` <= multiprocessors): the host checks.
- phased: one launch per phase (the host loops), no barrier needed since a launch boundary
  orders everything. This is what Triton's CPU interpreter (``TRITON_INTERPRET=1``, which runs
  programs one after another) executes in CI, and a GPU fallback.

A pruned R can be held packed on the register-resident path (``SPARSE_R``): per row slot
only the columns its rows keep, ``KS`` of them, with ``h`` gathered at those columns.

Data exchanged between programs (and the scratch a program rereads in a later phase) is read
with ``cache_modifier=".cg"`` (L2, never a stale L1 line). Host wrapper: :mod:`models.samplers.gpu`.
"""

from __future__ import annotations

import triton
import triton.language as tl

PHASE_RECURRENT = 0
PHASE_COARSE_HEAD = 1
PHASE_FINE_GATES = 2
PHASE_FINE_HEAD = 3
PHASE_FINAL = 4
N_CLASSES = tl.constexpr(256)
#: Classes per tl.dot in the heads' second layer (keeps a (BB, chunk) tile, not (BB, 256)).
CLASS_CHUNK = tl.constexpr(32)


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def _unit(v):
    """Class index -> network input in [-1, 1] (as models.wavernn.class_to_unit)."""
    return v.to(tl.float32) / 127.5 - 1.0


@triton.jit
def _grid_sync(counter_ptr, flag_ptr, target, max_spins):
    """Grid-wide barrier: one release arrive per program, then spin until ``target`` arrivals.

    Never hangs: a program that spins ``max_spins`` times (its peers are not all resident, e.g.
    another kernel holds multiprocessors) raises ``flag`` and every barrier after that returns at
    once; the host sees the flag, discards the block and reruns it in phased mode.
    """
    tl.debug_barrier()
    tl.atomic_add(counter_ptr, 1, sem="release", scope="gpu")
    spins = 0
    while (tl.atomic_add(counter_ptr, 0, sem="acquire", scope="gpu") < target) & (
            tl.load(flag_ptr, volatile=True) == 0):
        spins += 1
        if spins == max_spins:
            tl.atomic_xchg(flag_ptr, 1, sem="relaxed", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _sample(acc_ptr, uni_ptr, u_stride, lo, B, BB: tl.constexpr, SB: tl.constexpr):
    """Inverse-CDF draw for each stream ``lo <= b < B`` from summed logits (BB, 256) at ``acc_ptr``.

    ``uni_ptr + b * u_stride`` holds stream b's uniform (the stride may be negative; rows
    outside ``[lo, B)`` are never read and draw class 0). Streams go SB at a time so the
    softmax and cumulative sum keep a (SB, 256) tile, not (BB, 256). Returns (BB,) int32.
    """
    bcol = tl.arange(0, BB)
    cls = tl.arange(0, N_CLASSES)
    out = tl.zeros((BB,), dtype=tl.int32)
    for b0 in tl.static_range(0, BB, SB):
        b = b0 + tl.arange(0, SB)
        ok = (b >= lo) & (b < B)
        logits = tl.load(acc_ptr + b[:, None] * N_CLASSES + cls[None, :], mask=ok[:, None], other=0.0,
                         cache_modifier=".cg")
        m = tl.max(logits, axis=1)
        e = tl.exp(logits - m[:, None])
        p = e / tl.sum(e, axis=1)[:, None]
        cdf = tl.cumsum(p, axis=1)
        u = tl.load(uni_ptr + b * u_stride, mask=ok, other=0.0)
        idx = tl.minimum(tl.sum((cdf <= u[:, None]).to(tl.int32), axis=1), N_CLASSES - 1)  # (SB,)
        out += tl.sum(tl.where(bcol[:, None] == b[None, :], idx[None, :], 0), axis=1)
    return out


@triton.jit
def _cond_at(cond_ptr, base_ptr, k, hop, F, H3, rows, row_ok, B, BB: tl.constexpr):
    """Gate conditioning (R, BB) at step ``k`` for ``rows``: linear interpolation of the window."""
    b = tl.arange(0, BB)
    ok = b < B
    off = tl.load(base_ptr + b, mask=ok, other=0) + k  # (BB,) sample offset inside the window
    i = off // hop
    a = tl.math.div_rn((off % hop).to(tl.float32), hop * 1.0)
    ptr = cond_ptr + (b * F * H3)[None, :] + rows[:, None]
    m = row_ok[:, None] & ok[None, :]
    c0 = tl.load(ptr + (i * H3)[None, :], mask=m, other=0.0)
    c1 = tl.load(ptr + ((i + 1) * H3)[None, :], mask=m, other=0.0)
    return c0 * (1.0 - a)[None, :] + c1 * a[None, :]


@triton.jit
def _gate_input(cond_ptr, base_ptr, I_prev_ptr, k, hop, F, H3, grow, row_ok, xc, xf, B, BB: tl.constexpr):
    """Conditioning plus ``I_prev [c_{t-1}, f_{t-1}]`` for gate rows ``grow`` -> (R, BB)."""
    gi = _cond_at(cond_ptr, base_ptr, k, hop, F, H3, grow, row_ok, B, BB)
    i0 = tl.load(I_prev_ptr + grow * 2, mask=row_ok, other=0.0)[:, None]
    i1 = tl.load(I_prev_ptr + grow * 2 + 1, mask=row_ok, other=0.0)[:, None]
    return gi + (xc * i0 + xf * i1)


@triton.jit
def _matmul(w, w_ptr, rows, row_ok, ld_w, x_ptr, ld_x, K, B,
            R: tl.constexpr, KP: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr,
            DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """(R, BB) = W[rows, :K] @ X[:B, :K]^T in fp32.

    FMA path (``DOT`` False): ``w`` is the resident (R, KP) fp16 tile, one broadcast
    multiply-and-sum per stream. DOT path: ``w`` is unused; K chunks of the fp16 rows at
    ``w_ptr + rows * ld_w`` (kept in L1 by ``evict_last``) meet chunks of X in ``tl.dot``.
    X rows (streams) are ``ld_x`` apart and read from L2.
    """
    bcol = tl.arange(0, BB)
    acc = tl.zeros((R, BB), dtype=tl.float32)
    if DOT:
        for k0 in range(0, KP, BK):
            kk = k0 + tl.arange(0, BK)
            wk = tl.load(w_ptr + rows[:, None] * ld_w + kk[None, :],
                         mask=row_ok[:, None] & (kk < K)[None, :], other=0.0, eviction_policy="evict_last")
            xk = tl.load(x_ptr + bcol[None, :] * ld_x + kk[:, None],
                         mask=(bcol < B)[None, :] & (kk < K)[:, None], other=0.0, cache_modifier=".cg")
            acc += tl.dot(wk.to(tl.float32), xk, input_precision=DOT_PRECISION)
    else:
        kk = tl.arange(0, KP)
        wf = w.to(tl.float32)
        for b in tl.static_range(BB):
            xb = tl.load(x_ptr + b * ld_x + kk, mask=(kk < K) & (kk * 0 + b < B), other=0.0, cache_modifier=".cg")
            col = tl.sum(wf * xb[None, :], axis=1)  # (R,)
            acc = tl.where(bcol[None, :] == b, col[:, None], acc)
    return acc


@triton.jit
def _matvec_gather(w, cols, x_ptr, ld_x, B, R: tl.constexpr, BB: tl.constexpr):
    """(R, BB) = sum_k w[r, k] * X[b, cols[r, k]]: block-sparse rows held packed in registers.

    ``w`` (R, KS) fp16 holds each row's weights at the columns its row group keeps, ``cols``
    (R, KS) int32 those columns (padding: weight 0 at column 0); X rows are ``ld_x`` apart (L2).
    """
    bcol = tl.arange(0, BB)
    acc = tl.zeros((R, BB), dtype=tl.float32)
    wf = w.to(tl.float32)
    for b in tl.static_range(BB):
        xb = tl.load(x_ptr + b * ld_x + cols, mask=(cols * 0 + b) < B, other=0.0, cache_modifier=".cg")  # gather
        col = tl.sum(wf * xb, axis=1)  # (R,)
        acc = tl.where(bcol[None, :] == b, col[:, None], acc)
    return acc


@triton.jit
def _recurrent_rows(pid, H, UC: tl.constexpr):
    """The program's 8 row slots of R: (r, slot, rows of R in the paper's order, valid) each (8 UC,).

    Slot ``s`` is gate ``s % 4`` (u, r, e; 3 = padding) of half ``s // 4`` for units
    ``pid * UC ..`` of that half (see :func:`models.samplers.gpu.slot_rows`).
    """
    half = H // 2
    r = tl.arange(0, 8 * UC)
    slot = r // UC
    r_unit = pid * UC + r % UC
    r_ok = ((slot % 4) < 3) & (r_unit < half)
    rows = (slot % 4) * H + (slot // 4) * half + r_unit
    return r, slot, rows, r_ok


@triton.jit
def _slot(x3, s: tl.constexpr):
    """Row slot ``s`` of a (8, UC, BB) tile -> (UC, BB)."""
    ids = tl.arange(0, 8)
    return tl.sum(tl.where(ids[:, None, None] == s, x3, 0.0), axis=0)


@triton.jit
def _gru(gi_u, gi_r, gi_e, gh_u, gh_r, gh_e, h_old):
    """The paper's gate update (as models.samplers.reference._gru_half)."""
    u = _sigmoid(gi_u + gh_u)
    r = _sigmoid(gi_r + gh_r)
    e = _tanh(gi_e + r * gh_e)
    return u * h_old + (1.0 - u) * e


@triton.jit
def _head_partial(o_in, o_in_ptr, o_out, o_out_ptr, in_bias_ptr, y_ptr, acc_ptr, pid, H, HH, half, B,
                  UO: tl.constexpr, HALFP: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr,
                  DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """relu(O_in[rows] y + b) for the program's rows, times O_out[:, rows], added into the logits."""
    rows = pid * UO + tl.arange(0, UO)
    row_ok = rows < HH
    a = _matmul(o_in, o_in_ptr, rows, row_ok, half, y_ptr, H, half, B, UO, HALFP, BB, BK, DOT, DOT_PRECISION)
    a = tl.maximum(a + tl.load(in_bias_ptr + rows, mask=row_ok, other=0.0)[:, None], 0.0)  # (UO, BB)
    a = tl.where(row_ok[:, None], a, 0.0)
    bcol = tl.arange(0, BB)
    if DOT:  # classes in chunks of CLASS_CHUNK keep the (BB, chunk) product in registers
        at = tl.trans(a)  # (BB, UO)
        for c0 in tl.static_range(0, N_CLASSES, CLASS_CHUNK):
            cls = c0 + tl.arange(0, CLASS_CHUNK)
            w = tl.load(o_out_ptr + cls[None, :] * HH + rows[:, None], mask=row_ok[:, None], other=0.0,
                        eviction_policy="evict_last")  # (UO, chunk)
            part = tl.dot(at, w.to(tl.float32), input_precision=DOT_PRECISION)  # (BB, chunk)
            ok = (bcol < B)[:, None] & ((cls + pid * UO) < HH + cls)[None, :]  # a program with no rows adds nothing
            tl.atomic_add(acc_ptr + bcol[:, None] * N_CLASSES + cls[None, :], part, mask=ok, sem="relaxed",
                          scope="gpu")
    else:
        cls = tl.arange(0, N_CLASSES)
        wf = o_out.to(tl.float32)  # (256, UO)
        part = tl.zeros((BB, N_CLASSES), dtype=tl.float32)
        for b in tl.static_range(BB):
            ab = tl.sum(tl.where(bcol[None, :] == b, a, 0.0), axis=1)  # (UO,)
            col = tl.sum(wf * ab[None, :], axis=1)  # (256,)
            part = tl.where(bcol[:, None] == b, col[None, :], part)
        ok = (bcol < B)[:, None] & ((cls + pid * UO) < HH + cls)[None, :]  # (BB, 256)
        tl.atomic_add(acc_ptr + bcol[:, None] * N_CLASSES + cls[None, :], part, mask=ok, sem="relaxed", scope="gpu")


@triton.jit
def _fine_gates(c, scratch_ptr, I_coarse_ptr, h_prev, h_next, bcol, unit, unit_ok, m2, H):
    """The fine half of a step once ``c_t`` (BB,) is drawn: the parked pre-activations plus
    ``c_t I_coarse``, the gate update, ``h_f(t)`` to L2 (rows ``unit`` of each stream in ``m2``)."""
    half = H // 2
    xc = _unit(c)[None, :]
    sp = scratch_ptr + bcol[None, :] * (6 * half) + unit[:, None]
    ic_u = tl.load(I_coarse_ptr + half + unit, mask=unit_ok, other=0.0)[:, None]
    ic_r = tl.load(I_coarse_ptr + H + half + unit, mask=unit_ok, other=0.0)[:, None]
    ic_e = tl.load(I_coarse_ptr + 2 * H + half + unit, mask=unit_ok, other=0.0)[:, None]
    gi_u = tl.load(sp, mask=m2, other=0.0, cache_modifier=".cg") + xc * ic_u
    gi_r = tl.load(sp + half, mask=m2, other=0.0, cache_modifier=".cg") + xc * ic_r
    gi_e = tl.load(sp + 2 * half, mask=m2, other=0.0, cache_modifier=".cg") + xc * ic_e
    gh_u = tl.load(sp + 3 * half, mask=m2, other=0.0, cache_modifier=".cg")
    gh_r = tl.load(sp + 4 * half, mask=m2, other=0.0, cache_modifier=".cg")
    gh_e = tl.load(sp + 5 * half, mask=m2, other=0.0, cache_modifier=".cg")
    h_old = tl.load(h_prev + bcol[None, :] * H + half + unit[:, None], mask=m2, other=0.0, cache_modifier=".cg")
    h_new = _gru(gi_u, gi_r, gi_e, gh_u, gh_r, gh_e, h_old)
    tl.store(h_next + bcol[None, :] * H + half + unit[:, None], h_new, mask=m2)


@triton.jit
def _reset_logits(acc_ptr, bias_ptr, B, BB: tl.constexpr, SB: tl.constexpr):
    """Every stream's row of the logits accumulator := the output bias (SB streams at a time)."""
    cls = tl.arange(0, N_CLASSES)
    bias = tl.load(bias_ptr + cls)
    for b0 in tl.static_range(0, BB, SB):
        b = b0 + tl.arange(0, SB)
        tl.store(acc_ptr + b[:, None] * N_CLASSES + cls[None, :], bias[None, :] + tl.zeros((SB, N_CLASSES), tl.float32),
                 mask=(b < B)[:, None] & (cls < N_CLASSES)[None, :])


@triton.jit
def _phase(phase, k, pid, w_r, r_cols, w_o1, w_o2, w_o3, w_o4,
           R_ptr, R_bias_ptr, I_prev_ptr, I_coarse_ptr,
           O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr, O4_bias_ptr,
           cond_ptr, base_ptr, uni_ptr, prev_ptr, h_ptr, scratch_ptr, lc_ptr, lf_ptr, out_c_ptr, out_f_ptr,
           B, n, hop, F, H, HH,
           UC: tl.constexpr, UO: tl.constexpr, HP: tl.constexpr, HALFP: tl.constexpr, BB: tl.constexpr,
           BK: tl.constexpr, DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, SB: tl.constexpr,
           SPARSE_R: tl.constexpr):
    """One phase of step ``k`` for program ``pid`` (see the module docstring)."""
    half = H // 2
    H3 = 3 * H
    bcol = tl.arange(0, BB)
    bok = bcol < B
    j = tl.arange(0, UC)
    unit = pid * UC + j  # (UC,) unit index inside each half
    unit_ok = unit < half
    m2 = unit_ok[:, None] & bok[None, :]
    h_prev = h_ptr + (k % 2) * B * H
    h_next = h_ptr + ((k + 1) % 2) * B * H
    if phase == 0:  # PHASE_RECURRENT
        # the previous sample: carried in (k == 0) or drawn now from the summed fine logits
        c_prev = tl.load(prev_ptr + bcol * 2, mask=bok, other=0)
        f_prev = tl.load(prev_ptr + bcol * 2 + 1, mask=bok, other=0)
        if k > 0:
            c_prev = tl.load(out_c_ptr + bcol * n + k - 1, mask=bok, other=0, cache_modifier=".cg")
            f_prev = _sample(lf_ptr, uni_ptr + (k - 1) * 2 + 1, n * 2, 0, B, BB, SB)
            if pid == 0:
                tl.store(out_f_ptr + bcol * n + k - 1, f_prev, mask=bok)
        xc = _unit(c_prev)[None, :]
        xf = _unit(f_prev)[None, :]
        _r, _slot_ids, rows, r_ok = _recurrent_rows(pid, H, UC)  # rows of R in the paper's order
        if SPARSE_R:
            gh = _matvec_gather(w_r, r_cols, h_prev, H, B, 8 * UC, BB)
        else:
            gh = _matmul(w_r, R_ptr, rows, r_ok, H, h_prev, H, H, B, 8 * UC, HP, BB, BK, DOT, DOT_PRECISION)
        gh = gh + tl.load(R_bias_ptr + rows, mask=r_ok, other=0.0)[:, None]
        gh3 = tl.reshape(gh, (8, UC, BB))
        h_old = tl.load(h_prev + bcol[None, :] * H + unit[:, None], mask=m2, other=0.0, cache_modifier=".cg")
        gi_u = _gate_input(cond_ptr, base_ptr, I_prev_ptr, k, hop, F, H3, unit, unit_ok, xc, xf, B, BB)
        gi_r = _gate_input(cond_ptr, base_ptr, I_prev_ptr, k, hop, F, H3, H + unit, unit_ok, xc, xf, B, BB)
        gi_e = _gate_input(cond_ptr, base_ptr, I_prev_ptr, k, hop, F, H3, 2 * H + unit, unit_ok, xc, xf, B, BB)
        h_new = _gru(gi_u, gi_r, gi_e, _slot(gh3, 0), _slot(gh3, 1), _slot(gh3, 2), h_old)
        tl.store(h_next + bcol[None, :] * H + unit[:, None], h_new, mask=m2)
        # the fine half waits for c_t: park its pre-activations in scratch (B, 6, H/2)
        sp = scratch_ptr + bcol[None, :] * (6 * half) + unit[:, None]
        for g in tl.static_range(3):
            gi = _gate_input(cond_ptr, base_ptr, I_prev_ptr, k, hop, F, H3, g * H + half + unit, unit_ok, xc, xf,
                             B, BB)
            tl.store(sp + g * half, gi, mask=m2)
            tl.store(sp + (3 + g) * half, _slot(gh3, 4 + g), mask=m2)
    elif phase == 1:  # PHASE_COARSE_HEAD
        if pid == 0:
            _reset_logits(lf_ptr, O4_bias_ptr, B, BB, SB)
        _head_partial(w_o1, O1_ptr, w_o2, O2_ptr, O1_bias_ptr, h_next, lc_ptr, pid, H, HH, half, B,
                      UO, HALFP, BB, BK, DOT, DOT_PRECISION)
    elif phase == 2:  # PHASE_FINE_GATES
        c = _sample(lc_ptr, uni_ptr + k * 2, n * 2, 0, B, BB, SB)
        if pid == 0:
            tl.store(out_c_ptr + bcol * n + k, c, mask=bok)
        _fine_gates(c, scratch_ptr, I_coarse_ptr, h_prev, h_next, bcol, unit, unit_ok, m2, H)
    elif phase == 3:  # PHASE_FINE_HEAD
        if pid == 0:
            _reset_logits(lc_ptr, O2_bias_ptr, B, BB, SB)
        _head_partial(w_o3, O3_ptr, w_o4, O4_ptr, O3_bias_ptr, h_next + half, lf_ptr, pid, H, HH, half, B,
                      UO, HALFP, BB, BK, DOT, DOT_PRECISION)
    else:  # PHASE_FINAL: the last fine class of the block
        if pid == 0:
            f = _sample(lf_ptr, uni_ptr + (n - 1) * 2 + 1, n * 2, 0, B, BB, SB)
            tl.store(out_f_ptr + bcol * n + n - 1, f, mask=bok)


@triton.jit
def _resident_tiles(R_ptr, O1_ptr, O2_ptr, O3_ptr, O4_ptr, Rs_ptr, Rcols_ptr, pid, H, HH,
                    UC: tl.constexpr, UO: tl.constexpr, HP: tl.constexpr, HALFP: tl.constexpr, DOT: tl.constexpr,
                    KS: tl.constexpr, SPARSE_R: tl.constexpr):
    """The program's weight tiles for the register-resident path (placeholders on the DOT path):
    R rows (8 UC, HP) or packed (8 UC, KS) with their columns, O1/O3 (UO, HALFP), O2/O4 (256, UO)."""
    w_r = 0.0
    r_cols = 0
    w_o1 = 0.0
    w_o2 = 0.0
    w_o3 = 0.0
    w_o4 = 0.0
    if not DOT:  # small batch: this program's weights go to registers once for the launch
        half = H // 2
        r, slot, rows, r_ok = _recurrent_rows(pid, H, UC)  # rows of R in the paper's order
        if SPARSE_R:  # packed block-sparse rows: (8 UC, KS) weights and their columns
            ks = tl.arange(0, KS)
            w_r = tl.load(Rs_ptr + (pid * 8 * UC + r)[:, None] * KS + ks[None, :])
            r_cols = tl.load(Rcols_ptr + (pid * 8 + slot)[:, None] * KS + ks[None, :])
        else:
            kk = tl.arange(0, HP)
            w_r = tl.load(R_ptr + rows[:, None] * H + kk[None, :], mask=r_ok[:, None] & (kk < H)[None, :],
                          other=0.0)
        orow = pid * UO + tl.arange(0, UO)
        o_ok = orow < HH
        hk = tl.arange(0, HALFP)
        om = o_ok[:, None] & (hk < half)[None, :]
        w_o1 = tl.load(O1_ptr + orow[:, None] * half + hk[None, :], mask=om, other=0.0)
        w_o3 = tl.load(O3_ptr + orow[:, None] * half + hk[None, :], mask=om, other=0.0)
        cls = tl.arange(0, N_CLASSES)
        w_o2 = tl.load(O2_ptr + cls[:, None] * HH + orow[None, :], mask=o_ok[None, :], other=0.0)  # (256, UO)
        w_o4 = tl.load(O4_ptr + cls[:, None] * HH + orow[None, :], mask=o_ok[None, :], other=0.0)
    return w_r, r_cols, w_o1, w_o2, w_o3, w_o4


# Run-time sizes that change from call to call (batch, block length, conditioning frames, the
# phased mode's step and phase) are not specialised on: Triton would otherwise compile a new variant
# when one of them becomes 1 or a multiple of 16 (a batch of 16 after warm-up ran 5), a compile of
# seconds in the middle of serving. Sizes fixed per voice (hop, H) keep their specialisation.
@triton.jit(do_not_specialize=["B", "n", "F", "step", "phase"])
def wavernn_block_kernel(
    R_ptr, R_bias_ptr, I_prev_ptr, I_coarse_ptr,
    O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr, O4_bias_ptr,
    cond_ptr, base_ptr, uni_ptr, prev_ptr, h_ptr, scratch_ptr, lc_ptr, lf_ptr, out_c_ptr, out_f_ptr,
    counter_ptr, flag_ptr,
    B, n, hop, F, H, HH, step, phase, max_spins, Rs_ptr, Rcols_ptr,
    UC: tl.constexpr, UO: tl.constexpr, HP: tl.constexpr, HALFP: tl.constexpr, BB: tl.constexpr,
    BK: tl.constexpr, DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, SB: tl.constexpr, PERSISTENT: tl.constexpr,
    KS: tl.constexpr, SPARSE_R: tl.constexpr,
):
    """A block of ``n`` steps for ``B`` streams (persistent), or one phase of step ``step`` (phased).

    Shapes (row-major, on one device): R (3H, H) fp16, O1/O3 (HH, H/2) fp16, O2/O4 (256, HH)
    fp16, biases and I_prev (3H, 2) / I_coarse (3H,) fp32; cond (B, F, 3H) fp32 window; base
    (B,) int32 offset of each stream's first sample in frame 0; uni (B, n, 2) fp32; prev (B, 2)
    int32 last (coarse, fine); h (2, B, H) fp32 double buffer, h[0] the state in, h[n % 2]
    out; scratch (B, 6, H/2) fp32; lc/lf (B, 256) fp32 logits accumulators set to the output
    biases; out_c/out_f (B, n) int32; counter and flag (1,) int32 zeros (persistent barrier; flag 1 after
    a barrier gave up waiting, see :func:`_grid_sync`).
    """
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    w_r, r_cols, w_o1, w_o2, w_o3, w_o4 = _resident_tiles(R_ptr, O1_ptr, O2_ptr, O3_ptr, O4_ptr, Rs_ptr, Rcols_ptr,
                                                          pid, H, HH, UC, UO, HP, HALFP, DOT, KS, SPARSE_R)
    if PERSISTENT:
        for k in range(n):
            for ph in tl.static_range(4):
                _phase(ph, k, pid, w_r, r_cols, w_o1, w_o2, w_o3, w_o4, R_ptr, R_bias_ptr, I_prev_ptr, I_coarse_ptr,
                       O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr, O4_bias_ptr,
                       cond_ptr, base_ptr, uni_ptr, prev_ptr, h_ptr, scratch_ptr, lc_ptr, lf_ptr, out_c_ptr,
                       out_f_ptr, B, n, hop, F, H, HH, UC, UO, HP, HALFP, BB, BK, DOT, DOT_PRECISION, SB, SPARSE_R)
                _grid_sync(counter_ptr, flag_ptr, (k * 4 + ph + 1) * nprog, max_spins)
        _phase(4, n, pid, w_r, r_cols, w_o1, w_o2, w_o3, w_o4, R_ptr, R_bias_ptr, I_prev_ptr, I_coarse_ptr,
               O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr, O4_bias_ptr,
               cond_ptr, base_ptr, uni_ptr, prev_ptr, h_ptr, scratch_ptr, lc_ptr, lf_ptr, out_c_ptr,
               out_f_ptr, B, n, hop, F, H, HH, UC, UO, HP, HALFP, BB, BK, DOT, DOT_PRECISION, SB, SPARSE_R)
    else:
        _phase(phase, step, pid, w_r, r_cols, w_o1, w_o2, w_o3, w_o4, R_ptr, R_bias_ptr, I_prev_ptr, I_coarse_ptr,
               O1_ptr, O1_bias_ptr, O2_ptr, O2_bias_ptr, O3_ptr, O3_bias_ptr, O4_ptr, O4_bias_ptr,
               cond_ptr, base_ptr, uni_ptr, prev_ptr, h_ptr, scratch_ptr, lc_ptr, lf_ptr, out_c_ptr,
               out_f_ptr, B, n, hop, F, H, HH, UC, UO, HP, HALFP, BB, BK, DOT, DOT_PRECISION, SB, SPARSE_R)


@triton.jit
def grid_sync_kernel(counter_ptr, flag_ptr, n, max_spins):
    """Only ``n`` grid barriers: the floor a step's four barriers set (benchmarks/bench_gpu.py)."""
    nprog = tl.num_programs(0)
    for i in range(n):
        _grid_sync(counter_ptr, flag_ptr, (i + 1) * nprog, max_spins)
