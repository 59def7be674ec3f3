"""Probe: output the network's predictive mean (feeding back the samples) instead of the samples.

usage (from the repository root): python docs/runs/pitch_sync/probes/mean_probe.py SEED
Runs the reference cell over the 10 recordings of docs/quality.md section 5 (4 s each) as 10
streams, at T = 0.6; saves the sampled and mean outputs to /tmp/mean_probe_sSEED.npy."""
import sys, json, time
import numpy as np, torch
sys.path.insert(0, 'benchmarks')
from models.voices import load_voice
from models.weights import extract_weights
from models.samplers.reference import WaveRNNCell, interpolate_cond
from models.samplers.base import SamplerState, UniformSource, conditioning_window, sample_classes
from models.features import log_mel
from models.audio import pcm_to_float
from models.postfilter import envelope_postfilter
from models.quality import find_audio, spread, pesq_wb, stoi, log_mel_distance
from copy_common import read_clip
torch.set_num_threads(1)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
T = 0.6
voice = load_voice('default'); cfg = voice.config.features; model = voice.model.eval()
cell = WaveRNNCell(extract_weights(model, temperature=T))
files = spread(find_audio(['../shared/real-speech/vctk_autovc', '../shared/real-speech/librispeech_resemblyzer']), 10)
refs = [pcm_to_float(read_clip(p, cfg, 4.0)).astype(np.float64) for p in files]
mels = [log_mel(r, cfg) for r in refs]
hop = cfg.hop_length
nfr = max(m.shape[0] for m in mels)
B = len(files)
gates = torch.zeros(B, nfr + 2, cell.R.shape[0])
with torch.no_grad():
    for i, m in enumerate(mels):
        g = model.gate_conditioning(torch.from_numpy(m.astype(np.float32)).unsqueeze(0))[0]
        gates[i, : g.shape[0]] = g
n = nfr * hop
u = torch.stack([UniformSource(seed).draw(n) for _ in range(B)])  # (B, n, 2)
st = SamplerState.initial(B, cell.hidden_size)
h, c, f = st.h, st.coarse, st.fine
k = torch.arange(256, dtype=torch.float32)
out = {name: torch.zeros(B, n) for name in ['sample', 'fine_mean', 'mean', 'mean_T1']}
t0 = time.time()
with torch.no_grad():
    for t in range(n):
        g = interpolate_cond(gates, torch.full((B,), t), hop)
        h, c, f, lc, lf = cell(h, c, f, g, u[:, t])
        pc, pf = torch.softmax(lc, -1), torch.softmax(lf, -1)
        ec, ef = pc @ k, pf @ k
        ec1, ef1 = torch.softmax(lc * T, -1) @ k, torch.softmax(lf * T, -1) @ k
        out['sample'][:, t] = c * 256 + f
        out['fine_mean'][:, t] = c * 256 + ef
        out['mean'][:, t] = ec * 256 + ef  # fine mean given the sampled coarse
        out['mean_T1'][:, t] = ec1 * 256 + ef1
print('sampled', n, 'steps x', B, 'in', round(time.time() - t0), 's', file=sys.stderr)
audio = {k_: ((v - 32768.0) / 32768.0).numpy().astype(np.float64) for k_, v in out.items()}
for a in (0.25, 0.5):
    audio[f'blend{a}'] = audio['mean'] + a * (audio['sample'] - audio['mean'])
res = {}
for name, x in audio.items():
    for pf_db in (None, 20.0):
        rows = []
        for i, ref in enumerate(refs):
            y = x[i, : mels[i].shape[0] * hop]
            if pf_db:
                y = envelope_postfilter(y, mels[i], cfg, pf_db)
            y = y[: ref.shape[0]].astype(np.float32)
            rows.append((pesq_wb(ref, y, cfg.sample_rate), stoi(ref, y, cfg.sample_rate), log_mel_distance(ref, y, cfg)))
        key = f'{name}{"_pf20" if pf_db else ""}'
        res[key] = [round(float(v), 3) for v in np.mean(rows, 0)]
        print(key, res[key], file=sys.stderr, flush=True)
np.save(f'/tmp/mean_probe_s{seed}.npy', np.stack([audio[k_] for k_ in ('sample', 'mean')]))
print(json.dumps({'seed': seed, 'files': [str(p) for p in files], 'pesq_stoi_lmd': res}))
