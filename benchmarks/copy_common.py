"""What the copy-synthesis diagnostics share: their common arguments, the recordings and voice they
load, and how an output is scored against the original (``diagnose_drift.py``, ``guided_sampling.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from models.audio import float_to_pcm, read_audio, resample
from models.config import FeatureConfig
from models.features import log_mel
from models.quality import find_audio, pesq_wb, spread, stoi
from models.voices import Voice, load_voice
from models.weights import check_temperature


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--voice --audio --max-utterances --max-seconds --seed --temperature``."""
    parser.add_argument("--voice", default="default", help="bundled voice name or checkpoint/voice-folder path")
    parser.add_argument("--audio", nargs="+", required=True, help="recordings (files or folders) to copy")
    parser.add_argument("--max-utterances", type=int, default=5, help="recordings used, spread over the list")
    parser.add_argument("--max-seconds", type=float, default=3.0, help="first seconds of each recording")
    parser.add_argument("--seed", type=int, default=0, help="seed of the uniforms")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the card's)")


def load(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[Path], Voice, float]:
    """The recordings, the voice and the checked temperature; bad input exits through ``parser.error``."""
    if args.max_seconds <= 0 or args.max_utterances < 1 or args.seed < 0:
        parser.error("--max-seconds must be > 0, --max-utterances >= 1 and --seed >= 0")
    try:
        files = spread(find_audio(args.audio), args.max_utterances)
    except ValueError as exc:
        parser.error(str(exc))
    if not files:
        parser.error(f"no audio files found in {args.audio}")
    torch.set_num_threads(1)
    voice = load_voice(args.voice)
    try:
        temperature = check_temperature(voice.temperature if args.temperature is None else args.temperature)
    except ValueError as exc:
        parser.error(str(exc))
    return files, voice, temperature


def read_clip(path: Path, cfg: FeatureConfig, seconds: float) -> np.ndarray:
    """int16 PCM of the first ``seconds`` of ``path`` at the voice's rate, quantised as in training."""
    audio, rate = read_audio(path)
    return float_to_pcm(resample(audio, rate, cfg.sample_rate)[: round(seconds * cfg.sample_rate)])


def add_scores(row: dict[str, float], ref: np.ndarray, ref_mel: np.ndarray, out: np.ndarray, cfg: FeatureConfig,
               weight: float) -> None:
    """Add ``weight`` x PESQ-WB, STOI and the mean absolute log-mel difference (nats) of float ``out``
    against ``ref`` (whose log-mel is ``ref_mel``) to ``row``; ``out`` is cut to ``ref``'s length."""
    out = out[: ref.shape[0]]
    scores = {"pesq_wb": pesq_wb(ref, out, cfg.sample_rate), "stoi": stoi(ref, out, cfg.sample_rate),
              "log_mel_abs_nats": float(np.mean(np.abs(log_mel(out, cfg) - ref_mel)))}
    for name, value in scores.items():
        row[name] = row.get(name, 0.0) + value * weight
