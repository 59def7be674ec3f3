"""The ``wavernn-tts`` command line.

Subcommands:
    features IN.wav -o MEL.npy           log-mel features of a recording (any input rate)
    vocode MEL.npy -o OUT.wav            features -> 24 kHz 16-bit mono wav
    export -o DIR                        ONNX export of the conditioning network and the step cell
    serve [--host H] [--port P]          the HTTP service (settings from TTS_* variables)
    say "TEXT" -o OUT.wav                text -> Festival frontend -> log-mel -> WaveRNN -> wav
    train --config C --data D --out RUN  train a voice (see docs/training.md)
    eval --checkpoint CKPT --data D      held-out NLL, copy-synthesis and WER (docs/quality.md)
    pack-voice --checkpoint CKPT -o DIR  training checkpoint -> bundled voice (weights + card)
    pack-shards --data D... --out DIR    prepared corpora -> compressed shards for a lent GPU (docs/training.md)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.voices import Voice

log = logging.getLogger("wavernn_tts")


def _cmd_features(args: argparse.Namespace) -> int:
    from models.features import features_from_file
    from models.voices import load_voice

    voice = load_voice(args.voice)
    mel = features_from_file(args.input, voice.config.features)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, mel)
    print(f"wrote {out}: {mel.shape[0]} frames x {mel.shape[1]} mels "
          f"({mel.shape[0] * voice.config.features.hop_length / voice.config.features.sample_rate:.2f} s)")
    return 0


def _load_npy(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"feature file {p} does not exist")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{p} is not a readable .npy array ({exc}); create it with `wavernn-tts features`") from exc


def _cmd_vocode(args: argparse.Namespace) -> int:
    from models.voices import load_voice

    voice = load_voice(args.checkpoint or args.voice)
    _vocode_to_wav(voice, _load_npy(args.input), args)
    return 0


def _vocode_to_wav(voice: Voice, mel: np.ndarray, args: argparse.Namespace) -> None:
    """Vocode ``mel`` with ``voice`` into ``args.output``, with progress on stderr."""
    from models.audio import write_wav
    from models.vocoder import cpu_vocoder

    if not voice.trained:
        log.warning("voice %r is untrained: the output is noise of the right length", voice.name)
    temperature = voice.temperature if args.temperature is None else args.temperature
    postfilter_db = voice.postfilter_db if args.postfilter_db is None else args.postfilter_db
    pitch_sync = voice.pitch_sync if args.pitch_sync is None else args.pitch_sync == "on"
    comb_gain = voice.comb_gain if args.comb_gain is None else args.comb_gain
    if voice.config.subscale is not None:
        raise ValueError(f"voice {voice.name!r} is a Subscale WaveRNN: `say` and `vocode` run plain voices; "
                         "serve it (`wavernn-tts serve`) and POST to /v1/audio/speech or /v1/vocode")
    # the compiled CPU sampler (the server's CPU path), not the per-sample torch loop
    vocoder = cpu_vocoder(voice.model, voice.config, temperature=temperature, postfilter_db=postfilter_db,
                          pitch_sync=pitch_sync, comb_gain=comb_gain)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 1.0 or done == total:
            last[0] = now
            rate = done / max(now - t0, 1e-9)
            print(f"\r{done}/{total} samples ({100 * done / max(total, 1):.0f}%, {rate:,.0f} samples/s)",
                  end="", file=sys.stderr, flush=True)

    pcm = vocoder.vocode(mel, seed=args.seed, block_samples=args.block, progress=progress)
    print(file=sys.stderr)
    write_wav(args.output, pcm, voice.config.features.sample_rate)
    secs = pcm.shape[0] / voice.config.features.sample_rate
    print(f"wrote {args.output}: {pcm.shape[0]} samples ({secs:.2f} s at "
          f"{voice.config.features.sample_rate} Hz), {time.perf_counter() - t0:.1f} s to generate")


def _cmd_say(args: argparse.Namespace) -> int:
    from models.frontend import FestivalFrontend, FrontendUnavailable, features_for
    from models.voices import load_voice

    voice = load_voice(args.checkpoint or args.voice)
    frontend = FestivalFrontend()
    if not frontend.available():
        raise ValueError("the text frontend needs Festival: apt-get install festival festvox-us-slt-hts "
                         "(or `make install-system`)")
    try:
        mels = [features_for(frontend.render_text(s, speed=args.speed), voice.config.features)
                for s in frontend.split_sentences(args.text)]
    except FrontendUnavailable as exc:
        raise ValueError(str(exc)) from exc
    finally:
        frontend.close()
    if not mels:
        raise ValueError("the text holds nothing to say")
    _vocode_to_wav(voice, np.concatenate(mels), args)
    return 0


def _cmd_pack_voice(args: argparse.Namespace) -> int:
    import json

    from models.voices.pack import pack_voice

    def read_json(path: str | None) -> dict | None:
        if path is None:
            return None
        try:
            return dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable JSON file: {exc}") from exc

    card = pack_voice(args.checkpoint, args.output, args.name, description=args.description,
                      reproduce=args.reproduce, quality=read_json(args.quality), speed=read_json(args.speed),
                      temperature=args.temperature, postfilter_db=args.postfilter_db,
                      pitch_sync=args.pitch_sync, comb_gain=args.comb_gain, data=args.data)
    print(f"wrote {card.parent / 'model.pt'} and {card}")
    return 0


def _cmd_pack_shards(args: argparse.Namespace) -> int:
    import json

    from models.shards import MIB, ShardInfo, pack_shards

    def report(info: ShardInfo) -> None:
        print(f"{info.file}  {info.bytes / MIB:6.2f} MiB  {info.n_train:5d} train + {info.n_valid} valid utterances  "
              f"{info.seconds / 60:6.1f} min of audio  sha256 {info.sha256[:12]}", flush=True)

    result = pack_shards(args.data, args.out, shard_mb=args.shard_mb, seed=args.seed, on_shard=report)
    print(json.dumps(result.summary()))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from models import train

    return train.run(args)


def _cmd_eval(args: argparse.Namespace) -> int:
    from models import evaluate

    return evaluate.run(args)


def _cmd_export(args: argparse.Namespace) -> int:
    from models.export import export_onnx
    from models.voices import load_voice

    voice = load_voice(args.checkpoint or args.voice)
    paths = export_onnx(voice.model, args.output, check=not args.no_check)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import math

    import uvicorn
    from pydantic import ValidationError

    from service.app import create_app
    from service.settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)  # built once here; flags override TTS_* variables
    except ValidationError as exc:
        raise ValueError(f"invalid settings (TTS_* environment or flags):\n{exc}") from exc
    if not args.verbose:
        logging.getLogger().setLevel(settings.log_level.upper())
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s) or None)
    return 0


def _add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """The options `vocode` and `say` share: which voice, and how it samples."""
    p.add_argument("--checkpoint", help="checkpoint .pt (default: the bundled voice)")
    p.add_argument("--voice", default="default", help="bundled voice name (when no --checkpoint)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same audio)")
    p.add_argument("--block", type=int, default=2400, help="samples per sampler call")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature, 0.05..2 (default: the voice card's; 1.0 = the paper's)")
    p.add_argument("--postfilter-db", type=float, default=None,
                   help="gain limit (dB, up to 60) of the spectral-envelope post-filter; 0: none "
                        "(default: the voice card's)")
    p.add_argument("--pitch-sync", choices=("on", "off"), default=None,
                   help="sampling noise that repeats once per pitch period in voiced frames "
                        "(default: the voice card's; docs/quality.md section 16)")
    p.add_argument("--comb-gain", type=float, default=None,
                   help="gain (0 .. 0.95) of the pitch post-filter, a comb at the pitch period before the "
                        "envelope post-filter; 0: none (default: the voice card's; docs/quality.md section 16)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavernn-tts", description="WaveRNN text-to-speech")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("features", help="log-mel features of a wav/flac recording")
    p.add_argument("input", help="audio file (wav or flac, any rate; resampled to 24 kHz)")
    p.add_argument("-o", "--output", required=True, help="output .npy (frames x n_mels, float32)")
    p.add_argument("--voice", default="default", help="voice whose feature recipe to use")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("vocode", help="log-mel features (.npy) -> 24 kHz wav")
    p.add_argument("input", help=".npy of shape (frames, n_mels)")
    p.add_argument("-o", "--output", required=True, help="output .wav")
    _add_sampling_arguments(p)
    p.set_defaults(func=_cmd_vocode)

    p = sub.add_parser("export", help="ONNX export of the conditioning network and the step cell")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--checkpoint", help="checkpoint .pt (default: the bundled voice)")
    p.add_argument("--voice", default="default")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("say", help="text -> 24 kHz wav through the Festival frontend and the voice")
    p.add_argument("text", help="text to speak (split into sentences)")
    p.add_argument("-o", "--output", required=True, help="output .wav")
    p.add_argument("--speed", type=float, default=1.0, help="speaking rate, 0.25..4")
    _add_sampling_arguments(p)
    p.set_defaults(func=_cmd_say)

    from models import evaluate, train

    p = sub.add_parser("train", help="train a voice (docs/training.md)")
    train.add_arguments(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on held-out data")
    evaluate.add_arguments(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("pack-voice", help="training checkpoint -> bundled voice folder (weights + card)")
    p.add_argument("--checkpoint", required=True, help="checkpoint saved by `wavernn-tts train`")
    p.add_argument("-o", "--output", required=True, help="voice folder, e.g. models/voices/default")
    p.add_argument("--name", required=True, help="voice name served by the API")
    p.add_argument("--description", required=True, help="one line for /v1/models")
    p.add_argument("--reproduce", required=True, help="the command(s) that retrain this voice")
    p.add_argument("--quality", help="JSON from `wavernn-tts eval --out` to put on the card")
    p.add_argument("--speed", help="JSON with measured speed to put on the card")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature the voice is served at, 0.05..2 (default 1.0, the paper's)")
    p.add_argument("--postfilter-db", type=float, default=0.0,
                   help="gain limit (dB, up to 60) of the spectral-envelope post-filter the voice is served "
                        "with (default 0: none; docs/quality.md)")
    p.add_argument("--pitch-sync", action="store_true",
                   help="serve the voice with pitch-synchronous sampling noise (docs/quality.md section 16)")
    p.add_argument("--comb-gain", type=float, default=0.0,
                   help="gain (0 .. 0.95) of the pitch post-filter the voice is served with (default 0: none; "
                        "docs/quality.md section 16)")
    p.add_argument("--data", nargs="+", metavar="SPEC",
                   help="data specs the voice was trained on, for the card's licences (default: the checkpoint's, "
                        "which name only its last run's data, e.g. a shard after a GPU piece)")
    p.set_defaults(func=_cmd_pack_voice)

    from models.shards import DEFAULT_SHARD_MB

    p = sub.add_parser("pack-shards", help="prepared corpora -> compressed shards to train on a lent GPU")
    p.add_argument("--data", nargs="+", required=True, metavar="SPEC",
                   help="prepared folders (each holds manifest.json), e.g. data/cache/synthetic_1500_seed0/prepared")
    p.add_argument("--out", required=True, help="shard folder (new, empty, or an earlier shard folder)")
    p.add_argument("--shard-mb", type=float, default=DEFAULT_SHARD_MB,
                   help=f"most MiB per shard file (default {DEFAULT_SHARD_MB:g}: fits the device's 64 MiB with the "
                        "working tree and a carried WaveRNN-384 checkpoint)")
    p.add_argument("--seed", type=int, default=0, help="seeds how training utterances are dealt to shards")
    p.set_defaults(func=_cmd_pack_shards)

    p = sub.add_parser("serve", help="run the HTTP service (settings from TTS_* environment variables)")
    p.add_argument("--host", default=None, help="interface to bind (overrides TTS_HOST)")
    p.add_argument("--port", type=int, default=None, help="port to listen on (overrides TTS_PORT)")
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
