"""Held-out NLL of checkpoints with the GRU's recurrence in float32 and in bf16.

The samplers run the recurrence in float32. Training with ``train.amp`` on a CPU used to run it
in bf16 as well (CPU autocast sends the GRU's per-sample matrix products to bf16, so the state is
rounded to bf16 at every sample), until :func:`models.wavernn.float32_gru` kept it in float32. A
network trained in one regime and scored in the other shows the mismatch here.

Metric. For each checkpoint, the teacher-forced NLL (bits per sample, coarse + fine) of the
held-out utterances of each ``--data`` folder, ``--segments`` evenly spread segments of
``--seq-frames`` frames, three ways:

- ``float32``: no autocast (how ``wavernn-tts eval`` scores on CPU);
- ``bf16_recurrence``: CPU bf16 autocast with the GRU left to autocast (the old training regime);
- ``bf16_around``: CPU bf16 autocast with the recurrence in float32 (training's regime now).

One JSON line last.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from models import wavernn
from models.checkpoint import load_checkpoint
from models.data import SegmentDataset, load_prepared
from models.evaluate import heldout_nll

MODES = ("float32", "bf16_recurrence", "bf16_around")


def _autocast_gru(rnn: nn.GRU, params: dict[str, Tensor], inp: Tensor, hx: Tensor | None) -> tuple[Tensor, Tensor]:
    """The GRU as autocast leaves it: its matrix products in bf16 under CPU autocast."""
    return functional_call(rnn, params, (inp, hx))  # type: ignore[no-any-return]


@contextmanager
def regime(mode: str) -> Iterator[None]:
    """The precision regime ``mode`` (one of :data:`MODES`) for the forward passes inside."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} must be one of {MODES}")
    kept = wavernn.float32_gru
    if mode == "bf16_recurrence":
        wavernn.float32_gru = _autocast_gru
    try:
        with nullcontext() if mode == "float32" else torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    finally:
        wavernn.float32_gru = kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", required=True, help="checkpoints or voices (model.pt)")
    p.add_argument("--data", nargs="+", required=True, help="prepared folders; their held-out split is scored")
    p.add_argument("--segments", type=int, default=200, help="segments per folder, evenly spread (default 200)")
    p.add_argument("--seq-frames", type=int, default=16, help="frames per segment (default 16)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if args.segments < 1 or args.seq_frames < 1 or args.threads < 1:
        p.error("--segments, --seq-frames and --threads must be >= 1")
    for path in [*args.checkpoints, *args.data]:
        if not Path(path).exists():
            p.error(f"{path} does not exist")
    for folder in args.data:
        if not (Path(folder) / "manifest.json").is_file():
            p.error(f"{folder} is not a prepared folder (no manifest.json); prepare it with `wavernn-tts train` "
                    "or pass data/cache/<corpus> as training leaves it")
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for ckpt in args.checkpoints:
        model, voice, _ = load_checkpoint(ckpt)
        for folder in args.data:
            dataset = SegmentDataset(load_prepared(folder, "valid", voice.features), voice.model, args.seq_frames)
            row: dict[str, Any] = {"checkpoint": ckpt, "data": Path(folder).name}
            for mode in MODES:
                with regime(mode):
                    row[mode] = round(heldout_nll(model, dataset, max_segments=args.segments)["total_bits"], 4)
            rows.append(row)
            print(f"{ckpt}  {row['data']}: " + ", ".join(f"{m} {row[m]:.4f}" for m in MODES), flush=True)
    print(json.dumps({"benchmark": "recurrence_precision", "segments": args.segments,
                      "seq_frames": args.seq_frames, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
