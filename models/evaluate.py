"""Quality measures of a trained voice (design section 6): ``wavernn-tts eval``.

Three metrics, chosen with ``--metrics`` (comma- or space-separated):

- ``nll``: held-out negative log-likelihood in bits per sample, coarse and fine separately,
  under teacher forcing on deterministic segments of held-out utterances (``--data``);
- ``copy``: copy-synthesis of real recordings (``--real``): PESQ, STOI, log-mel distance and
  MCD of the vocoded log-mel against the recording (:func:`models.quality.copy_synthesis`);
- ``wer``: intelligibility: pocketsphinx word error rate of sentences spoken through the text
  path, beside that of the frontend's own audio (:func:`models.quality.intelligibility`).

``wavernn-tts eval --checkpoint CKPT --metrics nll,copy,wer --data SPEC --real PATH --out FILE``
prints one JSON object and writes it (indented) to ``--out``. Progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from models import quality
from models.checkpoint import load_checkpoint
from models.comb import check_comb_gain
from models.config import N_CLASSES, VoiceConfig
from models.data import SegmentDataset, conditioned_batch, load_prepared, read_manifest, resolve_data
from models.frontend import FESTIVAL_PACKAGES, FestivalFrontend, FrontendUnavailable
from models.postfilter import postfilter_gain_db
from models.voices import card_comb_gain, card_pitch_sync, card_postfilter, card_temperature, read_card
from models.wavernn import WaveRNN
from models.weights import check_temperature

log = logging.getLogger(__name__)

LN2 = math.log(2.0)


def class_nll(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", exact: bool = True) -> torch.Tensor:
    """Cross-entropy in nats of 256-way ``logits`` (B, N, 256) against ``target`` classes (B, N).

    ``exact``: in float32 whatever the logits' dtype. Without it bf16 logits (autocast) stay
    bf16 (less memory traffic than a float32 copy; the same gradient, a loss value good to
    about 0.4%).
    """
    flat = logits.reshape(-1, N_CLASSES)
    return F.cross_entropy(flat.float() if exact else flat, target.reshape(-1), reduction=reduction)


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


#: Metric names ``--metrics`` accepts, in the order they run.
METRICS: tuple[str, ...] = ("nll", "copy", "wer")


def parse_metrics(values: list[str] | str) -> list[str]:
    """``["nll,copy", "wer"]`` -> ``["nll", "copy", "wer"]`` in :data:`METRICS` order, checked."""
    names = {n.strip() for v in ([values] if isinstance(values, str) else values) for n in v.split(",") if n.strip()}
    unknown = sorted(names - set(METRICS))
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or values!r}; choose from {', '.join(METRICS)} "
                         "(comma-separated, e.g. --metrics nll,copy,wer)")
    return [m for m in METRICS if m in names]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``wavernn-tts eval``."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) to evaluate")
    parser.add_argument("--metrics", nargs="+", default=["nll"], metavar="NAME[,NAME]",
                        help=f"what to measure, from {', '.join(METRICS)} (default nll)")
    parser.add_argument("--out", default=None, help="also write the JSON result (indented) to this file")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="device of the nll metric (copy and wer vocode on CPU); default auto")
    nll = parser.add_argument_group("nll: held-out negative log-likelihood")
    nll.add_argument("--data", nargs="+", default=None, metavar="SPEC",
                     help="prepared folder(s), audio folder(s), LJSpeech folder(s) or synthetic:N")
    nll.add_argument("--split", choices=("auto", "valid", "train", "all"), default="auto",
                     help="utterances to use; auto = the held-out split of a prepared folder, "
                          "every utterance of a raw audio folder (default: auto)")
    nll.add_argument("--seq-frames", type=int, default=32, help="frames per evaluation segment (default 32)")
    nll.add_argument("--segments", type=int, default=0, help="at most this many segments (default 0 = all)")
    nll.add_argument("--batch-size", type=int, default=16, help="segments per forward pass (default 16)")
    nll.add_argument("--cache", default=None,
                     help="where raw audio folders are prepared (default: a temporary folder)")
    copy = parser.add_argument_group("copy: copy-synthesis of real speech")
    copy.add_argument("--real", nargs="+", default=None, metavar="PATH",
                      help="recordings training never saw: wav/flac files or folders (searched recursively)")
    copy.add_argument("--max-utterances", type=int, default=0,
                      help="at most this many recordings, evenly spread over the sorted list (default 0 = all)")
    copy.add_argument("--max-seconds", type=float, default=0.0,
                      help="cut each recording to its first this many seconds (default 0 = whole)")
    wer = parser.add_argument_group("wer: intelligibility through the text path")
    wer.add_argument("--sentence", action="append", default=None, metavar="TEXT",
                     help="a sentence to say (repeatable; default: the ten built-in everyday sentences)")
    wer.add_argument("--max-sentences", type=int, default=0, help="at most this many sentences (default 0 = all)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of copy and wer (default 0)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature of copy and wer (default: the voice card's when the "
                             "checkpoint is a voice folder's model.pt, else 1.0, the paper's sampling)")
    parser.add_argument("--postfilter-db", type=float, default=None,
                        help="gain limit (dB, up to 60) of the spectral-envelope post-filter on copy and wer; 0: "
                             "none (default: the voice card's when the checkpoint is a voice folder's model.pt, "
                             "else none)")
    parser.add_argument("--pitch-sync", choices=("on", "off"), default=None,
                        help="pitch-synchronous sampling noise on copy and wer (default: the voice card's when the "
                             "checkpoint is a voice folder's model.pt, else off)")
    parser.add_argument("--comb-gain", type=float, default=None,
                        help="gain (0 .. 0.95) of the pitch post-filter on copy and wer; 0: none (default: the voice "
                             "card's when the checkpoint is a voice folder's model.pt, else none)")
    parser.add_argument("--audio-dir", default=None,
                        help="write the vocoded audio of copy and wer under this folder (copy/, wer/)")


def _nll(model: WaveRNN, voice: VoiceConfig, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Held-out NLL on ``args.data``: (metric dict, number of utterances)."""
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
        return heldout_nll(model, dataset, batch_size=args.batch_size, max_segments=args.segments), len(dataset)


