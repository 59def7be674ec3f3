"""Serving benchmark: concurrent streaming clients against a running ``wavernn-tts serve``.

The script starts a server (``wavernn-tts serve`` on a free loopback port, voice ``--voice``,
``--workers`` CPU workers, ``--block`` samples per block) or targets ``--url``. Each client
POSTs ``--seconds`` of log-mel features (random frames of the voice's shape, fixed seed) to
``/v1/vocode`` with ``response_format=pcm`` and reads the stream to the end. For each level
of concurrency C in ``--concurrency`` (default 1, 4, 16), C clients start together; this is
repeated ``--repeats`` times after one warm-up request. With ``--text`` each client instead
POSTs that text to ``/v1/audio/speech`` (the server's frontend renders it, sentence by sentence),
so TTFA includes rendering the first sentence.

Metrics, per level:

- ``ttfa_p50_s``, ``ttfa_p99_s``: time to first audio, from sending the request to receiving
  the first PCM byte, over every stream of every repeat (p99 by nearest rank);
- ``rtf_per_stream``: median over streams of (stream wall time / its audio duration);
- ``rtf_aggregate``: median over repeats of (wall time of the C streams together / total
  audio seconds they delivered); below 1 the server makes audio faster than real time;
- ``throughput_samples_per_s``: median over repeats of (total samples delivered / wall time);
  ``throughput_x_realtime`` is that divided by 24,000.

Reference row (only when the script starts the server itself): the same features vocoded in
this process by :class:`models.vocoder.Vocoder` with the reference sampler, batch 1, no HTTP:
``reference.samples_per_s`` and ``reference.rtf``, measured in the same run.

Prints one line per level, then one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 24_000


@dataclass
class StreamResult:
    ttfa_s: float
    wall_s: float
    samples: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "TTS_VOICE": args.voice,
        "TTS_WORKERS": str(args.workers),
        "TTS_BLOCK_SAMPLES": str(args.block),
        "TTS_MAX_BATCH": str(max(args.concurrency)),
        "TTS_QUEUE_SIZE": str(max(args.concurrency)),
        "TTS_LOG_LEVEL": "warning",
        "TTS_FRONTEND": "true" if args.text else "false",
    }
    if args.torch_threads:
        env["TTS_TORCH_THREADS"] = str(args.torch_threads)
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + args.ready_timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the server did not become ready within {args.ready_timeout:g} s (--ready-timeout)")


def features(n_mels: int, hop: int, seconds: float, seed: int) -> np.ndarray:
    frames = max(1, round(seconds * SAMPLE_RATE / hop))
    return np.random.default_rng(seed).normal(-5.0, 1.5, (frames, n_mels)).astype(np.float32)


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@dataclass(frozen=True)
class Request:
    """What every client POSTs: vocode features (``body``) or speak a text (``text``)."""

    body: bytes | None = None
    text: str | None = None


async def one_stream(client: httpx.AsyncClient, req: Request, seed: int) -> StreamResult:
    t0 = time.perf_counter()
    ttfa = None
    n = 0
    if req.text is not None:
        call = client.stream("POST", "/v1/audio/speech", json={"input": req.text, "response_format": "pcm",
                                                                "seed": seed})
    else:
        call = client.stream("POST", "/v1/vocode", params={"response_format": "pcm", "seed": str(seed)},
                             content=req.body, headers={"content-type": "application/x-npy"})
    async with call as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread()).decode(errors='replace')[:300]}")
        async for chunk in r.aiter_raw():
            if ttfa is None and chunk:
                ttfa = time.perf_counter() - t0
            n += len(chunk)
    return StreamResult(ttfa if ttfa is not None else float("nan"), time.perf_counter() - t0, n // 2)


async def run_level(url: str, req: Request, concurrency: int, repeats: int) -> dict[str, float | int]:
    ttfas: list[float] = []
    rtf_stream: list[float] = []
    rtf_agg: list[float] = []
    tput: list[float] = []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:
        for rep in range(repeats):
            t0 = time.perf_counter()
            results = await asyncio.gather(*(one_stream(client, req, 1000 * rep + i) for i in range(concurrency)))
            wall = time.perf_counter() - t0
            total = sum(r.samples for r in results)
            ttfas += [r.ttfa_s for r in results]
            rtf_stream += [r.wall_s / (r.samples / SAMPLE_RATE) for r in results]
            rtf_agg.append(wall / (total / SAMPLE_RATE))
            tput.append(total / wall)
    ttfas.sort()
    p99 = ttfas[min(len(ttfas) - 1, max(0, int(np.ceil(0.99 * len(ttfas))) - 1))]
    return {
        "concurrency": concurrency,
        "streams": len(ttfas),
        "ttfa_p50_s": round(statistics.median(ttfas), 4),
        "ttfa_p99_s": round(p99, 4),
        "rtf_per_stream": round(statistics.median(rtf_stream), 4),
        "rtf_aggregate": round(statistics.median(rtf_agg), 4),
        "throughput_samples_per_s": round(statistics.median(tput), 1),
        "throughput_x_realtime": round(statistics.median(tput) / SAMPLE_RATE, 4),
    }


def reference_row(voice_spec: str, mel: np.ndarray, block: int) -> dict[str, float]:
    """The same features vocoded in-process (reference sampler, batch 1, no HTTP)."""
    from models.vocoder import Vocoder
    from service.voices import resolve_voice

    voice = resolve_voice(voice_spec)
    vocoder = Vocoder(voice.model, voice.config)
    vocoder.vocode(mel[:4], seed=0, block_samples=block)  # warm-up
    t0 = time.perf_counter()
    pcm = vocoder.vocode(mel, seed=0, block_samples=block)
    dt = time.perf_counter() - t0
    return {"samples_per_s": round(pcm.shape[0] / dt, 1), "rtf": round(dt / (pcm.shape[0] / SAMPLE_RATE), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--url", help="target a running server instead of starting one")
    p.add_argument("--voice", default="default", help="TTS_VOICE of the server this script starts")
    p.add_argument("--workers", type=int, default=1, help="TTS_WORKERS of the started server")
    p.add_argument("--block", type=int, default=2400, help="TTS_BLOCK_SAMPLES of the started server")
    p.add_argument("--torch-threads", type=int, default=0, help="TTS_TORCH_THREADS of the started server")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16],
                   help="comma-separated levels of concurrent streams")
    p.add_argument("--seconds", type=float, default=1.0, help="audio seconds per request")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per level")
    p.add_argument("--no-reference", action="store_true", help="skip the in-process reference row")
    p.add_argument("--ready-timeout", type=float, default=120.0,
                   help="seconds to wait for the started server's warm-up (a GPU's first kernel builds take longer)")
    p.add_argument("--text", help="speak this text through /v1/audio/speech instead of vocoding --seconds of "
                                  "features (needs Festival)")
    args = p.parse_args()
    if not args.ready_timeout > 0:
        p.error("--ready-timeout must be a positive number of seconds")

    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args)
    try:
        card = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]
        mel = features(card["n_mels"], card["hop_length"], args.seconds, seed=0)
        req = Request(text=args.text) if args.text else Request(body=npy(mel))
        asyncio.run(run_level(url, req, 1, 1))  # warm-up
        levels = []
        for c in args.concurrency:
            row = asyncio.run(run_level(url, req, c, args.repeats))
            levels.append(row)
            print(f"C={c:3d}  TTFA p50 {row['ttfa_p50_s']:.3f} s  p99 {row['ttfa_p99_s']:.3f} s  "
                  f"RTF/stream {row['rtf_per_stream']:.3f}  RTF agg {row['rtf_aggregate']:.3f}  "
                  f"{row['throughput_samples_per_s']:,.0f} samples/s", file=sys.stderr, flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    reference = None
    if args.url is None and not args.no_reference and not args.text:
        reference = reference_row(args.voice, mel, args.block)
    print(json.dumps({
        "benchmark": "serving",
        "voice": card["id"],
        "trained": card["trained"],
        "hidden_size": card["hidden_size"],
        "text": args.text,
        "audio_seconds_per_request": None if args.text else round(mel.shape[0] * card["hop_length"] / SAMPLE_RATE, 4),
        "block_samples": args.block if args.url is None else None,
        "workers": args.workers if args.url is None else None,
        "repeats": args.repeats,
        "levels": levels,
        "reference": reference,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
