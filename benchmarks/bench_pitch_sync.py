"""What pitch-synchronous sampling noise and the pitch post-filter cost, per audio second.

For each recording of ``--audio`` (the first ``--max-seconds``, at the voice's rate, quantised to
16 bits) the log-mel
frames are computed once; then, ``--repeats`` times each, the best time of:

- ``tracker``: :meth:`models.pitch.MelPitchTracker.periods` over the whole utterance (the engine
  runs it once per appended chunk, in its conditioning thread);
- ``uniforms_plain``: :class:`~models.samplers.base.UniformSource` draws of the whole utterance in
  blocks of ``--block`` samples (what every stream draws);
- ``uniforms_pitch_sync``: :class:`~models.samplers.pitch_sync.PitchSyncUniforms` draws of the same;
- ``comb``: :class:`~models.comb.StreamingComb` at gain ``--comb-gain`` over the same number of
  samples (white noise standing in for the sampler's output), in the same blocks.

Both are reported in CPU milliseconds per second of audio, beside the voiced fraction of the
frames. The compiled sampler itself takes about 210 ms per audio second on one core (docs/benchmarks.md),
so these are to be read against that. One JSON line last.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import copy_common
import numpy as np

from models.audio import pcm_to_float
from models.comb import StreamingComb, check_comb_gain
from models.features import log_mel
from models.pitch import MelPitchTracker
from models.samplers.base import UniformSource
from models.samplers.pitch_sync import PitchSyncUniforms


def best_of(repeats: int, fn: object) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    copy_common.add_arguments(parser)  # --seed and --temperature are not used here
    parser.add_argument("--block", type=int, default=2400, help="samples per draw (the engine's block)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the best is kept")
    parser.add_argument("--comb-gain", type=float, default=0.8, help="gain of the timed pitch post-filter")
    args = parser.parse_args()
    if args.block < 1 or args.repeats < 1:
        parser.error("--block and --repeats must be >= 1")
    try:
        check_comb_gain(args.comb_gain)
    except ValueError as exc:
        parser.error(str(exc))
    files, voice, _ = copy_common.load(parser, args)
    cfg = voice.config.features
    tracker = MelPitchTracker(cfg)
    totals = {"tracker": 0.0, "uniforms_plain": 0.0, "uniforms_pitch_sync": 0.0, "comb": 0.0}
    seconds = voiced = frames = 0.0
    for path in files:
        mel = log_mel(pcm_to_float(copy_common.read_clip(path, cfg, args.max_seconds)), cfg)
        n = mel.shape[0] * cfg.hop_length
        periods = tracker.periods(mel)

        def draws(make: object, n: int = n, periods: np.ndarray = periods) -> None:
            src = make()  # type: ignore[operator]
            if isinstance(src, PitchSyncUniforms):
                src.add_periods(periods)
            for start in range(0, n, args.block):
                src.draw(min(args.block, n - start))

        totals["tracker"] += best_of(args.repeats, lambda mel=mel: tracker.periods(mel))
        totals["uniforms_plain"] += best_of(args.repeats, lambda: draws(lambda: UniformSource(0)))
        totals["uniforms_pitch_sync"] += best_of(
            args.repeats, lambda: draws(lambda: PitchSyncUniforms(0, cfg.hop_length, tracker.max_period)))
        noise = 0.1 * np.random.default_rng(0).standard_normal(n)

        def comb_blocks(n: int = n, periods: np.ndarray = periods, noise: np.ndarray = noise) -> None:
            comb = StreamingComb(cfg.hop_length, args.comb_gain, tracker.max_period)
            comb.add_periods(periods)
            for start in range(0, n, args.block):
                comb.push(noise[start : start + args.block])

        totals["comb"] += best_of(args.repeats, comb_blocks)
        seconds += n / cfg.sample_rate
        voiced += float((periods > 0).sum())
        frames += mel.shape[0]
        print(f"{path}: {n / cfg.sample_rate:.1f} s, {100 * (periods > 0).mean():.0f}% voiced", file=sys.stderr)
    result = {
        "benchmark": "bench_pitch_sync",
        "machine": platform.processor() or platform.machine(),
        "utterances": len(files),
        "audio_seconds": round(seconds, 2),
        "voiced_fraction": round(voiced / max(frames, 1.0), 3),
        "block": args.block,
        "comb_gain": args.comb_gain,
        **{f"{k}_ms_per_audio_s": round(1000.0 * v / seconds, 3) for k, v in totals.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
