"""The fast CPU sampler: every step of a block in compiled code, block-sparse mat-vecs.

:class:`CpuSampler` follows :class:`models.samplers.reference.ReferenceSampler` operation by
operation in float32 (conditioning interpolation, the coarse half, the coarse head and draw,
then the fine half, fine head and draw), but the whole block of n samples for all streams
runs in one numba call with no Python per sample:

- the five mat-vecs (R, O1..O4) use :mod:`models.samplers.blocksparse`: only the blocks
  of a pruned matrix that hold a non-zero are stored and visited; a matrix with most of its
  blocks non-zero uses the dense kernel (chosen per matrix by block density, ``dense_above``);
- streams are batched: each weight block is read once for up to 4 streams, and with
  ``threads > 1`` groups of streams run on separate cores (numba ``prange``);
- the gate non-linearities are vectorised: ``exp`` is evaluated in float64 by a polynomial
  (:func:`_exp64`, relative error < 1e-12) and rounded to float32, so ``sigmoid`` and
  ``tanh`` land within an ulp of torch's;
- sampling is the reference's inverse CDF: float32 softmax with max subtraction, a
  cumulative sum accumulated in float64 and rounded to float32 (as ``torch.cumsum`` does),
  the count of ``cdf <= u``, clamped to 255.

A stream's arithmetic never depends on the other streams in the batch (no cross-stream
reduction, fixed per-row summation order), so batched and solo runs agree bit for bit and
so do blocks of any sizes. Against the torch reference the mat-vec summation order and the
last bit of ``exp``/``tanh`` differ, so a sampled class can flip when a draw falls within
~1e-7 of a CDF step (the parity tests bound how often).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic
from torch import Tensor

from models.samplers.base import SamplerState
from models.samplers.blocksparse import KIND_BSR4x4, PackedMatrix, block_density, matvec, pack_matrix
from models.samplers.reference import check_inputs
from models.weights import InferenceWeights

logger = logging.getLogger(__name__)

#: A matrix with more than this fraction of its blocks non-zero is stored dense (measured at
#: H = 512 and 896, B = 1 and 4, one core: the 16x1 block kernel is as fast as the dense one
#: at 90% block density and faster below).
DENSE_ABOVE = 0.9
_F1 = np.float32(1.0)
_F0 = np.float32(0.0)
_SCALE = np.float32(127.5)
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


def _bitcast_intrinsic() -> Callable[..., Any]:
    @intrinsic
    def bits_to_f64(typingctx, i):
        sig = types.float64(types.int64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return sig, codegen

    return bits_to_f64


#: Reinterpret an int64 as a float64 (vectorisable, unlike ``math.ldexp``).
_bits_to_f64 = _bitcast_intrinsic()


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _exp64(x):
    """exp(x) in float64 (|rel. error| < 1e-11): 2^k times a degree-9 polynomial, clamped to +-700."""
    x = np.minimum(np.maximum(x, -700.0), 700.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln2 / 2
    p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880)))))))))
    return p * _bits_to_f64((np.int64(k) + 1023) << 52)


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _expf(x):
    """float32 exp, correctly rounded but for rare ties."""
    return np.float32(_exp64(np.float64(x)))


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _sigmoid(x):
    """torch's float32 ``1 / (1 + exp(-x))``."""
    return _F1 / (_F1 + _expf(-x))


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _tanh(x):
    """float32 tanh from a float64 exp (within an ulp of torch's)."""
    t = _exp64(2.0 * np.minimum(np.maximum(np.float64(x), -20.0), 20.0))
    return np.float32((t - 1.0) / (t + 1.0))


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _unit(v):
    """Class index -> [-1, 1], as models.wavernn.class_to_unit (float32)."""
    return np.float32(v) / _SCALE - _F1