def _audio_dir(args: argparse.Namespace, name: str) -> Path | None:
    return Path(args.audio_dir) / name if args.audio_dir else None


def _served_card(checkpoint: str | Path) -> dict[str, Any]:
    """The voice card beside ``checkpoint`` when it is a voice folder's ``model.pt``, else ``{}``
    (a bare training checkpoint samples as trained: the card accessors' defaults)."""
    card = Path(checkpoint).parent / "card.json"
    return read_card(card) if Path(checkpoint).name == "model.pt" and card.is_file() else {}


def eval_temperature(checkpoint: str | Path, temperature: float | None) -> float:
    """``temperature`` checked, or else that of the voice card beside ``checkpoint``, or 1.0."""
    return card_temperature(_served_card(checkpoint)) if temperature is None else check_temperature(temperature)


def eval_postfilter(checkpoint: str | Path, postfilter_db: float | None) -> float | None:
    """``postfilter_db`` checked (0: none), or else that of the voice card beside ``checkpoint``, or None."""
    return card_postfilter(_served_card(checkpoint)) if postfilter_db is None else postfilter_gain_db(postfilter_db)


def eval_pitch_sync(checkpoint: str | Path, pitch_sync: str | None) -> bool:
    """``pitch_sync`` ("on"/"off"), or else the voice card's beside ``checkpoint``, or off."""
    return card_pitch_sync(_served_card(checkpoint)) if pitch_sync is None else pitch_sync == "on"


