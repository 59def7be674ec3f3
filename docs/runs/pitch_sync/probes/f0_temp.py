"""Probe: how much of the original's voiced frames pYIN also finds voiced in the network's output,
alone and post-filtered, at each temperature; and PESQ-WB. Needs `pip install librosa`.

usage (from the repository root): python docs/runs/pitch_sync/probes/f0_temp.py VOICE T[,T...] [ps]\n(ps: with pitch-synchronous sampling noise)"""
import sys, json, numpy as np, librosa, torch
sys.path.insert(0, 'benchmarks')
from models.voices import load_voice
from models.vocoder import cpu_vocoder
from models.audio import pcm_to_float
from models.features import log_mel
from models.postfilter import envelope_postfilter
from models.quality import find_audio, spread, pesq_wb
from copy_common import read_clip
torch.set_num_threads(1)
ck = sys.argv[1]; temps = [float(t) for t in sys.argv[2].split(',')]; PS = len(sys.argv) > 3 and sys.argv[3] == 'ps'
voice = load_voice(ck); cfg = voice.config.features
files = spread(find_audio(['../shared/real-speech/vctk_autovc', '../shared/real-speech/librispeech_resemblyzer']), 10)
sr = 24000
def f0(x):
    f, v, p = librosa.pyin(x.astype(np.float32), fmin=60, fmax=400, sr=sr, frame_length=2048, hop_length=300)
    return f, v
refs = []
for p in files:
    ref = pcm_to_float(read_clip(p, cfg, 4.0)).astype(np.float64); mel = log_mel(ref, cfg); refs.append((ref, mel, f0(ref)))
for T in temps:
    voc = cpu_vocoder(voice.model, voice.config, temperature=T, pitch_sync=PS)
    acc = {'raw': [], 'pf20': []}
    for ref, mel, (fr, vr) in refs:
        raw = pcm_to_float(voc.vocode(mel, seed=0)).astype(np.float64)
        n = ref.shape[0]
        for k, y in (('raw', raw), ('pf20', envelope_postfilter(raw, mel, cfg, 20.0))):
            fy, vy = f0(y[:n]); m = min(len(fr), len(fy)); both = vr[:m] & vy[:m]
            acc[k].append((both.sum() / max(vr[:m].sum(), 1), pesq_wb(ref, y[:n].astype(np.float32), sr)))
    print(ck, 'T', T, 'pitch_sync' if PS else '', {k: np.round(np.mean(v, 0), 3).tolist() for k, v in acc.items()}, flush=True)
