"""Probe: the energy below 100 Hz of the served voice's output, before and after the envelope
post-filter removed what lies below the lowest mel band (docs/quality.md section 17). Section 5's
10 recordings, 4 s each, vocoded once as served (the bundled voice's card: T = 0.6,
pitch-synchronous noise, comb 0.8, envelope 30 dB), seed SEED; the same draws post-filtered the
old way (bins under fmin took the lowest band's gain) and the new way. Per recording and band:
the band's share of the signal's whole energy (dB), for the original, the network's raw output,
and the two post-filtered ones; then PESQ-WB and STOI of both.
usage (from the repository root): PYTHONPATH=docs/runs/comb_gain python docs/runs/low_cut/bands.py SEED"""
import json
import sys

import numpy as np
import scipy.sparse
from served_probe import cfg, draws, recordings

import models.postfilter as pf
from models.comb import comb_reference
from models.quality import pesq_wb, stoi

seed = int(sys.argv[1])
sr = cfg.sample_rate
edges = [0, 10, 20, 30, 40, 50, 60, 80, 100]

new = pf._Analysis(cfg, 30.0)
old = pf._Analysis(cfg, 30.0)
covered = np.flatnonzero(old.fb.sum(axis=0) > 0)
old.spread[: covered[0]] = old.spread[covered[0]]  # the rule before: the nearest band's gain
old._spread_sparse = scipy.sparse.csr_matrix(old.spread)


def post(y: np.ndarray, mel: np.ndarray, an: pf._Analysis) -> np.ndarray:
    pf._analysis.cache_clear()
    saved = pf._analysis
    pf._analysis = lambda c, d: an  # type: ignore[assignment]
    try:
        return pf.envelope_postfilter(y, mel, cfg, 30.0)
    finally:
        pf._analysis = saved


def shares(x: np.ndarray) -> list[float]:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.shape[0], 1.0 / sr)
    return [round(float(10 * np.log10(spec[(f >= a) & (f < b)].sum() / spec.sum())), 1) for a, b in zip(edges[:-1], edges[1:])]


scores: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
for path in recordings("tuned"):
    ref, mel, raw, periods = draws(path, seed)
    y = comb_reference(raw, periods, cfg.hop_length, 0.8)
    outs = {"before": post(y, mel, old)[: ref.shape[0]], "after": post(y, mel, new)[: ref.shape[0]]}
    row = {"file": path.name, "bands_hz": edges, "original": shares(ref), "raw": shares(raw[: ref.shape[0]])}
    for k, out in outs.items():
        row[k] = shares(out)
        row[f"{k}_peak"] = round(float(np.abs(out).max()), 3)
        scores[k].append((pesq_wb(ref, out.astype(np.float32), sr), stoi(ref, out.astype(np.float32), sr)))
    print(json.dumps(row), flush=True)
d = np.array(scores["after"])[:, 0] - np.array(scores["before"])[:, 0]
print(json.dumps({"seed": seed, **{k: {"pesq_wb": round(float(np.mean(v, 0)[0]), 3), "stoi": round(float(np.mean(v, 0)[1]), 3)}
                                   for k, v in scores.items()},
                  "pesq_diff": round(float(d.mean()), 3), "pesq_diff_se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 3)}))
