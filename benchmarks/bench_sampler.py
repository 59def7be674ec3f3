"""Reference-sampler speed on CPU.

Metric: for each hidden size H and batch B, generate ``--samples`` samples per stream with
the reference sampler (readable torch loop, see models/samplers/reference.py) from a seeded
untrained WaveRNN-H, after one warm-up block. Reported per configuration (median of
``--repeats`` timed runs):

- ``samples_per_s_per_stream``: samples generated per second for one stream;
- ``samples_per_s_aggregate``: B times that;
- ``rtf``: real-time factor of one stream, compute time / audio time at 24 kHz
  (below 1 is faster than real time).

This sampler is the correctness oracle, not the fast path; its numbers are the reference
row for the fast samplers' benchmarks. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from models.config import SAMPLE_RATE, WaveRNNConfig
from models.samplers.base import SamplerState, UniformSource, draw_batch
from models.samplers.reference import ReferenceSampler
from models.wavernn import WaveRNN
from models.weights import extract_weights


def bench_one(hidden: int, batch: int, samples: int, repeats: int) -> dict[str, float | int]:
    torch.manual_seed(0)
    model = WaveRNN(WaveRNNConfig(hidden_size=hidden)).eval()
    sampler = ReferenceSampler(extract_weights(model))
    hop = model.cfg.hop_length
    frames = samples // hop + 2
    cond = torch.randn(batch, frames, 3 * hidden) * 0.5
    sources = [UniformSource(i) for i in range(batch)]
    sampler.generate(SamplerState.initial(batch, hidden), cond, draw_batch(sources, min(200, samples)))  # warm-up
    times = []
    for _ in range(repeats):
        uniforms = draw_batch(sources, samples)
        state = SamplerState.initial(batch, hidden)
        t0 = time.perf_counter()
        sampler.generate(state, cond, uniforms)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    per_stream = samples / t
    return {
        "hidden": hidden,
        "batch": batch,
        "samples_per_s_per_stream": round(per_stream, 1),
        "samples_per_s_aggregate": round(per_stream * batch, 1),
        "rtf": round(SAMPLE_RATE / per_stream, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[896, 512, 256])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--samples", type=int, default=2400, help="samples per stream per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for hidden in args.hidden:
        for batch in args.batch:
            row = bench_one(hidden, batch, args.samples, args.repeats)
            rows.append(row)
            print(f"H={hidden:4d} B={batch:2d}  {row['samples_per_s_per_stream']:>9,.0f} samples/s/stream  "
                  f"{row['samples_per_s_aggregate']:>9,.0f} aggregate  RTF {row['rtf']:.2f}", flush=True)
    print(json.dumps({
        "benchmark": "bench_sampler",
        "sampler": "reference",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": torch.get_num_threads(),
        "samples_per_run": args.samples,
        "repeats": args.repeats,
        "results": rows,
    }))


if __name__ == "__main__":
    main()
