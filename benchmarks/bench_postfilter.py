"""What the spectral-envelope post-filter does to intelligibility, against a DSP-only baseline.

Metric. The ten everyday sentences (``models.quality.EVERYDAY_SENTENCES``) go through the text
path (Festival -> log-mel -> the voice's compiled CPU sampler at the card's temperature, seed
``--seed``), once. The same sampled audio is then post-filtered
(:func:`models.postfilter.envelope_postfilter`) at each gain limit of ``--limits`` (0: none), and
pocketsphinx's pooled word error rate is reported for each, beside two baselines from the same
features: Griffin-Lim (``--gl-iters`` iterations from the filterbank's pseudo-inverse magnitude,
no network at all) and Festival's own rendering. It also times the streaming post-filter
(:class:`models.postfilter.StreamingPostFilter`, 2,400-sample blocks, one thread): process CPU
seconds per second of audio. With ``--real``, the same three (raw output, post-filtered at the
largest limit, Griffin-Lim) are compared on copy-synthesis of real recordings: PESQ-WB and STOI
against the original, as ``wavernn-tts eval --metrics copy`` computes them, and ``agreement_wer``:
pocketsphinx's pooled word error rate of each output against what it hears in the original (the
recordings have no transcripts; this asks whether the copy is heard as the original is, not whether
either is heard right). One JSON line last.

Reading. Pocketsphinx hears the spectral envelope and barely the phase, so a low WER after the
post-filter shows the envelope is right, not that the network's own output is: the Griffin-Lim
row says how far the features alone get. Naturalness needs a listener (or PESQ, from
``wavernn-tts eval --metrics copy``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from models.audio import pcm_to_float, read_audio, resample
from models.config import FeatureConfig
from models.features import log_mel, mel_filterbank
from models.frontend import FestivalFrontend, features_for
from models.postfilter import StreamingPostFilter, envelope_postfilter, postfilter_gain_db
from models.quality import EVERYDAY_SENTENCES, PocketsphinxRecogniser, find_audio, pesq_wb, spread, stoi, word_errors
from models.vocoder import Vocoder, cpu_vocoder
from models.voices import load_voice


def griffin_lim(mel: np.ndarray, cfg: FeatureConfig, n: int, iters: int, seed: int = 0) -> np.ndarray:
    """Audio (n,) from log-mel frames (T, M) alone: pseudo-inverse magnitude, ``iters`` phase updates."""
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    lo = (cfg.n_fft - cfg.win_length) // 2
    window = torch.nn.functional.pad(window, (lo, cfg.n_fft - cfg.win_length - lo))  # (n_fft,)
    base = np.e if cfg.log_base == "e" else 10.0
    fb = mel_filterbank(cfg).astype(np.float64)  # (M, F)
    mag = torch.from_numpy(np.maximum(np.linalg.pinv(fb) @ (base ** mel.astype(np.float64)).T, 0.0))  # (F, T)
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(mag.shape))
    spec = mag * torch.from_numpy(phase)

    def istft(s: torch.Tensor) -> torch.Tensor:
        return torch.istft(s, cfg.n_fft, cfg.hop_length, cfg.n_fft, window, center=True, length=n)

    y = istft(spec)
    for _ in range(iters):
        est = torch.stft(y, cfg.n_fft, cfg.hop_length, cfg.n_fft, window, center=True, pad_mode="reflect",
                         return_complex=True)[:, : mag.shape[1]]  # (F, T)
        y = istft(mag * torch.exp(1j * torch.angle(est)))
    return np.clip(y.numpy(), -1.0, 1.0)


def stream_cost(audio: np.ndarray, mel: np.ndarray, cfg: FeatureConfig, limit: float, block: int = 2400) -> float:
    """Process CPU seconds the streaming post-filter takes for ``audio``."""
    post = StreamingPostFilter(cfg, limit)
    post.add_target(mel)
    t0 = time.process_time()
    for pos in range(0, audio.shape[0], block):
        post.push(audio[pos : pos + block])
    post.flush()
    return time.process_time() - t0


def copy_rows(vocoder: Vocoder, cfg: FeatureConfig, files: list, limit: float, gl_iters: int, seed: int,
              max_seconds: float, recognise: PocketsphinxRecogniser) -> dict[str, dict[str, float]]:
    """Mean PESQ-WB and STOI of raw, post-filtered and Griffin-Lim copy-synthesis of ``files``, and
    each one's pooled word error rate (%) against pocketsphinx's transcript of the original."""
    sums: dict[str, dict[str, float]] = {}
    errors: dict[str, list[int]] = {}
    for path in files:
        x, file_rate = read_audio(path)
        ref = resample(x, file_rate, cfg.sample_rate)[: round(max_seconds * cfg.sample_rate)]
        mel = log_mel(ref, cfg)
        raw = pcm_to_float(vocoder.vocode(mel, seed=seed)).astype(np.float64)  # (T * hop,) >= len(ref)
        n = ref.shape[0]
        outs = {"plain": raw[:n], f"postfilter_{limit:g}db": envelope_postfilter(raw, mel, cfg, limit)[:n],
                "griffin_lim": griffin_lim(mel, cfg, raw.shape[0], gl_iters)[:n]}
        heard = recognise(ref.astype(np.float32), cfg.sample_rate)
        for name, out in outs.items():
            row = sums.setdefault(name, {"pesq_wb": 0.0, "stoi": 0.0})
            row["pesq_wb"] += pesq_wb(ref, out.astype(np.float32), cfg.sample_rate) / len(files)
            row["stoi"] += stoi(ref, out.astype(np.float32), cfg.sample_rate) / len(files)
            e, w = word_errors(heard, recognise(out.astype(np.float32), cfg.sample_rate))
            errors[name] = [a + b for a, b in zip(errors.get(name, [0, 0]), (e, w), strict=True)]
        print(f"copy {path}: {heard!r}", file=sys.stderr, flush=True)
    rows = {name: {k: round(v, 3) for k, v in row.items()} for name, row in sums.items()}
    for name, (e, w) in errors.items():
        rows[name]["agreement_wer"] = round(100.0 * e / max(w, 1), 1)
    return rows


def limit_list(text: str) -> list[float]:
    """``--limits``: distinct gain limits in dB, each 0 (none) or in (0, 60]."""
    try:
        limits = [float(x) for x in text.split(",")]
        for x in limits:
            postfilter_gain_db(x)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if len(set(limits)) != len(limits):
        raise argparse.ArgumentTypeError(f"{text!r}: each limit once")
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voice", default="default", help="bundled voice name or checkpoint/voice-folder path")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the card's)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--limits", type=limit_list, default="0,10,20,30",
                        help="distinct post-filter gain limits in dB, comma-separated (0: none)")
    parser.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations of the baseline")
    parser.add_argument("--real", nargs="*", default=[], help="recordings (files or folders) for copy-synthesis")
    parser.add_argument("--max-utterances", type=int, default=10, help="recordings used, spread over the list")
    parser.add_argument("--max-seconds", type=float, default=4.0, help="first seconds of each recording")
    args = parser.parse_args()
    limits: list[float] = args.limits
    torch.set_num_threads(1)
    voice = load_voice(args.voice)
    cfg = voice.config.features
    temperature = voice.temperature if args.temperature is None else args.temperature
    vocoder = cpu_vocoder(voice.model, voice.config, temperature=temperature)  # no post-filter: raw output
    frontend = FestivalFrontend()
    if not frontend.available():
        sys.exit("needs Festival: apt-get install festival festvox-us-slt-hts")
    recognise = PocketsphinxRecogniser()
    rows = {f"postfilter_{x:g}db" if x else "plain": [0, 0] for x in limits}
    rows |= {"griffin_lim": [0, 0], "festival": [0, 0]}
    cpu_s = audio_s = 0.0
    try:
        for i, text in enumerate(EVERYDAY_SENTENCES):
            rendering = frontend.render_text(text)
            mel = features_for(rendering, cfg)
            raw = pcm_to_float(vocoder.vocode(mel, seed=args.seed)).astype(np.float64)
            outputs = {name: envelope_postfilter(raw, mel, cfg, x) if x else raw
                       for name, x in zip(rows, limits, strict=False)}
            outputs["griffin_lim"] = griffin_lim(mel, cfg, raw.shape[0], args.gl_iters)
            for name, audio in outputs.items():
                errors, words = word_errors(text, recognise(audio.astype(np.float32), cfg.sample_rate))
                rows[name][0] += errors
                rows[name][1] += words
            errors, words = word_errors(text, recognise(rendering.audio, rendering.sample_rate))
            rows["festival"][0] += errors
            rows["festival"][1] += words
            cpu_s += stream_cost(raw, mel, cfg, max(limits) or 20.0)
            audio_s += raw.shape[0] / cfg.sample_rate
            print(f"{i + 1}/{len(EVERYDAY_SENTENCES)} {text!r}", file=sys.stderr, flush=True)
    finally:
        frontend.close()
    wer = {name: round(100.0 * e / w, 1) for name, (e, w) in rows.items()}
    copy = copy_rows(vocoder, cfg, spread(find_audio(args.real), args.max_utterances), max(limits) or 20.0,
                     args.gl_iters, args.seed, args.max_seconds, recognise) if args.real else None
    print(json.dumps({"voice": voice.name, "step": voice.card.get("training", {}).get("steps"),
                      "temperature": temperature, "seed": args.seed, "gl_iters": args.gl_iters,
                      "words": rows["festival"][1], "wer_percent": wer,
                      "postfilter_cpu_s_per_audio_s": round(cpu_s / audio_s, 4),
                      **({"copy": copy, "copy_files": len(spread(find_audio(args.real), args.max_utterances))}
                         if copy is not None else {})}))


if __name__ == "__main__":
    main()