def eval_comb_gain(checkpoint: str | Path, comb_gain: float | None) -> float:
    """``comb_gain`` checked, or else the voice card's beside ``checkpoint``, or 0 (none)."""
    return card_comb_gain(_served_card(checkpoint)) if comb_gain is None else check_comb_gain(comb_gain)


def run(args: argparse.Namespace) -> int:
    """``wavernn-tts eval``: print one JSON object with the checkpoint and the chosen metrics."""
    metrics = parse_metrics(args.metrics)
    args.temperature = eval_temperature(args.checkpoint, args.temperature)
    args.postfilter_db = eval_postfilter(args.checkpoint, args.postfilter_db)
    args.pitch_sync = eval_pitch_sync(args.checkpoint, args.pitch_sync)
    args.comb_gain = eval_comb_gain(args.checkpoint, args.comb_gain)
    if "nll" in metrics and not args.data:
        raise ValueError("the nll metric needs --data (held-out utterances); or leave nll out of --metrics")
    if "copy" in metrics and not args.real:
        raise ValueError("the copy metric needs --real PATH... (recordings training never saw)")
    if "copy" in metrics:  # fail before any long work, not after it
        quality.require_package("pesq", "pesq")
        quality.require_package("pystoi", "pystoi")
    frontend = FestivalFrontend() if "wer" in metrics else None
    if frontend is not None:
        quality.require_package("pocketsphinx", "pocketsphinx")
        if not frontend.available():
            frontend.close()
            raise ValueError("the wer metric needs the Festival text frontend: apt-get install "
                             f"{FESTIVAL_PACKAGES}")
    try:
        result = _run_metrics(args, metrics, frontend)
    finally:
        if frontend is not None:
            frontend.close()
    print(json.dumps(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _run_metrics(args: argparse.Namespace, metrics: list[str], frontend: FestivalFrontend | None) -> dict[str, Any]:
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    model, voice, meta = load_checkpoint(args.checkpoint)
    result: dict[str, Any] = {"checkpoint": str(args.checkpoint), "step": meta.get("step"), "metrics": metrics}
    if "copy" in metrics or "wer" in metrics:
        result["temperature"] = args.temperature
        result["postfilter_db"] = args.postfilter_db
        result["pitch_sync"] = args.pitch_sync
        result["comb_gain"] = args.comb_gain
    if "nll" in metrics:
        result["nll"], n_utts = _nll(model.to(args.device), voice, args)
        result.update(data=list(args.data), utterances=n_utts)
        model.cpu()
    if "copy" in metrics:
        log.info("copy-synthesis of %s", args.real)
        result["copy"] = quality.copy_synthesis(
            model, voice, quality.find_audio(args.real), max_utterances=args.max_utterances,
            max_seconds=args.max_seconds, seed=args.seed, temperature=args.temperature,
            postfilter_db=args.postfilter_db, pitch_sync=args.pitch_sync, comb_gain=args.comb_gain,
            audio_dir=_audio_dir(args, "copy"))
    if frontend is not None:
        sentences = quality.spread(args.sentence or quality.EVERYDAY_SENTENCES, args.max_sentences)
        try:
            result["wer"] = quality.intelligibility(model, voice, frontend, sentences, seed=args.seed,
                                                    temperature=args.temperature, postfilter_db=args.postfilter_db,
                                                    pitch_sync=args.pitch_sync, comb_gain=args.comb_gain,
                                                    audio_dir=_audio_dir(args, "wer"))
        except FrontendUnavailable as exc:
            raise ValueError(f"the wer metric needs the text frontend: {exc}") from exc
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.evaluate``: ``wavernn-tts eval`` without the service package (e.g. on a bare GPU machine)."""
    from models.entry import module_main

    return module_main("python -m models.evaluate", "evaluate a voice (docs/quality.md)", add_arguments, run, argv)


if __name__ == "__main__":
    from models.evaluate import main as _main  # the module proper, not a second copy named __main__

    sys.exit(_main())
