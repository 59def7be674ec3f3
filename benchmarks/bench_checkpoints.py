"""Speed of trained checkpoints on the compiled CPU sampler: one stream, one core.

Metric. For each checkpoint (``--checkpoints``), the compiled sampler
(:class:`models.samplers.cpu.CpuSampler`, numba and torch limited to one thread) generates
``--samples`` samples for one stream from the zero state on near-silent conditioning; after a
warm-up call, the median of ``--repeats`` runs gives ``samples_per_s``, ``rtf`` (wall time /
audio time) and ``rtf_cpu`` (process CPU time / audio time, steadier when other work shares
the machine). Unlike ``bench_cpu.py`` (random weights with a pruned structure), this times the
weights a training run produced, so a pruned checkpoint's real block pattern is what the
sparse kernels see. The reference row is the first checkpoint. One JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numba
import torch

from models.checkpoint import load_checkpoint
from models.samplers.base import SamplerState, UniformSource, conditioning_window
from models.samplers.cpu import CpuSampler
from models.weights import extract_weights


def measure(path: str, samples: int, repeats: int) -> dict[str, float | int | str]:
    model, voice, _ = load_checkpoint(path)
    weights = extract_weights(model)
    sampler = CpuSampler(weights, threads=1)
    hop, rate = voice.features.hop_length, voice.features.sample_rate
    with torch.no_grad():
        gates = model.gate_conditioning(torch.full((1, samples // hop + 2, voice.features.n_mels), -5.0))[0]
    cond = conditioning_window(gates, 0, samples, hop).unsqueeze(0)  # (1, F, 3H)
    uniforms = UniformSource(0).draw(samples).unsqueeze(0)  # (1, n, 2)
    state = SamplerState.initial(1, weights.hidden_size)
    sampler.generate(state, cond, uniforms)
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        sampler.generate(state, cond, uniforms)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    nonzero = sum(int((getattr(weights, k) != 0).sum()) for k in ("R", "O1", "O2", "O3", "O4"))
    return {"checkpoint": path, "hidden": weights.hidden_size, "nonzero_R_heads": nonzero,
            "samples_per_s": samples / wall, "rtf": wall / (samples / rate), "rtf_cpu": cpu / (samples / rate)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--samples", type=int, default=24000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    rows = []
    for path in args.checkpoints:
        row = measure(path, args.samples, args.repeats)
        rows.append(row)
        print(f"{path}: H={row['hidden']} non-zero {row['nonzero_R_heads']:,} {row['samples_per_s']:,.0f} samples/s "
              f"RTF {row['rtf']:.3f} (CPU {row['rtf_cpu']:.3f})", flush=True)
    print(json.dumps({"rows": rows, "load_avg": os.getloadavg(), "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
