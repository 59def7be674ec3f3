"""Probe: the pitch tracker's voicing threshold as served (docs/quality.md section 17). The
threshold (models.pitch.PitchConfig.voicing_threshold, 0.5, chosen against pYIN's voicing) decides
which frames get pitch-synchronous noise and the comb. For each threshold each recording of SET
("tuned": section 5's 10, "heldout": section 16's 20) is vocoded as served (T = 0.6, the noise,
comb 0.8, envelope 30 dB), seed SEED, and paired with 0.5. One JSON line per threshold.
usage (from the repository root): PYTHONPATH=docs/runs/comb_gain python docs/runs/voicing/sweep.py SET SEED [T,...]"""
import json
import sys

import numpy as np
from served_probe import cfg, draws, recordings

from models.comb import comb_reference
from models.pitch import PitchConfig
from models.postfilter import envelope_postfilter
from models.quality import pesq_wb, stoi

which, seed = sys.argv[1], int(sys.argv[2])
thresholds = [float(t) for t in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0.3, 0.4, 0.5, 0.6]
rows: dict[float, list[tuple[float, float, float]]] = {}
for path in recordings(which):
    for t in thresholds:
        ref, mel, raw, periods = draws(path, seed, PitchConfig(voicing_threshold=t))
        out = envelope_postfilter(comb_reference(raw, periods, cfg.hop_length, 0.8), mel, cfg, 30.0)[: ref.shape[0]]
        out = out.astype(np.float32)
        rows.setdefault(t, []).append((pesq_wb(ref, out, cfg.sample_rate), stoi(ref, out, cfg.sample_rate),
                                       float((periods > 0).mean())))
    print(path.name, file=sys.stderr, flush=True)
base = np.array(rows[0.5])
for t, v in rows.items():
    a = np.array(v)
    d = a[:, 0] - base[:, 0]
    print(json.dumps({"set": which, "seed": seed, "voicing_threshold": t, "pesq_wb": round(float(a[:, 0].mean()), 3),
                      "stoi": round(float(a[:, 1].mean()), 3), "voiced_frames": round(float(a[:, 2].mean()), 3),
                      "pesq_diff": round(float(d.mean()), 3), "pesq_diff_se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 3),
                      "better_at": int((d > 0).sum())}))
