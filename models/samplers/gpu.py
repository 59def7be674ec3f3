"""The GPU sampler: host side of the fused persistent kernel (:mod:`models.samplers.persistent`).

:class:`GpuSampler` implements :class:`models.samplers.base.Sampler`. It keeps the weights as
float16 on the device (:func:`half_weights` gives the float32 weights the kernel effectively
computes with, so the reference sampler can be run on exactly those), partitions the hidden
units and head rows over ``P`` programs, and per block either

- ``mode="persistent"`` (CUDA only): one launch runs all n steps with grid barriers; needs
  every program resident at once, so ``P`` is kept at or under the multiprocessor count;
- ``mode="phased"``: one launch per phase and step (4n + 1 launches): the same phase code
  with launch boundaries as barriers. It runs under Triton's CPU interpreter
  (``TRITON_INTERPRET=1``), which is how CI checks the kernel against the reference, and on a
  GPU as a slow fallback that isolates barrier problems.

Triton is imported with this module; import it only where Triton is installed (the service
does so only when CUDA is present).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from models.audio import join_pcm
from models.samplers.base import SamplerState
from models.samplers.persistent import PHASE_FINAL, PHASE_FINE_HEAD, PHASE_RECURRENT, wavernn_block_kernel
from models.samplers.reference import check_inputs
from models.weights import InferenceWeights

logger = logging.getLogger(__name__)

MODES = ("persistent", "phased")
#: Batches up to this size use the register-resident FMA path; larger ones tl.dot (padded to 16+).
FMA_MAX_BATCH = 4
#: Spins after which a grid barrier gives up (about seconds of waiting: far beyond a real step).
MAX_SPINS = 1 << 24
#: Streams sampled at once (bounds the softmax/cumsum tile to (SAMPLE_ROWS, 256) in registers).
SAMPLE_ROWS = 16
#: K chunk of the tl.dot path (halved for tiles of 128+ streams, whose (K, BB) operand is larger).
DOT_BLOCK_K = 64


def dot_block_k(hidden: int, tile: int) -> int:
    """K chunk for a batch tile of ``tile`` streams."""
    return min(DOT_BLOCK_K if tile < 128 else DOT_BLOCK_K // 2, _pow2(hidden // 2))


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def half_weights(weights: InferenceWeights) -> InferenceWeights:
    """The weights as the kernel sees them: matrices rounded to float16, biases and I* kept float32."""
    mats = ("R", "O1", "O2", "O3", "O4")
    rounded = {k: (v.half().float() if k in mats else v.float()) for k, v in weights.tensors().items()}
    return InferenceWeights(weights.hop_length, **rounded)


@dataclass(frozen=True)
class Partition:
    """How the work of one step is split over programs.

    Attributes:
        programs: grid size P.
        units: UC, hidden units of each half per program (power of two).
        head_rows: UO, rows of O1/O3 per program (power of two).
    """

    programs: int
    units: int
    head_rows: int


def plan_partition(hidden: int, head_hidden: int, max_programs: int, dot: bool) -> Partition:
    """Smallest power-of-two shares that fit ``max_programs`` (the multiprocessors).

    The tl.dot path needs 16 or more rows per tile: 8 * UC >= 16 and UO >= 16.
    """
    if max_programs < 1:
        raise ValueError(f"max_programs must be >= 1, got {max_programs}")
    half = hidden // 2
    uc = max(_pow2(-(-half // max_programs)), 2 if dot else 1)
    uo = max(_pow2(-(-head_hidden // max_programs)), 16 if dot else 1)
    programs = max(-(-half // uc), -(-head_hidden // uo))
    return Partition(programs, uc, uo)


@dataclass(frozen=True)
class PackedRows:
    """R's rows per program and row slot, keeping only the columns each slot's rows use.

    Attributes:
        values: (P * 8 * UC, KS) float16, row ``r`` of program ``p`` at ``p * 8 * UC + r``.
        cols: (P * 8, KS) int32 column of each kept weight, per (program, slot); padding
            entries point at column 0 with weight 0.
        width: KS, kept columns per slot padded to a power of two.
        kept: largest number of columns a slot keeps (before padding).
    """

    values: Tensor
    cols: Tensor
    width: int
    kept: int


def slot_rows(hidden: int, units: int, program: int) -> list[list[int]]:
    """Rows of R (paper order) of each of the 8 row slots of ``program`` (slots 3 and 7 are empty).

    Slot ``s``: gate ``s % 4`` (u, r, e; 3 = padding) of half ``s // 4``, units
    ``program * units .. + units - 1`` of that half (fewer past the end).
    """
    half = hidden // 2
    out: list[list[int]] = []
    for s in range(8):
        gate, hs = s % 4, s // 4
        out.append([gate * hidden + hs * half + program * units + j for j in range(units)
                    if gate < 3 and program * units + j < half])
    return out


def pack_rows(R: Tensor, part: Partition) -> PackedRows:
    """Pack R (3H, H) for the register-resident sparse path: per slot, the union of its rows' non-zero columns."""
    hidden = int(R.shape[1])
    slots = [slot_rows(hidden, part.units, p) for p in range(part.programs)]
    unions = [torch.nonzero((R[rows] != 0).any(dim=0)).flatten() if rows else torch.zeros(0, dtype=torch.long)
              for per_prog in slots for rows in per_prog]
    kept = max(int(u.numel()) for u in unions)
    width = max(16, _pow2(kept))
    values = torch.zeros(part.programs * 8 * part.units, width, dtype=torch.float16)
    cols = torch.zeros(part.programs * 8, width, dtype=torch.int32)
    for p, per_prog in enumerate(slots):
        for s, rows in enumerate(per_prog):
            u = unions[p * 8 + s]
            cols[p * 8 + s, : u.numel()] = u.to(torch.int32)
            for j, row in enumerate(rows):
                values[(p * 8 + s) * part.units + j, : u.numel()] = R[row, u].half()
    return PackedRows(values, cols, width, kept)


