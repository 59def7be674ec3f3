"""CPU sampler speed: the compiled block-sparse sampler against the torch reference.

Metric. For hidden size H (default 896, ``--hidden``), sparsity z of the recurrent matrix R
(each gate pruned separately in 16x1 blocks; ``--heads sparse`` prunes O1..O4 to the same z)
and a batch of B streams on T cores, one timed run is one ``generate`` call producing
``--samples`` samples for each stream from the zero state; after a warm-up call, the median
of ``--repeats`` runs is reported as

- ``samples_per_s_per_stream``: samples / time, what one stream gets;
- ``samples_per_s_aggregate``: B * samples / time, what the machine delivers;
- ``rtf``: real-time factor of a stream, time / (samples / 24000); below 1 is faster than
  real time;
- ``rtf_cpu``: the same from process CPU time divided by the threads: equal to ``rtf`` on an
  idle machine, and a steadier estimate of it when other work shares the cores.

Configurations: B=1 on one core (numba and torch limited to one thread), B=4 and B=8 on two
cores (numba ``prange`` over groups of streams), and B=8 on one core (streams share each
weight read). The reference rows (``sampler: reference``, plain torch loop, same weights)
run in the same process on one core (B=1) and two torch threads (B=8). Weights are a seeded
untrained WaveRNN-H with R (and optionally the heads) masked by
:func:`models.sparsity.gate_masks` / :func:`models.sparsity.block_mask`: the structure and
density of a pruned model, not its values (speed does not depend on them).
``--onnx`` adds onnxruntime running the exported step cell once per sample (dense only).

The JSON line printed last holds every row and the machine (CPU count, load average before
and after: other work on the machine slows every row alike).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any

import numba
import numpy as np
import torch

from models.config import SAMPLE_RATE, WaveRNNConfig
from models.samplers.base import Sampler, SamplerState, UniformSource, draw_batch
from models.samplers.cpu import DENSE_ABOVE, CpuSampler
from models.samplers.reference import ReferenceSampler
from models.sparsity import block_mask, gate_masks
from models.wavernn import WaveRNN
from models.weights import InferenceWeights, extract_weights

HEADS = ("O1", "O2", "O3", "O4")


def sparse_weights(base: InferenceWeights, sparsity: float, heads: bool) -> InferenceWeights:
    """``base`` with R (per gate) and optionally the heads pruned to ``sparsity`` in 16x1 blocks."""
    if sparsity == 0:
        return base
    changes: dict[str, Any] = {"R": base.R * gate_masks(base.R, sparsity, (16, 1))}
    if heads:
        changes |= {name: getattr(base, name) * block_mask(getattr(base, name), sparsity, (16, 1)) for name in HEADS}
    return dataclasses.replace(base, **changes)


def time_sampler(sampler: Sampler, batch: int, samples: int, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of one ``generate`` call of ``samples`` samples for ``batch`` streams."""
    h = sampler.hidden_size
    cond = torch.randn(batch, samples // sampler.hop_length + 2, 3 * h, generator=torch.Generator().manual_seed(0))
    sources = [UniformSource(i) for i in range(batch)]
    sampler.generate(SamplerState.initial(batch, h), cond, draw_batch(sources, min(samples, 200)))  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        uniforms = draw_batch(sources, samples)
        c0, t0 = time.process_time(), time.perf_counter()
        sampler.generate(SamplerState.initial(batch, h), cond, uniforms)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


def row(sampler: str, hidden: int, sparsity: float, heads: str, batch: int, threads: int, samples: int,
        seconds: tuple[float, float], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    wall, cpu = seconds
    per_stream = samples / wall
    audio = samples / SAMPLE_RATE
    out = {
        "sampler": sampler, "hidden": hidden, "sparsity": sparsity, "heads": heads, "batch": batch,
        "threads": threads, "samples_per_s_per_stream": round(per_stream, 1),
        "samples_per_s_aggregate": round(per_stream * batch, 1), "rtf": round(wall / audio, 3),
        "rtf_cpu": round(cpu / threads / audio, 3),
    }
    out |= extra or {}
    print(f"{sampler:9s} H={hidden:4d} z={sparsity:4.2f} heads={heads:6s} B={batch} T={threads} "
          f"{out.get('storage', ''):6s} {out['samples_per_s_per_stream']:>9,.0f} /stream "
          f"{out['samples_per_s_aggregate']:>9,.0f} aggregate  RTF {out['rtf']:.3f} (CPU {out['rtf_cpu']:.3f})",
          flush=True)
    return out


def onnx_row(model: WaveRNN, weights: InferenceWeights, samples: int, repeats: int) -> dict[str, Any]:
    """onnxruntime running the exported cell once per sample (B = 1, one thread)."""
    import onnxruntime as ort

    from models.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, tmp, check=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(f"{tmp}/cell.onnx", opts, providers=["CPUExecutionProvider"])
    h = weights.hidden_size
    cond = np.random.default_rng(0).standard_normal((samples, 1, 3 * h)).astype(np.float32)
    uni = UniformSource(0).draw(samples).numpy()

    def run(n: int) -> None:
        hs = np.zeros((1, h), np.float32)
        c, f = np.array([128]), np.array([0])
        for k in range(n):
            hs, c, f, _, _ = sess.run(None, {"h": hs, "c_prev": c, "f_prev": f, "cond": cond[k], "u": uni[k : k + 1]})

    run(min(samples, 200))
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        run(samples)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return row("onnxrt", h, 0.0, "dense", 1, 1, samples, (statistics.median(times), statistics.median(cpu)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[896])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.8, 0.9, 0.95, 0.97])
    parser.add_argument("--heads", choices=["dense", "sparse", "both"], default="both",
                        help="prune the softmax heads too (sparse), not (dense), or run both")
    parser.add_argument("--configs", default="1x1,4x2,8x2,8x1", help="batch x threads, comma-separated")
    parser.add_argument("--samples", type=int, default=2400, help="samples per stream per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", choices=["auto", "both"], default="auto",
                        help="auto: the sampler picks dense or block-sparse per matrix; both: a row for each, forced")
    parser.add_argument("--no-reference", action="store_true", help="skip the torch reference rows")
    parser.add_argument("--onnx", action="store_true", help="add onnxruntime running the exported cell (slow export)")
    args = parser.parse_args()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    load_before = os.getloadavg()
    torch_threads = torch.get_num_threads()
    rows = []
    for hidden in args.hidden:
        torch.manual_seed(0)
        model = WaveRNN(WaveRNNConfig(hidden_size=hidden)).eval()
        base = extract_weights(model)
        if not args.no_reference:
            for batch, threads in ((1, 1), (8, min(2, torch_threads))):
                torch.set_num_threads(threads)
                ref_samples = max(300, args.samples // 4)  # the reference is slow: time a shorter run
                t = time_sampler(ReferenceSampler(base), batch, ref_samples, args.repeats)
                rows.append(row("reference", hidden, 0.0, "dense", batch, threads, ref_samples, t))
            torch.set_num_threads(torch_threads)
        if args.onnx:
            torch.set_num_threads(1)
            rows.append(onnx_row(model, base, max(300, args.samples // 4), args.repeats))
            torch.set_num_threads(torch_threads)
        head_modes = ["dense", "sparse"] if args.heads == "both" else [args.heads]
        for sparsity in args.sparsity:
            for heads in head_modes if sparsity > 0 else ["dense"]:
                weights = sparse_weights(base, sparsity, heads == "sparse")
                storages = {"auto": DENSE_ABOVE}
                if args.storage == "both":
                    storages = {"dense": -1.0, "sparse": 1.0} if sparsity > 0 else {"dense": -1.0}
                for storage, dense_above in storages.items():
                    for batch, threads in configs:
                        sampler = CpuSampler(weights, threads=threads, dense_above=dense_above)
                        t = time_sampler(sampler, batch, args.samples, args.repeats)
                        kernels = {k: v["kernel"] for k, v in sampler.describe().items()}
                        rows.append(row("cpu", hidden, sparsity, heads, batch, threads, args.samples, t,
                                        {"storage": storage, "kernels": kernels}))
    print(json.dumps({
        "benchmark": "bench_cpu",
        "samples": args.samples,
        "repeats": args.repeats,
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "numba": numba.__version__, "numba_threading_layer": _threading_layer(), "torch": torch.__version__,
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "rows": rows,
    }))


def _threading_layer() -> str:
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel region ran
        return "none"


if __name__ == "__main__":
    main()
