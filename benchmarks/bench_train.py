"""Training throughput of a run config: float32 against bf16 autocast (``train.amp``).

Metric. The model of ``--config`` (its ``voice`` section; random weights, the mel statistics
left at 0/1) takes optimizer steps of ``train.batch_size`` random teacher-forcing segments of
``train.seq_frames`` frames, the way ``wavernn-tts train`` does: conditioning, the GRU over the
segment, both heads, cross-entropy, backward, gradient clipping and Adam. After ``--warmup``
steps, the median of ``--steps`` step times gives ``samples_per_s`` (target samples trained
per second) for each precision on ``--threads`` torch threads. Random targets cost the same
arithmetic as real ones, so no corpus is needed. bf16 is native on a CPU with AVX512-BF16 or
AMX (reported as ``cpu_bf16``); elsewhere it is emulated and slower. A config with
``train.self_feed`` > 0 also runs its gradient-free teacher-forced pass and draws each step
(:mod:`models.self_feed`), and one with ``train.state_noise`` > 0, ``train.state_round_bf16`` or
``train.gates_bf16`` runs its perturbed GRU loop (:mod:`models.state_noise`), as training does. One JSON line last.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

import torch

from models.evaluate import class_nll
from models.train import load_run_config, step_logits, training_autocast
from models.voices import build_model


def measure(config: str, amp: bool, steps: int, warmup: int, threads: int) -> dict[str, float | int | bool]:
    voice, cfg = load_run_config(config)
    torch.manual_seed(0)
    model = build_model(voice)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    hop, n_mels = voice.model.hop_length, voice.model.n_mels
    b, n = cfg.batch_size, cfg.seq_frames * hop
    mel = torch.randn(b, cfg.seq_frames, n_mels)
    coarse, fine = torch.randint(0, 256, (b, n)), torch.randint(0, 256, (b, n))
    prev = (coarse[:, 0], fine[:, 0])
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with training_autocast(amp, torch.device("cpu")):
            logits_c, logits_f = step_logits(model, cfg, model.conditioning(mel), coarse, fine, prev, generator)
        loss = class_nll(logits_c, coarse, exact=False) + class_nll(logits_f, fine, exact=False)  # as train.py
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    return {"amp": amp, "batch_size": b, "segment_samples": n, "step_s": round(step_s, 4),
            "samples_per_s": round(b * n / step_s), "loss_nats": round(float(loss.detach()), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/cpu384.json")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per precision")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    rows = []
    for amp in (False, True):
        row = measure(args.config, amp, args.steps, args.warmup, args.threads)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    fp32, bf16 = rows
    cfg = load_run_config(args.config)[1]
    print(json.dumps({"config": args.config, "self_feed": cfg.self_feed, "state_noise": cfg.state_noise,
                      "state_round_bf16": cfg.state_round_bf16, "gates_bf16": cfg.gates_bf16,
                      "threads": args.threads, "cpu": platform.processor() or platform.machine(),
                      "cpu_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                      "fp32_samples_per_s": fp32["samples_per_s"], "bf16_samples_per_s": bf16["samples_per_s"],
                      "bf16_speedup": round(bf16["samples_per_s"] / fp32["samples_per_s"], 2), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
