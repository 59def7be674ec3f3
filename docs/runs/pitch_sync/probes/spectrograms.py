"""Spectrograms of one recording (the 4th of the 10 of docs/quality.md section 5, 4 s): the original,
the bundled voice as served without and with pitch-synchronous noise (T = 0.6, post-filter 20 dB,
seed 0), and Griffin-Lim from the same features. usage (from the repository root):
python docs/runs/pitch_sync/probes/spectrograms.py OUT.png"""
import sys

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, "benchmarks")
from bench_postfilter import griffin_lim  # noqa: E402
from copy_common import read_clip  # noqa: E402

from models.audio import pcm_to_float  # noqa: E402
from models.features import log_mel  # noqa: E402
from models.quality import find_audio, spread  # noqa: E402
from models.vocoder import cpu_vocoder  # noqa: E402
from models.voices import load_voice  # noqa: E402

torch.set_num_threads(1)
voice = load_voice("default")
cfg = voice.config.features
path = spread(find_audio(["../shared/real-speech/vctk_autovc", "../shared/real-speech/librispeech_resemblyzer"]), 10)[3]
ref = pcm_to_float(read_clip(path, cfg, 4.0)).astype(np.float64)
mel = log_mel(ref, cfg)
n = ref.shape[0]
outs = [("original: " + path.name, ref)]
for ps in (False, True):
    voc = cpu_vocoder(voice.model, voice.config, temperature=0.6, postfilter_db=20.0, pitch_sync=ps)
    outs.append((f"served, pitch-synchronous noise {'on' if ps else 'off'}", pcm_to_float(voc.vocode(mel, seed=0))[:n]))
outs.append(("Griffin-Lim, 32 iterations", griffin_lim(mel, cfg, mel.shape[0] * cfg.hop_length, 32)[:n]))
fig, axes = plt.subplots(len(outs), 1, figsize=(10, 10), sharex=True)
win = np.hanning(1024)
for ax, (name, y) in zip(axes, outs, strict=True):
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(y, np.float64), 1024)[::120] * win
    spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T[:171] + 1e-6)  # up to 4 kHz
    ax.imshow(spec, origin="lower", aspect="auto", vmin=-60, vmax=30, extent=[0, len(y) / cfg.sample_rate, 0, 4000])
    ax.set_title(name, fontsize=9)
    ax.set_ylabel("Hz")
axes[-1].set_xlabel("s")
plt.tight_layout()
plt.savefig(sys.argv[1], dpi=50)
