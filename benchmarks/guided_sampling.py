"""Feature-guided sampling: does choosing, frame by frame, the best of K sampled continuations keep
a voice on its features?

Method. Copy-synthesis of each recording of ``--audio`` from its own log-mel frames, one frame
(``hop_length`` samples) at a time. From the current state, the compiled CPU sampler draws K
continuations of the frame, each with its own uniforms, as K streams of one batch. Each candidate
is scored by the mean absolute difference, over the mel bands, between the log-mel of the last
``--score-window`` samples (the frame before and the candidate, Hann-windowed, analysed with the
voice's filterbank) and the requested frame at that window's centre. The best candidate is kept,
its state is copied to all K streams, and the next frame starts from it. K = 1 is plain
synthesis (what the server does). The output is always the network's own samples; nothing is
filtered. Each output is scored against the original (PESQ-WB, STOI, mean absolute log-mel
difference in nats), as it is and through the spectral-envelope post-filter at ``--postfilter-db``
(the served path). One JSON line last, with ``rtf_cpu``: process CPU seconds per second of
audio for each K (one thread, after a warm-up of the sampler).

Reading. If the network leaves the waveform because its own samples lead it astray, a choice
among its own samples, made before the error compounds, should keep it on the features. If even
the best of K candidates drifts, each frame's candidates are all off the requested spectrum, and
only a better network helps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import copy_common
import numpy as np
import torch

from models.audio import pcm_to_float
from models.config import FeatureConfig
from models.features import log_mel, mel_filterbank
from models.postfilter import check_max_gain_db, envelope_postfilter
from models.samplers.base import SamplerState, conditioning_window
from models.samplers.cpu import CpuSampler
from models.voices import Voice
from models.weights import extract_weights


class FrameScore:
    """Log-mel distance of the latest ``window`` samples to a requested frame (readable, numpy)."""

    def __init__(self, cfg: FeatureConfig, window: int) -> None:
        if not cfg.hop_length <= window <= cfg.n_fft or window % 2:
            raise ValueError(f"--score-window {window} must be even and in [hop {cfg.hop_length}, n_fft {cfg.n_fft}]")
        self.cfg, self.size = cfg, window
        self.window = np.hanning(window + 1)[:-1]  # periodic Hann, as the features use
        # the features' window is win_length long: rescale so a steady tone reads the same level
        self.gain = (np.hanning(cfg.win_length + 1)[:-1].sum()) / self.window.sum()
        self.fb = mel_filterbank(cfg).astype(np.float64)  # (M, F)

    def __call__(self, tails: np.ndarray, target: np.ndarray) -> np.ndarray:
        """(K, window) float samples, (M,) target log-mel -> (K,) mean absolute difference in nats."""
        spec = np.abs(np.fft.rfft(tails * self.window, n=self.cfg.n_fft, axis=1)) * self.gain  # (K, F)
        measured = np.log(np.maximum(spec @ self.fb.T, self.cfg.log_floor))  # (K, M)
        ln_base = 1.0 if self.cfg.log_base == "e" else np.log(10.0)
        return np.abs(measured - target * ln_base).mean(axis=1)


def guided_copy(voice: Voice, sampler: CpuSampler, mel: np.ndarray, k: int, score: FrameScore,
                generator: torch.Generator) -> np.ndarray:
    """int16 synthesis of ``mel`` (T, M), keeping the best of ``k`` candidates per frame."""
    hop = voice.config.features.hop_length
    n = mel.shape[0] * hop
    with torch.no_grad():
        gates = voice.model.gate_conditioning(torch.from_numpy(mel).unsqueeze(0))[0]  # (T, 3H)
    state = SamplerState.initial(k, sampler.hidden_size)
    out = np.zeros(n, np.int16)
    for start in range(0, n, hop):
        window = conditioning_window(gates, start, hop, hop).unsqueeze(0).expand(k, -1, -1).contiguous()
        uniforms = torch.rand(k, hop, 2, generator=generator)
        block, state = sampler.generate(state, window, uniforms)  # (k, hop)
        best = 0
        if k > 1:
            lo = max(0, start + hop - score.size)
            past = np.broadcast_to(pcm_to_float(out[lo:start]), (k, start - lo))
            tails = np.concatenate([past, pcm_to_float(block.numpy())], axis=1)  # (k, <= size)
            tails = np.pad(tails, ((0, 0), (score.size - tails.shape[1], 0)))
            centre = (start + hop - score.size // 2) // hop  # the frame the window is centred on
            best = int(np.argmin(score(tails, mel[min(max(centre, 0), mel.shape[0] - 1)])))
            state = state.select([best] * k)
        out[start : start + hop] = block[best].numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    copy_common.add_arguments(parser)
    parser.add_argument("--candidates", default="1,4,16", help="values of K, comma-separated (1: plain synthesis)")
    parser.add_argument("--score-window", type=int, default=600, help="samples scored per choice (default 600)")
    parser.add_argument("--postfilter-db", type=float, default=20.0, help="post-filter limit of the served rows")
    args = parser.parse_args()
    try:
        ks = [int(x) for x in args.candidates.split(",")]
    except ValueError:
        parser.error(f"--candidates {args.candidates!r}: whole numbers, comma-separated")
    if any(x < 1 for x in ks):
        parser.error("--candidates must each be >= 1")
    files, voice, temperature = copy_common.load(parser, args)
    cfg = voice.config.features
    try:
        score = FrameScore(cfg, args.score_window)
        check_max_gain_db(args.postfilter_db)
    except ValueError as exc:
        parser.error(str(exc))
    sampler = CpuSampler(extract_weights(voice.model, temperature=temperature), threads=1)
    for k in sorted(set(ks)):  # compile and warm up outside the timed runs
        guided_copy(voice, sampler, np.zeros((2, cfg.n_mels), np.float32), k, score, torch.Generator().manual_seed(0))
    rows: dict[str, dict[str, float]] = {f"{k}{tag}": {} for k in ks for tag in ("", "_pf")}
    cpu_s = {k: 0.0 for k in ks}
    audio_s = 0.0
    for path in files:
        ref = pcm_to_float(copy_common.read_clip(path, cfg, args.max_seconds))
        mel = log_mel(ref, cfg)
        audio_s += ref.shape[0] / cfg.sample_rate
        for k in ks:
            gen = torch.Generator().manual_seed(args.seed)
            t0 = time.process_time()
            out = pcm_to_float(guided_copy(voice, sampler, mel, k, score, gen))
            cpu_s[k] += time.process_time() - t0
            copy_common.add_scores(rows[f"{k}"], ref, mel, out, cfg, 1 / len(files))
            copy_common.add_scores(rows[f"{k}_pf"], ref, mel, envelope_postfilter(out, mel, cfg, args.postfilter_db),
                                   cfg, 1 / len(files))
        print(f"{path}: " + ", ".join(f"{key} PESQ {r['pesq_wb']:.2f}" for key, r in rows.items()) + " (running sums)",
              file=sys.stderr, flush=True)
    print(json.dumps({"voice": voice.name, "step": voice.card.get("training", {}).get("steps"),
                      "temperature": temperature, "seed": args.seed, "score_window": args.score_window,
                      "postfilter_db": args.postfilter_db, "files": [str(f) for f in files],
                      "seconds": args.max_seconds,
                      "candidates": {key: {m: round(v, 3) for m, v in r.items()} for key, r in rows.items()},
                      "rtf_cpu": {str(k): round(cpu_s[k] / audio_s, 3) for k in ks}}))


if __name__ == "__main__":
    main()
