"""Probe: how much of the network's own WER (no post-filter, T = 0.6) is the slow wander below fmin
(docs/quality.md section 17). The ten sentences through the text path with the bundled voice's
weights, seed SEED, recognised by pocketsphinx as they come out and after a 4th-order Butterworth
high-pass at the features' fmin (40 Hz), run forwards and backwards (no phase change). The same
seed draws the same samples both times. Also the share of the output's energy below fmin.
usage (from the repository root): python docs/runs/low_cut/alone_lowcut.py SEED..."""
import json
import sys

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

from models.frontend.festival import FestivalFrontend
from models.quality import PocketsphinxRecogniser, intelligibility
from models.voices import load_voice

torch.set_num_threads(1)
voice = load_voice("default")
cfg = voice.config.features
frontend = FestivalFrontend()
plain = PocketsphinxRecogniser()
sos = butter(4, cfg.fmin, "highpass", fs=cfg.sample_rate, output="sos")
below: list[float] = []


def share_below(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    return float(10 * np.log10(spec[np.fft.rfftfreq(x.shape[0], 1.0 / sr) < cfg.fmin].sum() / spec.sum()))


def low_cut(audio: np.ndarray, sr: int) -> str:
    x = audio.astype(np.float64)
    below.append(share_below(x, sr))
    return plain(sosfiltfilt(sos, x).astype(np.float32), sr)


for seed in map(int, sys.argv[1:]):
    below.clear()
    runs = {name: intelligibility(voice.model, voice.config, frontend, seed=seed, temperature=0.6, recognise=rec)
            for name, rec in (("as_sampled", plain), ("low_cut", low_cut))}
    print(json.dumps({"seed": seed, **{k: round(100 * r["wer"], 2) for k, r in runs.items()},
                      "frontend_wer": round(100 * runs["as_sampled"]["frontend_wer"], 2),
                      "share_below_fmin_db": [round(b, 1) for b in below],
                      "hypotheses": {k: [s["hypothesis"] for s in r["sentences"]] for k, r in runs.items()}}), flush=True)
