"""Probe: an IIR comb (long-term post-filter) at pYIN's F0 of the original, before the envelope
post-filter, on mean_probe.py's sampled outputs. Needs `pip install librosa`."""
import sys, numpy as np, librosa
sys.path.insert(0, 'benchmarks')
from models.voices import load_voice
from models.audio import pcm_to_float
from models.features import log_mel
from models.postfilter import envelope_postfilter
from models.quality import find_audio, spread, pesq_wb, stoi
from copy_common import read_clip
cfg = load_voice('default').config.features
files = spread(find_audio(['../shared/real-speech/vctk_autovc', '../shared/real-speech/librispeech_resemblyzer']), 10)
A = np.load('/tmp/mean_probe_s0.npy')  # written by mean_probe.py 0
sr = 24000
def comb(x, f0, voiced, g):
    """IIR comb y[n] = x[n] + g(n) y[n - P(n)], P = sr / f0 per frame (linear interp of delay)."""
    n = len(x); y = np.zeros(n)
    fr = np.arange(len(f0)) * 300
    f0f = np.where(voiced, np.nan_to_num(f0, nan=100.0), 100.0)
    P = np.interp(np.arange(n), fr, sr / f0f)
    G = np.interp(np.arange(n), fr, np.where(voiced, g, 0.0))
    for t in range(n):
        d = t - P[t]; i = int(np.floor(d)); a = d - i
        prev = (1 - a) * y[i] + a * y[i + 1] if i >= 0 else 0.0
        y[t] = x[t] + G[t] * prev
    return y
res = {}
for i, p in enumerate(files):
    ref = pcm_to_float(read_clip(p, cfg, 4.0)).astype(np.float64); mel = log_mel(ref, cfg); n = len(ref)
    raw = A[0, i, :mel.shape[0] * 300]
    f0, vd, _ = librosa.pyin(ref.astype(np.float32), fmin=60, fmax=400, sr=sr, frame_length=2048, hop_length=300)
    f0 = f0[:mel.shape[0]]; vd = vd[:mel.shape[0]]
    for g in (0.0, 0.5, 0.7, 0.85):
        y = comb(raw, f0, vd, g) if g else raw
        for order in ('comb_then_pf',):
            out = envelope_postfilter(y, mel, cfg, 20.0)[:n].astype(np.float32)
            r = res.setdefault(g, []); r.append((pesq_wb(ref, out, sr), stoi(ref, out, sr)))
    print(i, {g: np.round(v[-1], 3).tolist() for g, v in res.items()}, flush=True)
print({g: np.round(np.mean(v, 0), 3).tolist() for g, v in res.items()})
