"""Probe: Griffin-Lim (32 iterations, no network) on heldout_check.py's 20 recordings, for comparison.
usage (from the repository root): python docs/runs/pitch_sync/probes/heldout_gl.py"""
import json
import sys

import numpy as np

sys.path.insert(0, "benchmarks")
from bench_postfilter import griffin_lim  # noqa: E402
from copy_common import read_clip  # noqa: E402

from models.audio import pcm_to_float  # noqa: E402
from models.features import log_mel  # noqa: E402
from models.quality import find_audio, pesq_wb, spread, stoi  # noqa: E402
from models.voices import load_voice  # noqa: E402

cfg = load_voice("default").config.features
sets = ["../shared/real-speech/vctk_autovc", "../shared/real-speech/librispeech_resemblyzer"]
tuned = set(spread(find_audio(sets), 10))
files = spread([f for f in find_audio(sets) if f not in tuned], 20)
rows = []
for path in files:
    ref = pcm_to_float(read_clip(path, cfg, 4.0)).astype(np.float64)
    mel = log_mel(ref, cfg)
    out = griffin_lim(mel, cfg, mel.shape[0] * cfg.hop_length, 32)[: ref.shape[0]].astype(np.float32)
    rows.append((pesq_wb(ref, out, cfg.sample_rate), stoi(ref, out, cfg.sample_rate)))
print(json.dumps({"griffin_lim": {"pesq_wb": round(float(np.mean(rows, 0)[0]), 3), "stoi": round(float(np.mean(rows, 0)[1]), 3)},
                  "recordings": [f.name for f in files]}))
