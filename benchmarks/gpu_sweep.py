"""Launch settings of the fused GPU kernel, measured: grid size, warps, K chunk and dot precision.

For WaveRNN-H (``--hidden``, seeded untrained weights as in ``bench_gpu.py``) and each batch in
``--batches``, variants of :class:`models.samplers.gpu.GpuSampler` (``max_programs`` and
``num_warps`` one at a time from the defaults; ``block_k`` crossed with ``dot_precision`` where
the batch takes the tl.dot path) generate ``--samples`` samples per stream from the same state,
conditioning and draws; after a warm-up call, the median of ``--repeats`` runs timed with CUDA
events gives ``us_per_step`` and ``samples_per_s_aggregate``. ``same_as_first``: the fraction of
streams whose samples equal those of the batch's first variant (the current defaults), a check
that a faster setting computes the same thing (rare rounding flips aside). ``barrier_us`` rows:
one grid barrier with that many programs. Without CUDA it prints ``{"error": ...}`` and exits 2;
JSON line last.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu import barrier_cost, cuda_missing, inputs, make_weights, time_call  # shared with bench_gpu.py


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--programs", type=int, nargs="+", default=[0, 64],
                        help="max_programs caps (0: the GPU's multiprocessors, the default)")
    parser.add_argument("--warps", type=int, nargs="+", default=[8, 4, 16])
    parser.add_argument("--block-k", type=int, nargs="+", default=[0, 128, 256], help="0: the default K chunk")
    parser.add_argument("--precision", nargs="+", default=["tf32x3", "tf32"])
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.samples < 1 or args.repeats < 1 or min(args.batches) < 1 or min(args.programs) < 0:
        parser.error("--samples, --repeats and --batches must be >= 1, --programs >= 0 (0: every multiprocessor)")
    if cuda_missing("gpu_sweep.py"):
        return 2
    from models.samplers.gpu import FMA_MAX_BATCH, GpuSampler, half_weights

    props = torch.cuda.get_device_properties(0)
    weights = half_weights(make_weights(args.hidden, 0.0))
    rows: list[dict[str, Any]] = []
    for programs in sorted({p or props.multi_processor_count for p in args.programs}):
        rows.append({"barrier_programs": programs, "barrier_us": barrier_cost(programs)})
        print(f"barrier with {programs:3d} programs: {rows[-1]['barrier_us']:.2f} us", flush=True)
    for batch in args.batches:
        dot = batch > FMA_MAX_BATCH
        # one knob at a time from the defaults (the first value of each list); K chunk and precision crossed
        base = (args.programs[0], args.warps[0], args.block_k[0], args.precision[0])
        variants = [base] + [(p, *base[1:]) for p in args.programs[1:]]
        variants += [(base[0], w, *base[2:]) for w in args.warps[1:]]
        if dot:
            variants += [(base[0], base[1], k, q) for k, q in itertools.product(args.block_k, args.precision)
                         if (k, q) != base[2:]]
        first: torch.Tensor | None = None
        for programs, warps, block_k, precision in variants:
            state, cond, uni = inputs(args.hidden, batch, args.samples, 300)
            try:
                sampler = GpuSampler(weights, "cuda", mode="persistent", max_programs=programs or None,
                                     num_warps=warps, block_k=block_k or None, dot_precision=precision)
                pcm, _ = sampler.generate(state, cond, uni)
                seconds = time_call(lambda: sampler.generate(state, cond, uni), args.repeats)  # noqa: B023
            except Exception as exc:  # a variant that does not build is a row, not the end of the sweep
                rows.append({"batch": batch, "programs": programs, "warps": warps, "block_k": block_k,
                             "precision": precision, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
                print(f"B={batch} programs={programs} warps={warps} bk={block_k} {precision}: {rows[-1]['error']}")
                continue
            first = pcm if first is None else first
            same = float((pcm == first).all(dim=1).float().mean())
            row = {"batch": batch, "programs": sampler.partition(batch)[0].programs, "warps": warps,
                   "block_k": block_k, "precision": precision, "mode": sampler.mode,
                   "us_per_step": seconds / args.samples * 1e6,
                   "samples_per_s_aggregate": batch * args.samples / seconds, "same_as_first": same}
            rows.append(row)
            print(f"B={batch:4d} programs={row['programs']:3d} warps={warps:2d} bk={block_k:3d} {precision:6s} "
                  f"{row['us_per_step']:8.2f} us/step {row['samples_per_s_aggregate']:12,.0f}/s "
                  f"same={same:.2f} {sampler.mode}", flush=True)
    print(json.dumps({"device": props.name, "hidden": args.hidden, "torch": torch.__version__, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
