"""Probe: the pitch post-filter's gain above 0.8 (docs/quality.md section 17), on RECORDINGS:
"tuned" = the 10 recordings of section 5 (the tuning set), "heldout" = the 20 of
docs/runs/pitch_sync/probes/heldout_check.py. As served otherwise (T = 0.6, pitch-synchronous noise
on) with the envelope post-filter at 30 and 40 dB; seed SEED. One JSON line per setting, paired
with the served setting (comb 0.8, 30 dB).
usage (from the repository root): PYTHONPATH=docs/runs/comb_gain python docs/runs/comb_gain/sweep.py tuned|heldout SEED"""
import json
import sys

import numpy as np
from served_probe import cfg, draws, recordings

from models.comb import comb_reference
from models.postfilter import envelope_postfilter
from models.quality import pesq_wb, stoi

which, seed = sys.argv[1], int(sys.argv[2])
files = recordings(which)
configs = [(db, g) for db in (30.0, 40.0) for g in (0.8, 0.85, 0.9, 0.95)]
rows: dict[str, list[tuple[float, float]]] = {}
for path in files:
    ref, mel, raw, periods = draws(path, seed)
    for db, g in configs:
        y = comb_reference(raw, periods, cfg.hop_length, g)
        out = envelope_postfilter(y, mel, cfg, db)[: ref.shape[0]].astype(np.float32)
        rows.setdefault(f"db={db:g} comb={g}", []).append((pesq_wb(ref, out, cfg.sample_rate), stoi(ref, out, cfg.sample_rate)))
    print(path.name, file=sys.stderr, flush=True)
base = np.array(rows["db=30 comb=0.8"])
for k, v in rows.items():
    d = np.array(v)[:, 0] - base[:, 0]
    print(json.dumps({"set": which, "seed": seed, "setting": k, "pesq_wb": round(float(np.mean(v, 0)[0]), 3),
                      "stoi": round(float(np.mean(v, 0)[1]), 3), "pesq_diff": round(float(d.mean()), 3),
                      "pesq_diff_se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 3), "better_at": int((d > 0).sum())}))
