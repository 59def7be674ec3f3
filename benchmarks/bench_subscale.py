"""Subscale speed: plain, subscale and fold-and-crossfade generation of one utterance, side by side.

Metric. For hidden size H (``--hidden``, default 384 and 896) and one utterance of ``--frames``
gate frames (hop 300, ``L = frames * 300`` samples), one timed run generates the whole
utterance from the zero state with precomputed gate conditioning; after a warm-up run the
median of ``--repeats`` runs is reported as

- ``samples_per_s_per_stream``: L / time, the speed one utterance (one stream) gets;
- ``rtf``: real-time factor, time / (L / 24000); below 1 is faster than real time;
- ``speedup``: per-stream speed over the plain compiled sampler's on one core (same H, run);
- ``samples_per_s_per_stream_cpu``, ``speedup_cpu``: the same from process CPU time divided by
  the threads: equal on an idle machine, and a steadier estimate when other work shares the
  cores (it does not show the cost of waiting at a step's barrier on a busy machine);
- ``ttfa_s`` (subscale rows): time from the start to the first output sample, i.e. the
  ``subscale_lag_steps + 1`` steps before the first row is final.

Rows, all in one process on the same weights' shapes (seeded untrained, dense: speed does not
depend on the values):

- ``reference`` (plain torch loop, one thread, a shorter ``L / 8`` run): the reference row;
- ``plain`` :class:`~models.samplers.cpu.CpuSampler`, one stream on one core;
- ``subscale-ref`` :class:`~models.samplers.subscale.SubscaleReferenceSampler` (torch, one thread);
- ``subscale`` :class:`~models.samplers.subscale_cpu.SubscaleCpuSampler` on 1 and 2 cores;
  B = 16, F = 8, 8 past steps, 64 context channels unless overridden;
- ``fold``: :class:`~models.samplers.fold.FoldVocoder` over the compiled sampler, the utterance
  cut into B segments (1-frame overlap) run as one batch, on 1 and 2 cores.

The JSON line printed last holds every row and the machine (CPU count, load average before and
after: other work on the machine slows every row alike).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numba
import torch

from models.config import SAMPLE_RATE, SubscaleConfig, WaveRNNConfig
from models.samplers.base import SamplerState, UniformSource, conditioning_window
from models.samplers.cpu import CpuSampler
from models.samplers.fold import FoldVocoder
from models.samplers.reference import ReferenceSampler
from models.samplers.subscale import SubscaleReferenceSampler, extract_subscale_weights, generate_utterance
from models.samplers.subscale_cpu import SubscaleCpuSampler
from models.subscale import subscale_lag_steps
from models.subscale_net import SubscaleWaveRNN


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


def row(sampler: str, hidden: int, threads: int, samples: int, seconds: tuple[float, float],
        plain: tuple[float, float] | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    wall, cpu = seconds
    per_stream, per_stream_cpu = samples / wall, samples / (cpu / threads)
    out: dict[str, Any] = {"sampler": sampler, "hidden": hidden, "threads": threads, "samples": samples,
                           "samples_per_s_per_stream": round(per_stream, 1),
                           "samples_per_s_per_stream_cpu": round(per_stream_cpu, 1),
                           "rtf": round(wall / (samples / SAMPLE_RATE), 3),
                           "speedup": round(per_stream / plain[0], 2) if plain else 1.0,
                           "speedup_cpu": round(per_stream_cpu / plain[1], 2) if plain else 1.0}
    out |= extra or {}
    ttfa = f" TTFA {out['ttfa_s'] * 1000:.0f} ms" if "ttfa_s" in out else ""
    print(f"{sampler:13s} H={hidden:4d} T={threads} {out['samples_per_s_per_stream']:>9,.0f} samples/s/stream "
          f"(CPU time: {out['samples_per_s_per_stream_cpu']:>9,.0f}) RTF {out['rtf']:.3f} "
          f"x{out['speedup']:.2f} (CPU x{out['speedup_cpu']:.2f}){ttfa}", flush=True)
    return out


def bench_hidden(hidden: int, sub: SubscaleConfig, frames: int, repeats: int) -> list[dict[str, Any]]:
    """All rows for one hidden size."""
    cfg = WaveRNNConfig(hidden_size=hidden)
    torch.manual_seed(0)
    model = SubscaleWaveRNN(cfg, sub).eval()
    sub_w = extract_subscale_weights(model)
    base = sub_w.base  # the same GRU and heads for the plain and fold rows
    length = frames * cfg.hop_length
    gates = torch.randn(frames, 3 * hidden, generator=torch.Generator().manual_seed(0))
    steps = -(-length // sub.factor)
    uni = UniformSource(0).draw(steps * sub.factor)
    rows = []

    def plain_run(sampler: CpuSampler | ReferenceSampler, n: int) -> Callable[[], Any]:
        cond = conditioning_window(gates, 0, n, cfg.hop_length).unsqueeze(0)  # (1, F, 3H)
        return lambda: sampler.generate(SamplerState.initial(1, hidden), cond, uni[:n].unsqueeze(0))

    torch.set_num_threads(1)
    ref_n = length // 8
    rows.append(row("reference", hidden, 1, ref_n, median_time(plain_run(ReferenceSampler(base), ref_n), repeats),
                    None))
    t_plain = median_time(plain_run(CpuSampler(base, threads=1), length), repeats)
    plain_speed = (length / t_plain[0], length / t_plain[1])
    rows.append(row("plain", hidden, 1, length, t_plain, plain_speed))
    ref = SubscaleReferenceSampler(sub_w)
    rows.append(row("subscale-ref", hidden, 1, length,
                    median_time(lambda: generate_utterance(ref, gates, uni), repeats), plain_speed))
    lag = subscale_lag_steps(sub.factor, sub.horizon) + 1
    for threads in (1, 2):
        fast = SubscaleCpuSampler(sub_w, threads=threads)
        t = median_time(lambda fast=fast: generate_utterance(fast, gates, uni), repeats)  # type: ignore[misc]
        ttfa = median_time(lambda fast=fast: fast.generate(fast.initial_state(frames), gates, uni, lag),  # type: ignore[misc]
                           repeats)
        rows.append(row("subscale", hidden, threads, length, t, plain_speed,
                        {"B": sub.factor, "F": sub.horizon, "past": sub.past, "ttfa_s": round(ttfa[0], 4)}))
    overlap = 1
    seg = max(overlap + 1, -(-(frames - overlap) // sub.factor))
    for threads in (1, 2):
        fold = FoldVocoder(CpuSampler(base, threads=threads), seg, overlap, block_samples=length)
        k = len(fold.plan(frames))
        t = median_time(lambda fold=fold: fold.generate(gates), repeats)  # type: ignore[misc]
        rows.append(row("fold", hidden, threads, length, t, plain_speed,
                        {"segments": k, "segment_frames": seg, "overlap_frames": overlap}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[384, 896])
    parser.add_argument("--frames", type=int, default=64, help="utterance length in frames of 300 samples")
    parser.add_argument("--factor", type=int, default=16, help="B, sub-tensors (and fold segments)")
    parser.add_argument("--horizon", type=int, default=8, help="F, the subscale lead/horizon")
    parser.add_argument("--past", type=int, default=8)
    parser.add_argument("--context-channels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sub = SubscaleConfig(factor=args.factor, horizon=args.horizon, past=args.past,
                         context_channels=args.context_channels)
    load_before = os.getloadavg()
    rows = [r for hidden in args.hidden for r in bench_hidden(hidden, sub, args.frames, args.repeats)]
    print(json.dumps({
        "benchmark": "bench_subscale",
        "frames": args.frames,
        "repeats": args.repeats,
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "numba": numba.__version__, "torch": torch.__version__,
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
