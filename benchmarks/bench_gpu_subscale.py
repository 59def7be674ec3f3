"""Subscale on the GPU: the fused subscale kernel against the fused plain kernel, one CUDA device.

Metric (issue 6's target: per-stream samples/s of subscale at least 8x the plain sampler's on
the same device). For hidden size H (``--hidden``), seeded untrained weights of a Subscale
WaveRNN-H (B = ``--factor``, F = ``--horizon``, ``--past`` past steps, ``--context`` channels):

- ``plain``: :class:`models.samplers.gpu.GpuSampler` on the model's WaveRNN step, one stream,
  one persistent launch generating ``--frames`` x hop samples from the zero state;
- ``subscale``: :class:`models.samplers.gpu_subscale.GpuSubscaleSampler`, the same utterance
  length folded into B sub-tensors, all of its global steps in one persistent launch (the
  host's copies of history and state included).

Each row: a warm-up call (compilation), then the median (``bench_gpu.time_call``) of ``--repeats`` runs timed with CUDA
events; ``samples_per_s`` per stream, ``us_per_step`` (per global step for subscale), and
``speedup`` = subscale / plain. The JSON line printed last holds both rows and the device.
Without CUDA it prints ``{"error": ...}`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from models.config import SubscaleConfig, WaveRNNConfig
from models.samplers.base import SamplerState, UniformSource, conditioning_window
from models.subscale import total_steps
from models.subscale_net import SubscaleWaveRNN

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu import cuda_missing, time_call  # CUDA-event timing shared with bench_gpu.py


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--frames", type=int, default=64, help="utterance length in frames (hop 300)")
    parser.add_argument("--factor", type=int, default=16)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--past", type=int, default=8)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.frames < 2 or args.repeats < 1:
        parser.error("--frames must be >= 2 and --repeats >= 1")
    if cuda_missing("bench_gpu_subscale.py"):
        return 2
    from models.samplers.gpu import GpuSampler
    from models.samplers.gpu_subscale import GpuSubscaleSampler
    from models.samplers.subscale import extract_subscale_weights

    torch.manual_seed(0)
    sub = SubscaleConfig(factor=args.factor, horizon=args.horizon, past=args.past, context_channels=args.context)
    model = SubscaleWaveRNN(WaveRNNConfig(hidden_size=args.hidden), sub).eval()
    weights = extract_subscale_weights(model)
    hop = weights.base.hop_length
    n = args.frames * hop
    with torch.no_grad():
        gates = model.gate_conditioning(torch.full((1, args.frames, model.cfg.n_mels), -5.0))[0]  # (T, 3H)
    device = torch.device("cuda")

    plain = GpuSampler(weights.base, device, mode="persistent", sparse="never")
    cond = conditioning_window(gates, 0, n - hop, hop).unsqueeze(0)  # a whole-frames block of one stream
    uni_plain = UniformSource(0).draw(n - hop).unsqueeze(0)

    def run_plain() -> object:
        return plain.generate(SamplerState.initial(1, args.hidden), cond, uni_plain)

    fused = GpuSubscaleSampler(weights, device, mode="persistent")
    state0 = fused.initial_state(args.frames)
    steps = total_steps(sub.factor, sub.horizon, state0.steps_per_subtensor)
    uni_sub = UniformSource(0).draw(state0.steps_per_subtensor * sub.factor)

    def run_subscale() -> object:
        return fused.generate(state0, gates, uni_sub, steps)

    run_plain()  # warm-up: compilation
    t_plain = time_call(run_plain, args.repeats)
    run_subscale()
    t_sub = time_call(run_subscale, args.repeats)
    rate_plain, rate_sub = (n - hop) / t_plain, n / t_sub
    rows = [
        {"sampler": "plain", "samples": n - hop, "seconds": round(t_plain, 5),
         "samples_per_s": round(rate_plain), "us_per_step": round(t_plain / (n - hop) * 1e6, 2),
         "mode": plain.mode},
        {"sampler": "subscale", "samples": n, "seconds": round(t_sub, 5), "samples_per_s": round(rate_sub),
         "us_per_step": round(t_sub / steps * 1e6, 2), "global_steps": steps, "mode": fused.mode},
    ]
    for row in rows:
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"device": torch.cuda.get_device_name(), "hidden": args.hidden, "factor": sub.factor,
                      "horizon": sub.horizon, "speedup": round(rate_sub / rate_plain, 2),
                      "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
