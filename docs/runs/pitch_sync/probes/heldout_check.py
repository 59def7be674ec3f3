"""Probe: the choices of docs/quality.md section 16 on recordings none of them was tuned on: 20 of
the 140 in vctk_autovc and librispeech_resemblyzer, spread over those left after removing the 10
of section 5, 4 s each, T = 0.6, seed SEED. For pitch-synchronous noise off and on, the envelope
post-filter at 20, 30 and 40 dB, and the pitch post-filter (models/comb.py) at gain G before it.
usage (from the repository root): python docs/runs/pitch_sync/probes/heldout_check.py SEED"""
import json
import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from copy_common import read_clip  # noqa: E402

from models.audio import pcm_to_float  # noqa: E402
from models.comb import comb_reference  # noqa: E402
from models.features import log_mel  # noqa: E402
from models.pitch import MelPitchTracker  # noqa: E402
from models.postfilter import envelope_postfilter  # noqa: E402
from models.quality import find_audio, pesq_wb, spread, stoi  # noqa: E402
from models.vocoder import cpu_vocoder  # noqa: E402
from models.voices import load_voice  # noqa: E402

torch.set_num_threads(1)
seed = int(sys.argv[1])
voice = load_voice("default")
cfg = voice.config.features
tracker = MelPitchTracker(cfg)
sets = ["../shared/real-speech/vctk_autovc", "../shared/real-speech/librispeech_resemblyzer"]
tuned = set(spread(find_audio(sets), 10))
files = spread([f for f in find_audio(sets) if f not in tuned], 20)
configs = [(False, 20.0, 0.0), (True, 20.0, 0.0), (True, 30.0, 0.0), (True, 40.0, 0.0), (True, 20.0, 0.5),
           (True, 20.0, 0.8), (True, 30.0, 0.5), (False, 20.0, 0.8), (True, 30.0, 0.8)]
rows: dict[str, list[tuple[float, float]]] = {}
for path in files:
    ref = pcm_to_float(read_clip(path, cfg, 4.0)).astype(np.float64)
    mel = log_mel(ref, cfg)
    periods = tracker.periods(mel)
    raw = {ps: pcm_to_float(cpu_vocoder(voice.model, voice.config, temperature=0.6, pitch_sync=ps).vocode(mel, seed=seed))
           .astype(np.float64) for ps in (False, True)}
    for ps, db, g in configs:
        y = comb_reference(raw[ps], periods, cfg.hop_length, g) if g else raw[ps]
        out = envelope_postfilter(y, mel, cfg, db)[: ref.shape[0]].astype(np.float32)
        rows.setdefault(f"pitch_sync={ps} db={db:g} comb={g}", []).append(
            (pesq_wb(ref, out, cfg.sample_rate), stoi(ref, out, cfg.sample_rate)))
    print(path.name, file=sys.stderr, flush=True)
base = np.array(rows["pitch_sync=False db=20 comb=0.0"])
out = {}
for k, v in rows.items():
    d = np.array(v)[:, 0] - base[:, 0]
    out[k] = {"pesq_wb": round(float(np.mean(v, 0)[0]), 3), "stoi": round(float(np.mean(v, 0)[1]), 3),
              "pesq_diff": round(float(d.mean()), 3), "pesq_diff_se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 3),
              "better_at": int((d > 0).sum())}
print(json.dumps({"seed": seed, "recordings": [f.name for f in files], "rows": out}))
