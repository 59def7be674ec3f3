"""Probe: pYIN voicing and pitch of the network output (mean_probe.py 0), post-filtered, and Griffin-Lim,
against pYIN on the originals. Needs `pip install librosa`."""
import sys, json, numpy as np, librosa
sys.path.insert(0, 'benchmarks')
from models.voices import load_voice
from models.audio import pcm_to_float
from models.features import log_mel
from models.postfilter import envelope_postfilter
from models.quality import find_audio, spread
from copy_common import read_clip
sys.path.insert(0, 'benchmarks'); from bench_postfilter import griffin_lim
cfg = load_voice('default').config.features
files = spread(find_audio(['../shared/real-speech/vctk_autovc', '../shared/real-speech/librispeech_resemblyzer']), 10)
A = np.load('/tmp/mean_probe_s0.npy')  # (2, B, n): sample, mean
sr = 24000
def f0(x):
    f, v, p = librosa.pyin(x.astype(np.float32), fmin=60, fmax=400, sr=sr, frame_length=2048, hop_length=300)
    return f, v
tot = {}
for i, p in enumerate(files):
    ref = pcm_to_float(read_clip(p, cfg, 4.0)).astype(np.float64)
    mel = log_mel(ref, cfg)
    n = ref.shape[0]
    outs = {'sample': A[0, i, :mel.shape[0]*300], 'gl': griffin_lim(mel, cfg, mel.shape[0]*300, 32)}
    outs['sample_pf20'] = envelope_postfilter(outs['sample'], mel, cfg, 20.0)
    fr, vr = f0(ref)
    for k, y in outs.items():
        fy, vy = f0(y[:n])
        m = min(len(fr), len(fy)); both = vr[:m] & vy[:m]
        cents = 1200*np.abs(np.log2(fy[:m][both]/fr[:m][both]))
        d = tot.setdefault(k, [])
        d.append((both.sum()/max(vr[:m].sum(),1), float(np.median(cents)) if both.any() else np.nan, float((cents>50).mean()) if both.any() else np.nan, (vy[:m]&~vr[:m]).sum()/m))
for k, d in tot.items():
    d = np.array(d); print(k, 'voiced overlap %.2f  median cents err %.0f  frac>50c %.2f  spurious voicing %.2f' % tuple(np.nanmean(d, 0)))
