"""Quality measures of a trained voice (design section 6).

For now one metric: held-out negative log-likelihood in bits per sample, coarse and fine
separately, under teacher forcing on deterministic segments of held-out utterances. Each
metric is a function ``(model, dataset, options) -> dict[str, float]`` registered in
:data:`METRICS`, so copy-synthesis (PESQ, STOI, log-mel distance) and intelligibility (WER)
can be added beside it and chosen with ``--metrics``.

``wavernn-tts eval --checkpoint CKPT --data SPEC...`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from models.checkpoint import load_checkpoint
from models.config import N_CLASSES
from models.data import SegmentDataset, conditioned_batch, load_prepared, read_manifest, resolve_data
from models.wavernn import WaveRNN

LN2 = math.log(2.0)


def class_nll(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy in nats of 256-way ``logits`` (B, N, 256) against ``target`` classes (B, N), in float32."""
    return F.cross_entropy(logits.float().reshape(-1, N_CLASSES), target.reshape(-1), reduction=reduction)


@torch.no_grad()
def heldout_nll(
    model: WaveRNN,
    dataset: SegmentDataset,
    *,
    batch_size: int = 16,
    max_segments: int = 0,
    amp: bool = False,
) -> dict[str, float]:
    """Teacher-forced negative log-likelihood of ``dataset``'s fixed segments.

    Every segment starts from a zero state with its real previous sample, so the numbers are
    comparable between runs that use the same segment length.

    Args:
        model: the network; evaluated on its own device, in eval mode (its mode is restored).
        dataset: segments (see :meth:`SegmentDataset.fixed_segments`).
        batch_size: segments per forward pass.
        max_segments: evaluate at most this many segments, evenly spread (0 = all).
        amp: bf16 autocast on CUDA.
    Returns:
        ``coarse_bits``, ``fine_bits``, ``total_bits`` (bits per sample), ``segments``, ``samples``.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sum_c = sum_f = 0.0
    n_samples = n_segments = 0
    try:
        for batch in dataset.fixed_batches(batch_size, max_segments):
            batch = batch.to(device)
            with _autocast(device, amp):
                cond, coarse, fine, prev = conditioned_batch(model, batch)
                logits_c, logits_f, _ = model.forward_conditioned(cond, coarse, fine, prev=prev)
            sum_c += float(class_nll(logits_c, coarse, reduction="sum"))
            sum_f += float(class_nll(logits_f, fine, reduction="sum"))
            n_samples += coarse.numel()
            n_segments += coarse.shape[0]
    finally:
        model.train(was_training)
    coarse_bits, fine_bits = sum_c / n_samples / LN2, sum_f / n_samples / LN2
    return {"coarse_bits": coarse_bits, "fine_bits": fine_bits, "total_bits": coarse_bits + fine_bits,
            "segments": float(n_segments), "samples": float(n_samples)}


def _autocast(device: torch.device, amp: bool) -> Any:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _nll_metric(model: WaveRNN, dataset: SegmentDataset, args: argparse.Namespace) -> dict[str, float]:
    return heldout_nll(model, dataset, batch_size=args.batch_size, max_segments=args.segments)


#: Metric name -> function(model, dataset, parsed args) -> results. PESQ/STOI/WER come later.
METRICS: dict[str, Callable[[WaveRNN, SegmentDataset, argparse.Namespace], dict[str, float]]] = {
    "nll": _nll_metric,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``wavernn-tts eval``."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) to evaluate")
    parser.add_argument("--data", nargs="+", required=True, metavar="SPEC",
                        help="prepared folder(s), audio folder(s), LJSpeech folder(s) or synthetic:N")
    parser.add_argument("--split", choices=("auto", "valid", "train", "all"), default="auto",
                        help="utterances to use; auto = the held-out split of a prepared folder, "
                             "every utterance of a raw audio folder (default: auto)")
    parser.add_argument("--metrics", nargs="+", choices=sorted(METRICS), default=["nll"], help="what to measure")
    parser.add_argument("--seq-frames", type=int, default=32, help="frames per evaluation segment (default 32)")
    parser.add_argument("--segments", type=int, default=0, help="at most this many segments (default 0 = all)")
    parser.add_argument("--batch-size", type=int, default=16, help="segments per forward pass (default 16)")
    parser.add_argument("--cache", default=None,
                        help="where raw audio folders are prepared (default: a temporary folder)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default auto")


def run(args: argparse.Namespace) -> int:
    """``wavernn-tts eval``: print one JSON object with the checkpoint, the data and the metrics."""
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    model, voice, meta = load_checkpoint(args.checkpoint)
    model.to(args.device)
    with tempfile.TemporaryDirectory(prefix="wavernn-eval-") as tmp:
        utterances = []
        for spec in args.data:
            prepared_already = (Path(spec) / "manifest.json").is_file()
            # raw audio is prepared apart from any training cache, with nothing held out
            cache = Path(args.cache or tmp) / "eval"
            folder = resolve_data(spec, voice.features, cache, valid_count=0, valid_fraction=0.0)
            split = args.split
            if split == "auto":
                has_valid = any(u["split"] == "valid" for u in read_manifest(folder)["utterances"])
                split = "valid" if prepared_already and has_valid else "all"
            utterances += load_prepared(folder, split, voice.features)
        if not utterances:
            raise ValueError(f"no utterances in split {args.split!r} of {args.data}; try --split all")
        dataset = SegmentDataset(utterances, voice.model, args.seq_frames)
        result: dict[str, Any] = {"checkpoint": str(args.checkpoint), "step": meta.get("step"),
                                  "data": list(args.data), "utterances": len(dataset)}
        for name in args.metrics:
            result[name] = METRICS[name](model, dataset, args)
    print(json.dumps(result))
    return 0
