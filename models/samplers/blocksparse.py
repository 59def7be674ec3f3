"""Packed block-sparse matrices and the compiled mat-vec kernels of the CPU sampler.

A :class:`PackedMatrix` stores only the blocks of a weight matrix that hold a non-zero,
as block CSR: for each row block (``br`` rows) the column-block indices of its kept
blocks (``row_ptr``/``col_idx``, ascending) and their values contiguous, ``br * bc`` floats
a block, column-major inside the block (``values[k, c * br + r]``). Dense matrices use the
same storage with every 16x1 block kept, and a kernel that skips the indices.

Kernels (numba, called from compiled code only) compute ``y = W x`` for a few streams at a
time, reading each weight block once for up to 4 streams. Every output row sums its
products with separate float32 multiply and add (no fused multiply-add, no reassociation)
in a fixed order: ascending columns for 16x1 blocks and dense, and for 4x4 blocks the four
column partial sums of the row (each ascending over blocks) added in column order. So

- a stream's result never depends on which or how many other streams share the call
  (batch invariance), and
- 16x1 packed, dense packed and a plain float32 loop over the matrix with its zeros agree
  bit for bit (4x4 agrees to float32 rounding).

The per-block work is written as LLVM vector IR (``numba.extending.intrinsic``): a
16-float accumulator stays in a register while the kept blocks stream past (numba does not
vectorise 16-element inner loops itself: they are unrolled first and its SLP vectoriser is
off). One stream's 16x1 rows go two row blocks at a time, to overlap two add chains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: Kernel kinds (the ``kind`` field of a packed matrix).
KIND_DENSE = 0
KIND_BSR16x1 = 1
KIND_BSR4x4 = 2
BLOCKS = {(16, 1): KIND_BSR16x1, (4, 4): KIND_BSR4x4}


@dataclass(frozen=True)
class PackedMatrix:
    """A (rows, cols) float32 matrix in block CSR (see the module docstring).

    Attributes:
        rows, cols: logical shape; output buffers need ``padded_rows`` entries.
        block: (br, bc), (16, 1) or (4, 4).
        kind: KIND_DENSE, KIND_BSR16x1 or KIND_BSR4x4.
        row_ptr: (rows / br + 1,) int32 offsets into ``col_idx``.
        col_idx: (n_blocks,) int32 column-block index of each kept block.
        values: (n_blocks, br * bc) float32.
    """

    rows: int
    cols: int
    block: tuple[int, int]
    kind: int
    row_ptr: np.ndarray
    col_idx: np.ndarray
    values: np.ndarray

    @property
    def padded_rows(self) -> int:
        return (len(self.row_ptr) - 1) * self.block[0]

    @property
    def n_blocks(self) -> int:
        """Blocks stored."""
        return len(self.col_idx)

    @property
    def total_blocks(self) -> int:
        """Blocks of the padded matrix."""
        return (len(self.row_ptr) - 1) * (self.cols // self.block[1])

    @property
    def density(self) -> float:
        """Fraction of blocks stored (1.0 for dense)."""
        return self.n_blocks / max(1, self.total_blocks)

    def as_tuple(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """What the compiled kernels take: (kind, row_ptr, col_idx, values)."""
        return (self.kind, self.row_ptr, self.col_idx, self.values)

    def to_dense(self) -> np.ndarray:
        """(rows, cols) float32 matrix (for tests)."""
        br, bc = self.block
        out = np.zeros((self.padded_rows, self.cols), np.float32)
        for rb in range(len(self.row_ptr) - 1):
            for k in range(self.row_ptr[rb], self.row_ptr[rb + 1]):
                cb = self.col_idx[k]
                blk = self.values[k].reshape(bc, br).T  # (br, bc): stored column-major
                out[rb * br : (rb + 1) * br, cb * bc : (cb + 1) * bc] = blk
        return out[: self.rows]


def block_density(weight: np.ndarray, block: tuple[int, int]) -> float:
    """Fraction of (br, bc) blocks of ``weight`` holding a non-zero (rows padded with zeros)."""
    return float(_nonzero_blocks(weight, block).mean())


def _nonzero_blocks(weight: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    br, bc = block
    rows, cols = weight.shape
    if cols % bc:
        raise ValueError(f"a matrix with {cols} columns cannot be cut into {br}x{bc} blocks; use block (16, 1)")
    pr = -rows % br
    w = np.concatenate([weight, np.zeros((pr, cols), weight.dtype)]) if pr else weight
    blocks = w.reshape(w.shape[0] // br, br, cols // bc, bc)  # (RB, br, CB, bc)
    return np.any(blocks != 0, axis=(1, 3))  # (RB, CB)


def pack_matrix(weight: np.ndarray, block: tuple[int, int] = (16, 1), dense: bool = False) -> PackedMatrix:
    """Pack a matrix, keeping the blocks that hold a non-zero (all blocks if ``dense``).

    Args:
        weight: (rows, cols) float32; rows are padded with zeros to a multiple of br.
        block: (16, 1) or (4, 4) (cols must be divisible by bc).
        dense: store every 16x1 block and use the dense kernel (``block`` is ignored).
    """
    block = (16, 1) if dense else (int(block[0]), int(block[1]))
    if block not in BLOCKS:
        raise ValueError(f"block {block} is not supported; use one of {sorted(BLOCKS)}")
    w = np.ascontiguousarray(weight, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"weight must be 2-D, got shape {w.shape}")
    br, bc = block
    keep = _nonzero_blocks(w, block)  # (RB, CB)
    if dense:
        keep = np.ones_like(keep)
    rb_n, cb_n = keep.shape
    pr = rb_n * br - w.shape[0]
    wp = np.concatenate([w, np.zeros((pr, w.shape[1]), np.float32)]) if pr else w
    blocks = wp.reshape(rb_n, br, cb_n, bc).transpose(0, 2, 3, 1)  # (RB, CB, bc, br): column-major blocks
    rbs, cbs = np.nonzero(keep)  # row-major: ascending column blocks within each row block
    values = np.ascontiguousarray(blocks[rbs, cbs].reshape(len(rbs), br * bc))
    row_ptr = np.zeros(rb_n + 1, np.int32)
    row_ptr[1:] = np.cumsum(keep.sum(axis=1))
    return PackedMatrix(
        rows=int(w.shape[0]),
        cols=int(w.shape[1]),
        block=block,
        kind=KIND_DENSE if dense else BLOCKS[block],
        row_ptr=row_ptr,
        col_idx=cbs.astype(np.int32),
        values=values,
    )


# -- LLVM vector kernels ------------------------------------------------------------------

_I64 = ir.IntType(64)
_F32 = ir.FloatType()


def _ptr(context: Any, builder: Any, ty: Any, val: Any) -> Any:
    return context.make_array(ty)(context, builder, val).data


def _splat(builder: Any, x: Any, width: int) -> Any:
    vty = ir.VectorType(_F32, width)
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), width), None)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), zeros)


def _make_kernel(br: int, bc: int, dense: bool, ns: int, nrb: int, resume: bool = False) -> Callable[..., Any]:
    """An intrinsic accumulating ``nrb`` row blocks for ``ns`` streams.

    ``kernel(values, col_idx, x, xoff, xstride, start, stop, rstride, y, yoff, ystride)``:
    for stream s < ns and row block q < nrb, over the blocks k in ``[start, stop)`` (row
    block q's blocks are at ``k + q * rstride``), a ``<16 x float>`` accumulator gains
    ``values[k] * x[xoff + s*xstride + col(k)*bc + c]`` (c the column inside the block,
    broadcast over the block's rows); ``col(k)`` is ``k - start`` for the dense kind. At the
    end the accumulator (for bc > 1, the sum of its bc column partials, in column order) is
    stored to ``y[yoff + s*ystride + q*br :]``. With ``resume`` (bc = 1 only) the accumulator
    starts from those y values instead of zero, continuing an earlier partial sum.
    """
    width = br * bc

    @intrinsic
    def kernel(typingctx, values, col_idx, x, xoff, xstride, start, stop, rstride, y, yoff, ystride):
        sig = types.void(values, col_idx, x, xoff, xstride, start, stop, rstride, y, yoff, ystride)

        def codegen(context, builder, signature, args):
            a = signature.args
            vp = _ptr(context, builder, a[0], args[0])
            cp = _ptr(context, builder, a[1], args[1])
            xp = _ptr(context, builder, a[2], args[2])
            yp = _ptr(context, builder, a[8], args[8])
            ints = [context.cast(builder, args[i], a[i], types.int64) for i in (3, 4, 5, 6, 7, 9, 10)]
            xoff_, xstride_, start_, stop_, rstride_, yoff_, ystride_ = ints
            vty = ir.VectorType(_F32, width)
            xty = ir.VectorType(_F32, bc)
            i32v = ir.VectorType(ir.IntType(32), width)
            spread = ir.Constant(i32v, [i // br for i in range(width)])  # column c -> lanes c*br..
            fn = builder.function
            cond = fn.append_basic_block("bsr.cond")
            body = fn.append_basic_block("bsr.body")
            done = fn.append_basic_block("bsr.done")
            accs = []
            inits = []
            for q in range(nrb):
                for s in range(ns):
                    if not resume:
                        inits.append(ir.Constant(vty, None))
                        continue
                    yo = builder.add(yoff_, ir.Constant(_I64, q * br))
                    if s:
                        yo = builder.add(yo, builder.mul(ystride_, ir.Constant(_I64, s)))
                    inits.append(builder.load(builder.bitcast(builder.gep(yp, [yo]), vty.as_pointer()), align=4))
            pre = builder.basic_block
            builder.branch(cond)
            builder.position_at_end(cond)
            k = builder.phi(_I64)
            k.add_incoming(start_, pre)
            for init in inits:
                acc = builder.phi(vty)
                acc.add_incoming(init, pre)
                accs.append(acc)
            builder.cbranch(builder.icmp_signed("<", k, stop_), body, done)
            builder.position_at_end(body)
            news = list(accs)
            for q in range(nrb):
                kq = builder.add(k, builder.mul(rstride_, ir.Constant(_I64, q))) if q else k
                # the block's first column (dense: its position in the row block)
                col = builder.sub(k, start_) if dense else builder.sext(builder.load(builder.gep(cp, [kq])), _I64)
                col = builder.mul(col, ir.Constant(_I64, bc)) if bc > 1 else col
                vptr = builder.gep(vp, [builder.mul(kq, ir.Constant(_I64, width))])
                v = builder.load(builder.bitcast(vptr, vty.as_pointer()), align=4)
                for s in range(ns):
                    xi = builder.add(xoff_, col)
                    if s:
                        xi = builder.add(xi, builder.mul(xstride_, ir.Constant(_I64, s)))
                    xptr = builder.gep(xp, [xi])
                    if bc == 1:
                        xs = _splat(builder, builder.load(xptr), width)
                    else:
                        x4 = builder.load(builder.bitcast(xptr, xty.as_pointer()), align=4)
                        xs = builder.shuffle_vector(x4, ir.Constant(xty, ir.Undefined), spread)
                    i = q * ns + s
                    news[i] = builder.fadd(news[i], builder.fmul(v, xs))
            k.add_incoming(builder.add(k, ir.Constant(_I64, 1)), body)
            for acc, new in zip(accs, news, strict=True):
                acc.add_incoming(new, builder.basic_block)
            builder.branch(cond)
            builder.position_at_end(done)
            oty = ir.VectorType(_F32, br)
            for q in range(nrb):
                for s in range(ns):
                    out = accs[q * ns + s]
                    if bc > 1:
                        parts = [
                            builder.shuffle_vector(out, ir.Constant(vty, ir.Undefined),
                                                   ir.Constant(ir.VectorType(ir.IntType(32), br),
                                                               list(range(c * br, (c + 1) * br))))
                            for c in range(bc)
                        ]
                        out = parts[0]
                        for part in parts[1:]:
                            out = builder.fadd(out, part)
                    yo = builder.add(yoff_, ir.Constant(_I64, q * br))
                    if s:
                        yo = builder.add(yo, builder.mul(ystride_, ir.Constant(_I64, s)))
                    builder.store(out, builder.bitcast(builder.gep(yp, [yo]), oty.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return kernel


_dense_1x4 = _make_kernel(16, 1, True, 1, 4)
_dense_1 = _make_kernel(16, 1, True, 1, 1)
_dense_2 = _make_kernel(16, 1, True, 2, 1)
_dense_4 = _make_kernel(16, 1, True, 4, 1)
_b16_1 = _make_kernel(16, 1, False, 1, 1)
_b16_1x2 = _make_kernel(16, 1, False, 1, 2)
_b16_1_resume = _make_kernel(16, 1, False, 1, 1, resume=True)
_b16_2 = _make_kernel(16, 1, False, 2, 1)
_b16_4 = _make_kernel(16, 1, False, 4, 1)
_b4_1 = _make_kernel(4, 4, False, 1, 1)
_b4_2 = _make_kernel(4, 4, False, 2, 1)
_b4_4 = _make_kernel(4, 4, False, 4, 1)


@njit(cache=True, nogil=True)
def matvec(m, x, xoff, y, b0, b1):
    """``y[b, :padded_rows] = W @ x[b, xoff:xoff + cols]`` for streams ``b0 <= b < b1``.

    Args:
        m: ``PackedMatrix.as_tuple()``.
        x: (B, X) float32 C-contiguous; y: (B, Y) float32 C-contiguous, Y >= padded rows.
    Streams go in groups of 4, then 2, then 1; a stream's arithmetic is the same in any group.
    """
    kind, rp, ci, vals = m
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    xs = x.shape[1]
    ys = y.shape[1]
    nrb = rp.shape[0] - 1
    b = b0
    while b < b1:
        left = b1 - b
        ns = 4 if left >= 4 else (2 if left >= 2 else 1)
        xo = b * xs + xoff
        yo = b * ys
        if kind == KIND_DENSE:
            cols = rp[1] - rp[0] if nrb > 0 else 0
            rb = 0
            if ns == 1:
                while rb + 4 <= nrb:
                    _dense_1x4(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], cols, yf, yo + rb * 16, ys)
                    rb += 4
            while rb < nrb:
                if ns == 4:
                    _dense_4(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], cols, yf, yo + rb * 16, ys)
                elif ns == 2:
                    _dense_2(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], cols, yf, yo + rb * 16, ys)
                else:
                    _dense_1(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], cols, yf, yo + rb * 16, ys)
                rb += 1
        elif kind == KIND_BSR16x1 and ns == 1:
            # two row blocks side by side (two add chains) for the common length, then the
            # rest of the longer one: each row still sums its blocks in ascending order
            rb = 0
            while rb + 1 < nrb:
                s0, e0, e1 = rp[rb], rp[rb + 1], rp[rb + 2]
                common = min(e0 - s0, e1 - e0)
                _b16_1x2(vals, ci, xf, xo, xs, s0, s0 + common, e0 - s0, yf, yo + rb * 16, ys)
                if e0 - s0 > common:
                    _b16_1_resume(vals, ci, xf, xo, xs, s0 + common, e0, 0, yf, yo + rb * 16, ys)
                elif e1 - e0 > common:
                    _b16_1_resume(vals, ci, xf, xo, xs, e0 + common, e1, 0, yf, yo + rb * 16 + 16, ys)
                rb += 2
            if rb < nrb:
                _b16_1(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], 0, yf, yo + rb * 16, ys)
        elif kind == KIND_BSR16x1:
            for rb in range(nrb):
                if ns == 4:
                    _b16_4(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], 0, yf, yo + rb * 16, ys)
                elif ns == 2:
                    _b16_2(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], 0, yf, yo + rb * 16, ys)
                else:
                    _b16_1(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], 0, yf, yo + rb * 16, ys)
        else:
            for rb in range(nrb):
                if ns == 4:
                    _b4_4(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], 0, yf, yo + rb * 4, ys)
                elif ns == 2:
                    _b4_2(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], 0, yf, yo + rb * 4, ys)
                else:
                    _b4_1(vals, ci, xf, xo, xs, rp[rb], rp[rb + 1], 0, yf, yo + rb * 4, ys)
        b += ns
