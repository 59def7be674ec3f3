"""Probe: models.pitch.MelPitchTracker against pYIN on the originals (the 10 recordings of
docs/quality.md section 5, 4 s each). Needs `pip install librosa`."""
import sys, numpy as np, librosa, time
sys.path.insert(0, 'benchmarks')
from models.pitch import MelPitchTracker, PitchConfig
from models.voices import load_voice
from models.audio import pcm_to_float
from models.features import log_mel
from models.quality import find_audio, spread
from copy_common import read_clip
cfg = load_voice('default').config.features
files = spread(find_audio(['../shared/real-speech/vctk_autovc', '../shared/real-speech/librispeech_resemblyzer']), 10)
refs = []
for p in files:
    ref = pcm_to_float(read_clip(p, cfg, 4.0)).astype(np.float64); mel = log_mel(ref, cfg)
    f, v, _ = librosa.pyin(ref.astype(np.float32), fmin=60, fmax=400, sr=24000, frame_length=2048, hop_length=300)
    refs.append((mel, f[:mel.shape[0]], v[:mel.shape[0]]))
for kw in [dict(quiet_db=1000.0), dict(), dict(quiet_db=20.0), dict(voicing_threshold=0.4)]:
    tr = MelPitchTracker(cfg, PitchConfig(**kw)); acc = []; t0 = time.time()
    for mel, f, v in refs:
        ef = tr.f0(mel); ev = ef > 0; both = v & ev
        cents = 1200 * np.abs(np.log2(ef[both] / f[both]))
        acc.append((both.sum() / max(v.sum(), 1), (ev & ~v).sum() / max((~v).sum(), 1), np.mean(cents < 50) if both.any() else 0))
    print(kw, 'recall %.2f false-voiced %.2f within50c %.2f' % tuple(np.mean(acc, 0)), 'time %.3f s for %d frames' % (time.time() - t0, sum(r[0].shape[0] for r in refs)))
