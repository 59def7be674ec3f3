"""Why a voice's network alone is hard to understand: three checks that each rule a cause in or out.

1. **Conditioning.** Held-out teacher-forced NLL (bits per sample) of ``--segments`` segments of
   ``--seq-frames`` frames with their own log-mel frames, with each segment's frames swapped for
   another segment's (a roll over the batch), and with every frame set to the batch mean. A
   network that leaned on its past samples and ignored its features would score the three alike.
2. **Fine temperature.** The coarse head at ``--temperature`` (default: the card's) and the fine
   head at each of ``--fine-temperatures`` (the fine byte's draws are the noise floor under the
   coarse waveform).
3. **State reset.** The hidden state zeroed every ``--resets`` samples, the previous sample kept.
   Training starts every segment from a zero state with its real previous sample (4 frames =
   1,200 samples for the bundled voice), so a state carried for seconds is something training
   never saw; if drift of that state were the fault, resets would help.

For 2 and 3 each variant is measured two ways: the envelope error of copy-synthesis of ``--wav``
(mean absolute difference of the output's log-mel from the input's, in nats, and its mean: >0 is
too loud) and pocketsphinx's pooled word error rate on the ten everyday sentences through the text
path (Festival -> log-mel -> compiled CPU sampler, no post-filter) at each of ``--seeds``. One
JSON line last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.audio import pcm_to_float, read_audio, resample
from models.data import SegmentDataset, conditioned_batch, load_prepared
from models.evaluate import class_nll
from models.features import log_mel
from models.frontend import FestivalFrontend
from models.quality import intelligibility
from models.samplers.base import Sampler, SamplerState
from models.samplers.cpu import CpuSampler
from models.vocoder import Vocoder
from models.voices import load_voice
from models.wavernn import WaveRNN
from models.weights import InferenceWeights, check_temperature, extract_weights


class ResetSampler:
    """``inner`` with the hidden state zeroed before every block (the vocoder's block size sets how often)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.hidden_size, self.hop_length = inner.hidden_size, inner.hop_length

    def generate(self, state: SamplerState, cond: Tensor, uniforms: Tensor) -> tuple[Tensor, SamplerState]:
        return self.inner.generate(dataclasses.replace(state, h=torch.zeros_like(state.h)), cond, uniforms)


def head_temperatures(model: WaveRNN, coarse_t: float, fine_t: float) -> InferenceWeights:
    """The sampler weights with the coarse head at ``coarse_t`` and the fine head at ``fine_t``."""
    w = extract_weights(model, temperature=coarse_t)
    scale = coarse_t / check_temperature(fine_t)  # O4 already holds 1 / coarse_t
    return dataclasses.replace(w, O4=w.O4 * scale, O4_bias=w.O4_bias * scale)


def conditioning_nll(model: WaveRNN, dataset: SegmentDataset, segments: int) -> dict[str, dict[str, float]]:
    """Teacher-forced bits per sample with the true, swapped and mean log-mel frames."""
    sums = {kind: [0.0, 0.0, 0] for kind in ("true", "swapped", "mean")}
    with torch.no_grad():
        for batch in dataset.fixed_batches(16, segments):
            for kind, row in sums.items():
                mel = batch.mel
                if kind == "swapped":
                    mel = torch.roll(mel, 1, 0)
                elif kind == "mean":
                    mel = mel.mean(dim=(0, 1), keepdim=True).expand_as(mel).contiguous()
                cond, coarse, fine, prev = conditioned_batch(model, dataclasses.replace(batch, mel=mel))
                logits_c, logits_f, _ = model.forward_conditioned(cond, coarse, fine, prev=prev)
                row[0] += float(class_nll(logits_c, coarse, reduction="sum"))
                row[1] += float(class_nll(logits_f, fine, reduction="sum"))
                row[2] += coarse.numel()
    return {kind: {"coarse_bits": round(c / n / math.log(2), 3), "fine_bits": round(f / n / math.log(2), 3),
                   "total_bits": round((c + f) / n / math.log(2), 3)} for kind, (c, f, n) in sums.items()}


def envelope_error(vocoder: Vocoder, mel: np.ndarray, block: int, seed: int) -> dict[str, float]:
    """Mean |log-mel(output) - mel| and its mean (nats) of copy-synthesis of ``mel``."""
    out = pcm_to_float(vocoder.vocode(mel, seed=seed, block_samples=block))
    d = log_mel(out, vocoder.voice.features)[: mel.shape[0]] - mel
    return {"mean_abs": round(float(np.abs(d).mean()), 3), "bias": round(float(d.mean()), 3)}


def temperature(text: str) -> float:
    """``--temperature``: one sampling temperature in the accepted range."""
    try:
        return check_temperature(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def temperature_list(text: str) -> list[float]:
    """``--fine-temperatures``: comma-separated sampling temperatures (may be empty)."""
    return [temperature(x) for x in text.split(",") if x.strip()]


def int_list(text: str, minimum: int) -> list[int]:
    """Comma-separated integers, each >= ``minimum``."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated whole numbers, e.g. 0,1,2") from None
    if any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each value must be >= {minimum}")
    return values


def seed_list(text: str) -> list[int]:
    """``--seeds``: at least one seed."""
    seeds = int_list(text, 0)
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed, e.g. 0,1,2")
    return seeds


def positive_int(text: str) -> int:
    values = int_list(text, 1)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: one whole number >= 1")
    return values[0]


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r}: a number of seconds > 0")
    return value


def reset_list(text: str) -> list[int]:
    """``--resets``: state-reset intervals in samples (may be empty)."""
    return int_list(text, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voice", default="default", help="bundled voice name or checkpoint/voice-folder path")
    parser.add_argument("--data", default="data/cache/synthetic_1500_seed0/prepared",
                        help="prepared corpus whose valid split the conditioning check scores")
    parser.add_argument("--segments", type=positive_int, default=128,
                        help="held-out segments of the conditioning check")
    parser.add_argument("--seq-frames", type=positive_int, default=16, help="frames per held-out segment")
    parser.add_argument("--wav", default="../shared/real-speech/vctk_autovc/p225/p225_003.wav",
                        help="recording whose copy-synthesis gives the envelope error")
    parser.add_argument("--max-seconds", type=positive_float, default=3.75, help="first seconds of --wav")
    parser.add_argument("--temperature", type=temperature, default=None,
                        help="coarse temperature (default: the card's)")
    parser.add_argument("--fine-temperatures", type=temperature_list, default="0.3,0.05",
                        help="fine-head temperatures to try besides --temperature")
    parser.add_argument("--resets", type=reset_list, default="1200", help="state-reset intervals (samples) to try")
    parser.add_argument("--seeds", type=seed_list, default="0,1,2", help="sampling seeds of the WER runs")
    args = parser.parse_args()
    try:
        run(args)
    except (ValueError, OSError) as exc:  # an unknown voice, a missing corpus or recording
        sys.exit(f"error: {exc}")


def run(args: argparse.Namespace) -> None:
    """The three checks of the module docstring; prints the JSON line."""
    torch.set_num_threads(1)
    voice = load_voice(args.voice)
    model, cfg = voice.model, voice.config.features
    tc = voice.temperature if args.temperature is None else args.temperature

    utterances = load_prepared(args.data, "valid", cfg)
    conditioning = conditioning_nll(model, SegmentDataset(utterances, voice.config.model, args.seq_frames),
                                    args.segments)
    print(f"conditioning {conditioning}", file=sys.stderr, flush=True)

    variants: list[tuple[str, float, int]] = [("baseline", tc, 0)]
    variants += [(f"fine_t{tf:g}", tf, 0) for tf in args.fine_temperatures if tf != tc]
    variants += [(f"reset_{r}", tc, r) for r in args.resets]
    x, rate = read_audio(args.wav)
    copy_mel = log_mel(resample(x, rate, cfg.sample_rate)[: round(args.max_seconds * cfg.sample_rate)], cfg)
    frontend = FestivalFrontend()
    if not frontend.available():
        sys.exit("needs Festival: apt-get install festival festvox-us-slt-hts")
    rows: dict[str, Any] = {}
    words = 0
    try:
        for name, tf, reset in variants:
            sampler: Sampler = CpuSampler(head_temperatures(model, tc, tf))
            if reset:
                sampler = ResetSampler(sampler)
            block = reset or 2400
            row: dict[str, Any] = {"fine_temperature": tf, "reset_every": reset, "envelope": envelope_error(
                Vocoder(model, voice.config, sampler), copy_mel, block, args.seeds[0])}
            wers = []
            for seed in args.seeds:
                result = intelligibility(model, voice.config, frontend, seed=seed, sampler=sampler,
                                         block_samples=block)
                wers.append(round(100.0 * result["wer"], 1))
                words = result["words"]
            row["wer_percent"] = wers
            row["wer_mean_percent"] = round(float(np.mean(wers)), 1)
            rows[name] = row
            print(f"{name} {row}", file=sys.stderr, flush=True)
    finally:
        frontend.close()
    print(json.dumps({"voice": voice.name, "step": voice.card.get("training", {}).get("steps"),
                      "coarse_temperature": tc, "seeds": args.seeds, "words_per_seed": words,
                      "conditioning_nll": conditioning, "variants": rows}))


if __name__ == "__main__":
    main()