@njit(cache=True, nogil=True, error_model="numpy")
def _gates(g, gh, bias, ic, cu, h, hn, lo, hi, hid):
    """GRU update of state rows ``lo <= j < hi`` of one stream (reference ``_gru_half``).

    Args:
        g: (3H,) conditioning + ``I_prev`` pre-activations; ``cu * ic`` (3H,) is added
            (``cu`` = 0 for the coarse half, the unit-scaled coarse class for the fine half).
        gh: (>= 3H,) ``R h`` without its bias ``bias`` (3H,).
        h: (H,) previous state; hn: (H,) new state, rows lo..hi written.
    """
    for j in range(lo, hi):
        u = _sigmoid((g[j] + cu * ic[j]) + (gh[j] + bias[j]))
        r = _sigmoid((g[hid + j] + cu * ic[hid + j]) + (gh[hid + j] + bias[hid + j]))
        e = _tanh((g[2 * hid + j] + cu * ic[2 * hid + j]) + r * (gh[2 * hid + j] + bias[2 * hid + j]))
        hn[j] = u * h[j] + (_F1 - u) * e


@njit(cache=True, nogil=True, error_model="numpy")
def _head_out(y, bias, n, relu):
    """``y[:n] += bias`` (then ReLU)."""
    for i in range(n):
        v = y[i] + bias[i]
        y[i] = np.maximum(v, _F0) if relu else v


@njit(cache=True, nogil=True, error_model="numpy")
def _sample(logits, u, e):
    """Inverse-CDF draw from ``logits`` (N,) float32 with uniform ``u``, as base.sample_classes.

    softmax = exp(x - max) * (1 / sum) in float32; cdf accumulated in float64, rounded to
    float32; returns the count of ``cdf <= u`` (the first index with ``cdf > u``), at most N - 1.
    """
    n = logits.shape[0]
    m = logits[0]
    for i in range(1, n):
        m = max(m, logits[i])
    for i in range(n):
        e[i] = _expf(logits[i] - m)
    total = 0.0
    for i in range(n):
        total += e[i]
    inv = _F1 / np.float32(total)
    acc = 0.0
    for i in range(n):
        acc += e[i] * inv
        if np.float32(acc) > u:
            return i
    return n - 1


@njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _rows(m):
    """Padded output rows of a packed matrix tuple (kind, row_ptr, col_idx, values)."""
    return (m[1].shape[0] - 1) * (4 if m[0] == KIND_BSR4x4 else 16)


@njit(cache=True, nogil=True, error_model="numpy")
def _run(h, cls, pos, cond, uni, hop, R, R_bias, I0, I1, Ic,
         O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, pcm, logits, b0, b1):
    """Generate ``n = uni.shape[1]`` samples for streams ``b0 <= b < b1``.

    Args:
        h: (B, H) float32 state, updated in place; cls: (B, 2) int64 last (coarse, fine),
            updated in place; pos: (B,) int64 position of each stream's next sample.
        cond: (B, F, 3H) float32 windows; uni: (B, n, 2) float32 draws; hop: samples per frame.
        R, O1..O4: packed matrices (``PackedMatrix.as_tuple()``) with their bias vectors;
            I0, I1: (3H,) ``I_prev`` columns; Ic: (3H,) ``I_coarse``.
        pcm: (B, n) int16 output; logits: (B, n, 2, 256) float32 output, or an empty
            (0, 0, 0, 0) array to skip recording.
    """
    bsz, hid = h.shape
    half = hid // 2
    n = uni.shape[1]
    record = logits.shape[0] > 0
    hh = O1_b.shape[0]
    nc = O2_b.shape[0]
    gh = np.zeros((bsz, _rows(R)), np.float32)
    gi = np.zeros((bsz, 3 * hid), np.float32)
    hn = np.zeros((bsz, hid), np.float32)
    mid = np.zeros((bsz, max(_rows(O1), _rows(O3))), np.float32)
    out = np.zeros((bsz, max(_rows(O2), _rows(O4))), np.float32)
    e = np.zeros(nc, np.float32)
    hop32 = np.float32(hop)
    for t in range(n):
        # -- coarse half: R h for all gates, conditioning, I_prev [c_{t-1}, f_{t-1}] --------
        matvec(R, h, 0, gh, b0, b1)
        for b in range(b0, b1):
            off = pos[b] % hop + t
            fi = off // hop
            a = np.float32(off % hop) / hop32
            a1 = _F1 - a
            cp = _unit(cls[b, 0])
            fp = _unit(cls[b, 1])
            c0 = cond[b, fi]
            c1 = cond[b, fi + 1]
            g = gi[b]
            for i in range(3 * hid):  # interpolate_cond, then + x_prev @ I_prev.T
                g[i] = (c0[i] * a1 + c1[i] * a) + (cp * I0[i] + fp * I1[i])
            _gates(g, gh[b], R_bias, Ic, _F0, h[b], hn[b], 0, half, hid)
        # -- coarse head and draw ------------------------------------------------------------
        matvec(O1, hn, 0, mid, b0, b1)
        for b in range(b0, b1):
            _head_out(mid[b], O1_b, hh, True)
        matvec(O2, mid, 0, out, b0, b1)
        for b in range(b0, b1):
            lc = out[b, :nc]
            _head_out(lc, O2_b, nc, False)
            c = _sample(lc, uni[b, t, 0], e)
            if record:
                logits[b, t, 0] = lc
            cls[b, 0] = c
            # -- fine half: c_t enters through I_coarse ----------------------------------------
            _gates(gi[b], gh[b], R_bias, Ic, _unit(c), h[b], hn[b], half, hid, hid)
        # -- fine head and draw ----------------------------------------------------------------
        matvec(O3, hn, half, mid, b0, b1)
        for b in range(b0, b1):
            _head_out(mid[b], O3_b, hh, True)
        matvec(O4, mid, 0, out, b0, b1)
        for b in range(b0, b1):
            lf = out[b, :nc]
            _head_out(lf, O4_b, nc, False)
            f = _sample(lf, uni[b, t, 1], e)
            if record:
                logits[b, t, 1] = lf
            cls[b, 1] = f
            pcm[b, t] = np.int16(cls[b, 0] * 256 + f - 32768)
            h[b] = hn[b]


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _run_parallel(h, cls, pos, cond, uni, hop, R, R_bias, I0, I1, Ic,
                  O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, pcm, logits, chunks):
    """:func:`_run` on the stream ranges ``chunks[k] <= b < chunks[k + 1]``, one task each."""
    for k in prange(chunks.shape[0] - 1):
        _run(h, cls, pos, cond, uni, hop, R, R_bias, I0, I1, Ic,
             O1, O1_b, O2, O2_b, O3, O3_b, O4, O4_b, pcm, logits, chunks[k], chunks[k + 1])


