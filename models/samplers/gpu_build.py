"""Build the fused kernel for a GPU target without a GPU, and report what it costs on chip.

Triton's wheel carries ``ptxas`` and ``cuobjdump``, so the persistent kernel can be compiled
to an sm_90 cubin on any machine. :func:`compile_report` does that for a model size and
batch (:func:`compile_subscale_report` for the subscale kernel) and reads back registers per
thread, stack frame (spills), shared memory and the PTX of
the grid barrier, which is how CI checks the GPU code path builds, and how the launch
configuration is sized before a GPU is at hand. Run ``python -m models.samplers.gpu_build``
for the table of the shipped sizes (one JSON line per configuration).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import triton

from models.samplers.gpu import FMA_MAX_BATCH, SAMPLE_ROWS, _pow2, dot_block_k, plan_partition
from models.samplers.gpu_subscale import context_tasks
from models.samplers.persistent import wavernn_block_kernel
from models.samplers.persistent_subscale import subscale_block_kernel

# The grid barrier's release arrive in PTX: ``red`` where the atomic's result is unused (Triton 3.9)
# or ``atom`` (Triton 3.6, as on the lent H100); either orders the phase's writes before the arrive.
RELEASE_ADD_PTX = re.compile(r"\b(red|atom)\.global\.gpu\.release\.add\.u32\b")

_FP16 = {"R_ptr", "O1_ptr", "O2_ptr", "O3_ptr", "O4_ptr", "Rs_ptr"}
_I32 = {"base_ptr", "prev_ptr", "out_c_ptr", "out_f_ptr", "counter_ptr", "flag_ptr", "Rcols_ptr", "cbuf_ptr",
        "fbuf_ptr"}
#: H100 SXM / H200: 132 multiprocessors.
HOPPER_SMS = 132


def kernel_meta(hidden: int, batch: int, persistent: bool, programs: int = HOPPER_SMS,
                head_hidden: int | None = None, sparse_width: int = 0) -> tuple[dict[str, Any], int]:
    """The constexpr arguments the sampler would launch with, and the grid size.

    ``sparse_width``: KS of a packed block-sparse R (0: dense R); used only on the FMA path.

    Raises:
        ValueError: a size the sampler would not launch with.
    """
    if hidden < 8 or hidden % 2:
        raise ValueError(f"hidden must be an even number >= 8, got {hidden}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if sparse_width and (sparse_width < 16 or sparse_width & (sparse_width - 1)):
        raise ValueError(f"sparse_width must be 0 (dense) or a power of two >= 16, got {sparse_width}")
    dot = batch > FMA_MAX_BATCH
    bb = max(16, _pow2(batch)) if dot else _pow2(batch)
    part = plan_partition(hidden, head_hidden or hidden // 2, programs, dot)
    meta = {"UC": part.units, "UO": part.head_rows, "HP": _pow2(hidden), "HALFP": _pow2(hidden // 2), "BB": bb,
            "BK": dot_block_k(hidden, bb), "DOT": dot, "DOT_PRECISION": "tf32x3", "SB": min(bb, SAMPLE_ROWS),
            "PERSISTENT": persistent, "KS": sparse_width or 16, "SPARSE_R": bool(sparse_width) and not dot}
    return meta, part.programs


def compile_report(hidden: int, batch: int, persistent: bool = True, arch: int = 90,
                   num_warps: int = 8, sparse_width: int = 0) -> dict[str, Any]:
    """Compile the plain kernel for ``sm_<arch>`` and report its resources.

    Returns:
        dict with target, hidden, batch, programs, the constexprs, registers (per thread),
        stack and local bytes (spills), shared bytes, compile seconds and ``barrier_ptx``
        (the atomic and fence lines of the PTX).
    """
    meta, programs = kernel_meta(hidden, batch, persistent, sparse_width=sparse_width)
    report = _compile(wavernn_block_kernel, meta, arch, num_warps)
    return {"target": f"sm_{arch}", "hidden": hidden, "batch": batch, "programs": programs, "num_warps": num_warps,
            "meta": meta, **report}


def compile_subscale_report(hidden: int, factor: int = 16, context_inputs: int = 480, context_channels: int = 64,
                            persistent: bool = True, arch: int = 90, num_warps: int = 8) -> dict[str, Any]:
    """As :func:`compile_report` for the subscale kernel (B = ``factor`` rows; defaults: B = 16,
    F = 8, 8 past steps, 64 context channels)."""
    meta, programs = kernel_meta(hidden, factor, persistent)
    for key in ("KS", "SPARSE_R"):
        meta.pop(key)
    groups, per = context_tasks(factor, context_channels, programs)
    meta.update({"KP": _pow2(context_inputs), "CCP": _pow2(context_channels), "UX": per})
    report = _compile(subscale_block_kernel, meta, arch, num_warps)
    return {"target": f"sm_{arch}", "hidden": hidden, "factor": factor, "programs": programs,
            "context_groups": groups, "num_warps": num_warps, "meta": meta, **report}


def _compile(kernel: Any, meta: dict[str, Any], arch: int, num_warps: int) -> dict[str, Any]:
    """Compile ``kernel`` with constexprs ``meta``; registers, spills, shared memory and the barrier PTX."""
    from triton.backends.compiler import GPUTarget

    names = list(inspect.signature(kernel.fn).parameters)
    sig = {n: "constexpr" if n in meta else ("*fp16" if n in _FP16 else "*i32" if n in _I32 else
                                             "*fp32" if n.endswith("_ptr") else "i32") for n in names}
    start = time.perf_counter()
    src = triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=meta)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
    seconds = time.perf_counter() - start
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "kernel.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        usage = subprocess.run([str(tool), "--dump-resource-usage", str(cubin)], capture_output=True, text=True,
                               check=True).stdout
    fields = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    ptx = compiled.asm["ptx"]
    barrier = [line.strip() for line in ptx.splitlines() if re.search(r"\b(atom|red)\.|\bfence\.|\.acquire\.", line)]
    return {"registers": int(fields.get("REG", 0)), "stack_bytes": int(fields.get("STACK", 0)),
            "local_bytes": int(fields.get("LOCAL", 0)), "shared_bytes": int(fields.get("SHARED", 0)),
            "compile_s": round(seconds, 1), "barrier_ptx": "\n".join(dict.fromkeys(barrier))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[896, 1024])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--num-warps", type=int, default=8)
    parser.add_argument("--sparse-width", type=int, default=0,
                        help="KS of a packed block-sparse R (FMA path, batch <= 4); 0 = dense")
    parser.add_argument("--subscale", action="store_true",
                        help="the subscale kernel instead (B = 16, F = 8, 8 past steps, 64 context channels)")
    args = parser.parse_args(argv)
    if args.subscale:
        for hidden in args.hidden:
            report = compile_subscale_report(hidden, num_warps=args.num_warps)
            report.pop("barrier_ptx")
            print(json.dumps(report), flush=True)
        return 0
    for hidden in args.hidden:
        for batch in args.batch:
            try:
                report = compile_report(hidden, batch, num_warps=args.num_warps, sparse_width=args.sparse_width)
            except ValueError as exc:
                parser.error(str(exc))
            report.pop("barrier_ptx")
            print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
