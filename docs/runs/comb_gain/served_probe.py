"""Shared by this session's probes (docs/quality.md section 17): the bundled voice, its recordings
and its draws as served (T = 0.6, pitch-synchronous noise), before any post-filter."""
import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from copy_common import read_clip  # noqa: E402

from models.audio import pcm_to_float  # noqa: E402
from models.features import log_mel  # noqa: E402
from models.pitch import MelPitchTracker, PitchConfig  # noqa: E402
from models.quality import find_audio, spread  # noqa: E402
from models.vocoder import cpu_vocoder  # noqa: E402
from models.voices import load_voice  # noqa: E402

torch.set_num_threads(1)
voice = load_voice("default")
cfg = voice.config.features
tracker = MelPitchTracker(cfg)
SETS = ["../shared/real-speech/vctk_autovc", "../shared/real-speech/librispeech_resemblyzer"]


def recordings(which: str) -> list:
    """"tuned": docs/quality.md section 5's 10; "heldout": section 16's 20 (none of those 10)."""
    tuned = spread(find_audio(SETS), 10)
    return tuned if which == "tuned" else spread([f for f in find_audio(SETS) if f not in set(tuned)], 20)


def draws(path, seed: int, pitch: PitchConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(original, its log-mel, the network's output as float64, the pitch periods) of 4 s of ``path``;
    ``pitch``: the tracker's settings for both the noise and the periods (None: the defaults)."""
    ref = pcm_to_float(read_clip(path, cfg, 4.0)).astype(np.float64)
    mel = log_mel(ref, cfg)
    voc = cpu_vocoder(voice.model, voice.config, temperature=0.6, pitch_sync=True)
    track = tracker if pitch is None else MelPitchTracker(cfg, pitch)
    voc.pitch = track
    raw = pcm_to_float(voc.vocode(mel, seed=seed))
    return ref, mel, raw.astype(np.float64), track.periods(mel)
