"""Probe: uniforms repeated one pitch period back in voiced frames, the F0 from pYIN on the original
(an oracle) or read off the log-mel by models.pitch.MelPitchTracker.

usage (from the repository root; needs `pip install librosa`, not a project dependency):
    python docs/runs/pitch_sync/probes/periodic_u.py SEED RHO[,RHO...] [pyin|mel] [VOICING_THRESHOLD]
RHO: the fraction of voiced samples whose uniforms are copied (0 = plain sampling)."""
import sys, numpy as np, librosa, torch
sys.path.insert(0, 'benchmarks')
from models.voices import load_voice
from models.weights import extract_weights
from models.samplers.cpu import CpuSampler
from models.samplers.base import SamplerState, UniformSource, conditioning_window
from models.audio import pcm_to_float
from models.features import log_mel
from models.postfilter import envelope_postfilter
from models.quality import find_audio, spread, pesq_wb, stoi
from copy_common import read_clip
torch.set_num_threads(1)
seed = int(sys.argv[1]); rhos = [float(r) for r in sys.argv[2].split(",")]; SRC = sys.argv[3] if len(sys.argv) > 3 else "pyin"; VTHR = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
from models.pitch import MelPitchTracker
voice = load_voice('default'); cfg = voice.config.features; model = voice.model.eval()
from models.pitch import PitchConfig
MP = MelPitchTracker(cfg, PitchConfig(voicing_threshold=VTHR))
sampler = CpuSampler(extract_weights(model, temperature=0.6))
files = spread(find_audio(['../shared/real-speech/vctk_autovc', '../shared/real-speech/librispeech_resemblyzer']), 10)
sr, hop = 24000, 300
def periodic(u, f0, vd, rho, rng):
    """u (n, 2): in voiced frames, u[t] = u[t - P] with probability rho."""
    u = u.copy(); n = len(u)
    P = np.interp(np.arange(n), np.arange(len(f0)) * hop, sr / np.where(vd, np.nan_to_num(f0, nan=100.0), 100.0))
    V = np.interp(np.arange(n), np.arange(len(f0)) * hop, vd.astype(float)) > 0.5
    keep = rng.random(n) < rho
    for t in range(n):
        p = int(round(P[t]))
        if V[t] and keep[t] and t - p >= 0:
            u[t] = u[t - p]
    return u
def pitch(x):
    f, v, _ = librosa.pyin(x.astype(np.float32), fmin=60, fmax=400, sr=sr, frame_length=2048, hop_length=hop)
    return f, v
res = {}
for i, p in enumerate(files):
    ref = pcm_to_float(read_clip(p, cfg, 4.0)).astype(np.float64); mel = log_mel(ref, cfg); n = len(ref)
    f0, vd = pitch(ref); f0, vd = f0[:mel.shape[0]], vd[:mel.shape[0]]
    if SRC == "mel": f0u = MP.f0(mel); vdu = f0u > 0
    else: f0u, vdu = f0, vd
    gates = model.gate_conditioning(torch.from_numpy(mel.astype(np.float32)).unsqueeze(0))[0].detach()
    total = gates.shape[0] * hop
    u0 = UniformSource(seed).draw(total).numpy()
    for rho in rhos:
        u = periodic(u0, f0u, vdu, rho, np.random.default_rng(seed)) if rho else u0
        state = SamplerState.initial(1, sampler.hidden_size); out = []; pos = 0
        while pos < total:
            m = min(2400, total - pos)
            w = conditioning_window(gates, pos, m, hop).unsqueeze(0)
            pcm, state = sampler.generate(state, w, torch.from_numpy(u[pos:pos + m]).unsqueeze(0)); pos += m
            out.append(pcm[0].numpy())
        raw = pcm_to_float(np.concatenate(out).astype(np.int16)).astype(np.float64)
        fy, vy = pitch(raw[:n]); mm = min(len(vd), len(vy)); both = vd[:mm] & vy[:mm]
        pf = envelope_postfilter(raw, mel, cfg, 20.0)[:n]
        fp, vp = pitch(pf); both_pf = vd[:mm] & vp[:mm]
        row = (pesq_wb(ref, raw[:n].astype(np.float32), sr), pesq_wb(ref, pf.astype(np.float32), sr), stoi(ref, pf.astype(np.float32), sr),
               both.sum() / max(vd.sum(), 1), both_pf.sum() / max(vd.sum(), 1))
        res.setdefault(rho, []).append(row)
    print(i, {r: np.round(v[-1], 3).tolist() for r, v in res.items()}, flush=True)
print('seed', seed, 'rho: [pesq raw, pesq pf20, stoi pf20, voiced raw, voiced pf20]', {r: np.round(np.mean(v, 0), 3).tolist() for r, v in res.items()})