class GpuSampler:
    """Fused-kernel sampler implementing :class:`models.samplers.base.Sampler`.

    Args:
        weights: the voice's inference weights (any device; copied to ``device`` as fp16).
        device: where the kernel runs (``cuda``; ``cpu`` only under ``TRITON_INTERPRET=1``).
        mode: ``persistent`` or ``phased`` (see the module docstring).
        max_programs: cap on the grid (default: the GPU's multiprocessors; 4 in the interpreter).
        dot_precision: ``tf32x3`` (fp32-accurate), ``tf32`` or ``ieee`` for the tl.dot path.
        max_spins: spins after which a persistent grid barrier gives up; the block is then rerun
            in phased mode, which the sampler keeps from then on (never a hang).
        sparse: hold R packed (only the columns each row slot keeps) on the register-resident
            path (batches up to ``FMA_MAX_BATCH``): ``auto`` does when that keeps at most half
            the columns (a pruned voice), ``never`` always holds it dense.
        num_warps: warps per program of the persistent launch.
        block_k: K chunk of the tl.dot path (batches over ``FMA_MAX_BATCH``); None picks
            :func:`dot_block_k`.
    """

    def __init__(self, weights: InferenceWeights, device: torch.device | str = "cuda", mode: str = "persistent",
                 max_programs: int | None = None, dot_precision: str = "tf32x3", max_spins: int = MAX_SPINS,
                 sparse: str = "auto", num_warps: int = 8, block_k: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError("GpuSampler on cuda needs a CUDA device; use the CPU sampler (models.samplers.cpu)")
            self.multiprocessors = torch.cuda.get_device_properties(self.device).multi_processor_count
        elif self.device.type == "cpu" and interpreting():
            if mode == "persistent":
                raise ValueError("the interpreter runs programs one after another, so a grid barrier would never "
                                 "open: use mode='phased' under TRITON_INTERPRET=1")
            self.multiprocessors = 4
        else:
            raise ValueError(f"GpuSampler runs on CUDA (or on CPU under TRITON_INTERPRET=1), not on {self.device}")
        if dot_precision not in ("tf32x3", "tf32", "ieee"):
            raise ValueError(f"dot_precision must be tf32x3, tf32 or ieee, got {dot_precision!r}")
        if max_spins < 1:
            raise ValueError(f"max_spins must be >= 1, got {max_spins}")
        if num_warps not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"num_warps must be a power of two from 1 to 32, got {num_warps}")
        if block_k is not None and (block_k < 16 or block_k & (block_k - 1)):
            raise ValueError(f"block_k must be a power of two >= 16 (or None for the default), got {block_k}")
        self.mode = mode
        self.max_spins = int(max_spins)
        self.num_warps = int(num_warps)  # of the persistent launch (the phased fallback uses 4)
        self.block_k = block_k  # K chunk of the tl.dot path (None: dot_block_k)
        self.dot_precision = dot_precision
        self.max_programs = int(max_programs or self.multiprocessors)
        if mode == "persistent" and self.max_programs > self.multiprocessors:
            raise ValueError(f"persistent mode needs every program resident: max_programs {self.max_programs} > "
                             f"{self.multiprocessors} multiprocessors")
        self.hidden_size = weights.hidden_size
        self.hop_length = weights.hop_length
        self.head_hidden = int(weights.O1.shape[0])
        if self.hidden_size % 2:
            raise ValueError(f"hidden size must be even, got {self.hidden_size}")
        dev = self.device
        mats = ("R", "O1", "O2", "O3", "O4")
        self.w = {k: v.to(dev, torch.float16 if k in mats else torch.float32).contiguous()
                  for k, v in weights.tensors().items()}
        if sparse not in ("auto", "never"):
            raise ValueError(f"sparse must be auto or never, got {sparse!r}")
        self.packed: PackedRows | None = None
        dense_r = bool((weights.R != 0).all())
        packed = None if sparse == "never" or dense_r else pack_rows(
            weights.R.float().cpu(), plan_partition(self.hidden_size, self.head_hidden, self.max_programs, dot=False))
        if packed is not None and packed.width <= _pow2(self.hidden_size) // 2:
            self.packed = PackedRows(packed.values.to(dev), packed.cols.to(dev), packed.width, packed.kept)
            logger.info("GPU sampler: R packed to %d of %d columns per row slot (%d kept)", packed.width,
                        self.hidden_size, packed.kept)

    def partition(self, batch: int) -> tuple[Partition, int, bool]:
        """(partition, padded batch tile BB, uses tl.dot) for a batch of ``batch`` streams."""
        dot = batch > FMA_MAX_BATCH
        bb = max(16, _pow2(batch)) if dot else _pow2(batch)
        return plan_partition(self.hidden_size, self.head_hidden, self.max_programs, dot), bb, dot

    def warm_batches(self, max_batch: int) -> list[int]:
        """One batch size per compiled variant (tile ``BB``) up to ``max_batch``, for warm-up."""
        sizes = {self.partition(b)[1]: b for b in range(max(1, max_batch), 0, -1)}
        return sorted(sizes.values())

    @torch.no_grad()
    def generate(self, state: SamplerState, cond: Tensor, uniforms: Tensor) -> tuple[Tensor, SamplerState]:
        """See :meth:`models.samplers.base.Sampler.generate`."""
        check_inputs(state, cond, uniforms, self.hidden_size, self.hop_length)
        b, n = int(uniforms.shape[0]), int(uniforms.shape[1])
        h = self.hidden_size
        dev = self.device
        part, bb, dot = self.partition(b)
        w = self.w
        cond_d = cond.to(dev, torch.float32).contiguous()  # (B, F, 3H)
        base = (state.position % self.hop_length).to(dev, torch.int32).contiguous()  # (B,)
        uni = uniforms.to(dev, torch.float32).contiguous()  # (B, n, 2)
        prev = torch.stack([state.coarse, state.fine], dim=1).to(dev, torch.int32).contiguous()  # (B, 2)
        h_buf = torch.empty(2, b, h, device=dev, dtype=torch.float32)
        h_buf[0] = state.h.to(dev, torch.float32)
        scratch = torch.empty(b, 6, h // 2, device=dev, dtype=torch.float32)
        lc = w["O2_bias"].repeat(b, 1)  # (B, 256) logits accumulators (a copy: never alias the bias)
        lf = w["O4_bias"].repeat(b, 1)
        out_c = torch.full((b, n), -1, device=dev, dtype=torch.int32)  # poisoned: every entry must be written
        out_f = torch.full((b, n), -1, device=dev, dtype=torch.int32)
        counter = torch.zeros(1, device=dev, dtype=torch.int32)
        flag = torch.zeros(1, device=dev, dtype=torch.int32)
        args = (w["R"], w["R_bias"], w["I_prev"], w["I_coarse"], w["O1"], w["O1_bias"], w["O2"], w["O2_bias"],
                w["O3"], w["O3_bias"], w["O4"], w["O4_bias"], cond_d, base, uni, prev, h_buf, scratch, lc, lf,
                out_c, out_f, counter, flag, b, n, self.hop_length, int(cond_d.shape[1]), h, self.head_hidden)
        meta = {"UC": part.units, "UO": part.head_rows, "HP": _pow2(h), "HALFP": _pow2(h // 2), "BB": bb,
                "BK": min(self.block_k, _pow2(h // 2)) if self.block_k else dot_block_k(h, bb),
                "DOT": dot, "DOT_PRECISION": self.dot_precision,
                "SB": min(bb, SAMPLE_ROWS)}
        grid = (part.programs,)
        sparse_r = self.packed is not None and not dot
        meta["SPARSE_R"] = sparse_r
        meta["KS"] = self.packed.width if self.packed is not None else 16
        rs = self.packed.values if self.packed is not None else w["R"]
        rcols = self.packed.cols if self.packed is not None else counter
        if self.mode == "persistent":
            wavernn_block_kernel[grid](*args, 0, 0, self.max_spins, rs, rcols, PERSISTENT=True,
                                       num_warps=self.num_warps, **meta)
            if int(flag.item()):  # a barrier gave up: not every program was resident
                logger.warning("GPU sampler: a grid barrier timed out (%d programs not all resident on %s); "
                               "rerunning in phased mode from now on", grid[0], dev)
                self.mode = "phased"
                h_buf[0] = state.h.to(dev, torch.float32)
                lc.copy_(w["O2_bias"].repeat(b, 1))
                lf.copy_(w["O4_bias"].repeat(b, 1))
        if self.mode == "phased":
            for k in range(n):
                for phase in range(PHASE_RECURRENT, PHASE_FINE_HEAD + 1):
                    wavernn_block_kernel[grid](*args, k, phase, self.max_spins, rs, rcols,
                                               PERSISTENT=False, num_warps=4, **meta)
            wavernn_block_kernel[grid](*args, n, PHASE_FINAL, self.max_spins, rs, rcols, PERSISTENT=False,
                                       num_warps=4, **meta)
        out_dev = state.h.device
        coarse = out_c.long().to(out_dev)
        fine = out_f.long().to(out_dev)
        pcm = join_pcm(coarse, fine)  # (B, n) int16
        new = SamplerState(h_buf[n % 2].to(out_dev), coarse[:, -1].clone(), fine[:, -1].clone(), state.position + n)
        return pcm, new