def _pack(weight: Tensor, block: tuple[int, int], dense_above: float) -> PackedMatrix:
    w = weight.detach().float().cpu().numpy()
    if w.shape[1] % block[1]:
        block = (16, 1)
    dense = block_density(w, block) > dense_above
    return pack_matrix(w, block, dense=dense)


def detect_block(R: Tensor) -> tuple[int, int] | None:
    """The block shape R is pruned in: the candidate with the fewest non-zero blocks, or None if dense.

    Args:
        R: (3H, H) recurrent matrix.
    """
    w = R.detach().float().cpu().numpy()
    best: tuple[int, int] | None = None
    best_density = 1.0
    for block in ((16, 1), (4, 4)):
        if w.shape[1] % block[1]:
            continue
        d = block_density(w, block)
        if d < best_density:
            best, best_density = block, d
    return best


class CpuSampler:
    """Compiled CPU sampler implementing :class:`models.samplers.base.Sampler`.

    Args:
        weights: inference weights (any device; copied to CPU float32).
        block: block shape of the pruned weights, (16, 1) or (4, 4); None detects it from
            ``R`` (the shape with the fewest non-zero blocks). Each matrix (R, O1..O4) is
            stored block-sparse if at most ``dense_above`` of its blocks hold a non-zero,
            dense otherwise.
        threads: cores used when a call carries more than one stream (numba threads);
            None means numba's default (all cores). One stream always runs on one core.
        record_logits: keep the step logits of the last call in ``last_logits`` (two
            (B, n, 256) tensors), for parity tests.
        dense_above: block-density threshold for the dense kernel.

    Called by the vocoder and the engine's device worker (never on an event loop); the
    compiled code releases the GIL. Calls with ``threads > 1`` from several Python threads at
    once need a thread-safe numba threading layer (``omp`` or ``tbb``; numba's ``workqueue``
    fallback aborts on concurrent parallel calls). The first call compiles the kernels
    (about 20 s, then cached beside the module or in ``NUMBA_CACHE_DIR``).
    """

    def __init__(
        self,
        weights: InferenceWeights,
        block: tuple[int, int] | None = None,
        threads: int | None = None,
        record_logits: bool = False,
        dense_above: float = DENSE_ABOVE,
    ) -> None:
        if block is not None and tuple(block) not in ((16, 1), (4, 4)):
            raise ValueError(f"block {block} is not supported; use (16, 1), (4, 4) or None to detect it")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.hidden_size = weights.hidden_size
        self.hop_length = weights.hop_length
        self.threads = threads
        self.record_logits = record_logits
        self.last_logits: tuple[Tensor, Tensor] | None = None
        self.block = tuple(block) if block is not None else (detect_block(weights.R) or (16, 1))
        blk = (int(self.block[0]), int(self.block[1]))
        self.packed = {
            name: _pack(getattr(weights, name), blk, dense_above) for name in ("R", "O1", "O2", "O3", "O4")
        }

        def vec(t: Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().float().cpu().numpy())

        i_prev = vec(weights.I_prev)
        self._vectors = {
            "R_bias": vec(weights.R_bias),
            "I0": np.ascontiguousarray(i_prev[:, 0]),
            "I1": np.ascontiguousarray(i_prev[:, 1]),
            "Ic": vec(weights.I_coarse),
            **{f"{o}_b": vec(getattr(weights, f"{o}_bias")) for o in ("O1", "O2", "O3", "O4")},
        }
        logger.info(
            "CpuSampler H=%d block=%s densities %s", self.hidden_size, self.block,
            {k: round(m.density, 3) if m.kind else "dense" for k, m in self.packed.items()},
        )

    def describe(self) -> dict[str, dict[str, Any]]:
        """Storage per matrix: kernel kind and fraction of blocks stored."""
        return {
            name: {"kernel": "dense" if m.kind == 0 else f"bsr{m.block[0]}x{m.block[1]}",
                   "density": round(m.density, 4), "blocks": m.n_blocks}
            for name, m in self.packed.items()
        }

    def _args(self) -> tuple[Any, ...]:
        p, v = self.packed, self._vectors
        return (
            p["R"].as_tuple(), v["R_bias"], v["I0"], v["I1"], v["Ic"],
            p["O1"].as_tuple(), v["O1_b"], p["O2"].as_tuple(), v["O2_b"],
            p["O3"].as_tuple(), v["O3_b"], p["O4"].as_tuple(), v["O4_b"],
        )

    @torch.no_grad()
    def generate(self, state: SamplerState, cond: Tensor, uniforms: Tensor) -> tuple[Tensor, SamplerState]:
        """See :meth:`models.samplers.base.Sampler.generate`."""
        check_inputs(state, cond, uniforms, self.hidden_size, self.hop_length)
        b, n = uniforms.shape[:2]
        h = state.h.detach().float().cpu().numpy().copy()  # (B, H), updated in place
        cls = torch.stack([state.coarse, state.fine], dim=1).cpu().numpy().astype(np.int64)  # (B, 2)
        pos = state.position.cpu().numpy().astype(np.int64)
        cond_np = np.ascontiguousarray(cond.detach().float().cpu().numpy())
        uni = np.ascontiguousarray(uniforms.detach().float().cpu().numpy())
        pcm = np.empty((b, n), np.int16)
        logits = np.empty((b, n, 2, 256) if self.record_logits else (0, 0, 0, 0), np.float32)
        threads = min(self.threads or numba.get_num_threads(), b, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        if threads > 1:
            chunks = np.linspace(0, b, threads + 1).round().astype(np.int64)
            old = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                args = (h, cls, pos, cond_np, uni, self.hop_length, *self._args(), pcm, logits, chunks)
                _run_parallel(*args)
            finally:
                numba.set_num_threads(old)
        else:
            args = (h, cls, pos, cond_np, uni, self.hop_length, *self._args(), pcm, logits, 0, b)
            _run(*args)
        if self.record_logits:
            lt = torch.from_numpy(logits)
            self.last_logits = (lt[:, :, 0], lt[:, :, 1])
        dev = state.h.device
        new = SamplerState(
            torch.from_numpy(h).to(dev),
            torch.from_numpy(cls[:, 0].copy()).to(dev),
            torch.from_numpy(cls[:, 1].copy()).to(dev),
            state.position + n,
        )
        return torch.from_numpy(pcm).to(dev), new
