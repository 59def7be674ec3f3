"""Probe: a comb filter y[n] = x[n] + g y[n - P(n)] at the tracker's pitch (models.pitch), on the
network's output with and without pitch-synchronous noise, before the envelope post-filter (20 dB).
The 10 recordings of docs/quality.md section 5, 4 s each, T = 0.6.
usage (from the repository root): python docs/runs/pitch_sync/probes/comb_tracker.py SEED G[,G...]"""
import json
import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from copy_common import read_clip  # noqa: E402

from models.audio import pcm_to_float  # noqa: E402
from models.features import log_mel  # noqa: E402
from models.pitch import MelPitchTracker  # noqa: E402
from models.postfilter import envelope_postfilter  # noqa: E402
from models.quality import find_audio, pesq_wb, spread, stoi  # noqa: E402
from models.vocoder import cpu_vocoder  # noqa: E402
from models.voices import load_voice  # noqa: E402


def comb(x: np.ndarray, periods: np.ndarray, hop: int, g: float) -> np.ndarray:
    """IIR comb at the per-frame periods (0: unvoiced, no comb), the delay interpolated linearly."""
    n = x.shape[0]
    frames = np.arange(periods.shape[0]) * hop
    voiced = periods > 0
    delay = np.interp(np.arange(n), frames, np.where(voiced, periods, 100.0))
    gain = np.interp(np.arange(n), frames, np.where(voiced, g, 0.0))
    y = np.zeros(n)
    for t in range(n):
        d = t - delay[t]
        i = int(np.floor(d))
        prev = 0.0 if i < 0 else (1 - (d - i)) * y[i] + (d - i) * y[i + 1]
        y[t] = x[t] + gain[t] * prev
    return y


torch.set_num_threads(1)
seed, gains = int(sys.argv[1]), [float(g) for g in sys.argv[2].split(",")]
voice = load_voice("default")
cfg = voice.config.features
tracker = MelPitchTracker(cfg)
files = spread(find_audio(["../shared/real-speech/vctk_autovc", "../shared/real-speech/librispeech_resemblyzer"]), 10)
rows: dict[str, list[tuple[float, float]]] = {}
for path in files:
    ref = pcm_to_float(read_clip(path, cfg, 4.0)).astype(np.float64)
    mel = log_mel(ref, cfg)
    periods = tracker.periods(mel)
    for ps in (False, True):
        raw = pcm_to_float(cpu_vocoder(voice.model, voice.config, temperature=0.6, pitch_sync=ps).vocode(mel, seed=seed))
        for g in gains:
            y = comb(raw.astype(np.float64), periods, cfg.hop_length, g) if g else raw.astype(np.float64)
            out = envelope_postfilter(y, mel, cfg, 20.0)[: ref.shape[0]].astype(np.float32)
            rows.setdefault(f"pitch_sync={ps} g={g}", []).append((pesq_wb(ref, out, cfg.sample_rate),
                                                                    stoi(ref, out, cfg.sample_rate)))
    print(path.name, {k: np.round(v[-1], 3).tolist() for k, v in rows.items()}, file=sys.stderr, flush=True)
print(json.dumps({"seed": seed, "pesq_stoi": {k: np.round(np.mean(v, 0), 3).tolist() for k, v in rows.items()}}))
