"""Probe: which band holds the served voice's remaining gap to the original (docs/quality.md
section 17). Each of section 5's 10 recordings is vocoded as served (the bundled voice's card:
T = 0.6, pitch-synchronous noise, comb 0.8, envelope 30 dB), seed SEED; then the band below F Hz
(or above it) is replaced by the original's, with a linear-phase FFT split, and PESQ-WB is
measured. Griffin-Lim (32 iterations, `benchmarks/bench_postfilter.griffin_lim`) the same way.
usage (from the repository root): PYTHONPATH=docs/runs/comb_gain python docs/runs/comb_gain/band_oracle.py SEED"""
import json
import sys

import numpy as np
from served_probe import cfg, draws, recordings

sys.path.insert(0, "benchmarks")
from bench_postfilter import griffin_lim  # noqa: E402

from models.comb import comb_reference  # noqa: E402
from models.postfilter import envelope_postfilter  # noqa: E402
from models.quality import pesq_wb  # noqa: E402

seed = int(sys.argv[1])
sr = cfg.sample_rate
files = recordings("tuned")
splits = (500.0, 1000.0, 2000.0, 4000.0)


def split(x: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / sr)
    low = np.fft.irfft(np.where(freqs < f, spec, 0), n=x.shape[0])
    return low, x - low


rows: dict[str, list[float]] = {}
for path in files:
    ref, mel, raw, periods = draws(path, seed)
    y = comb_reference(raw, periods, cfg.hop_length, 0.8)
    served = envelope_postfilter(y, mel, cfg, 30.0)[: ref.shape[0]].astype(np.float64)
    outs = {"served": served, "griffin_lim": griffin_lim(mel, cfg, mel.shape[0] * cfg.hop_length, 32)[: ref.shape[0]].astype(np.float64)}
    for name, out in outs.items():
        rows.setdefault(f"{name}", []).append(pesq_wb(ref, out.astype(np.float32), sr))
        for f in splits:
            lo_o, hi_o = split(out, f)
            lo_r, hi_r = split(ref, f)
            rows.setdefault(f"{name}, original below {f:g} Hz", []).append(pesq_wb(ref, (lo_r + hi_o).astype(np.float32), sr))
            rows.setdefault(f"{name}, original above {f:g} Hz", []).append(pesq_wb(ref, (lo_o + hi_r).astype(np.float32), sr))
    print(path.name, file=sys.stderr, flush=True)
for k, v in rows.items():
    print(json.dumps({"seed": seed, "setting": k, "pesq_wb": round(float(np.mean(v)), 3)}))
