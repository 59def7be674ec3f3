"""The service end to end: a real ``wavernn-tts serve`` process on a loopback port (see conftest)."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time

import httpx
import numpy as np
import pytest

from tests.service.tts_server import NPY_HEADERS, TINY_HOP, Server, metric, npy, tiny_mel


def _vocode(server: Server, mel: np.ndarray, **params: object) -> httpx.Response:
    q = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    return httpx.post(f"{server.url}/v1/vocode", params=q, content=npy(mel), headers=NPY_HEADERS, timeout=60)


def test_health_ready_and_models(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    models = httpx.get(f"{server.url}/v1/models").json()
    assert models["object"] == "list"
    (card,) = models["data"]
    assert card["id"] == "untrained-tiny" and card["trained"] is False
    assert (card["sample_rate"], card["n_mels"], card["hop_length"]) == (24_000, 8, TINY_HOP)


def test_first_audio_arrives_long_before_the_last(server: Server) -> None:
    mel = tiny_mel(160, seed=1)  # 4800 samples = 20 blocks of 240
    arrivals: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    with httpx.stream("POST", f"{server.url}/v1/vocode", params={"response_format": "pcm", "seed": "1"},
                      content=npy(mel), headers=NPY_HEADERS, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["x-sample-rate"] == "24000" and r.headers["x-accel-buffering"] == "no"
        for chunk in r.iter_raw():
            arrivals.append((time.perf_counter() - t0, len(chunk)))
    assert sum(n for _, n in arrivals) == 160 * TINY_HOP * 2
    assert len(arrivals) >= 5, "the audio came in too few pieces to be streamed"
    first, last = arrivals[0][0], arrivals[-1][0]
    assert first < 0.3 * last, f"first audio at {first:.3f} s, last at {last:.3f} s: buffered, not streamed"


def test_formats_carry_the_same_samples(server: Server) -> None:
    mel = tiny_mel(24, seed=2)
    n = 24 * TINY_HOP
    pcm = _vocode(server, mel, response_format="pcm", seed=7)
    assert pcm.headers["content-type"] == "audio/pcm" and pcm.headers["x-seed"] == "7"
    assert len(pcm.content) == 2 * n

    streamed_wav = _vocode(server, mel, response_format="wav", seed=7).content
    riff, riff_size, wave, data_size = struct.unpack("<4sI4s28xI", streamed_wav[:44])[:4]
    assert (riff, wave, riff_size, data_size) == (b"RIFF", b"WAVE", 0xFFFFFFFF, 0xFFFFFFFF)
    assert streamed_wav[44:] == pcm.content

    full_wav = _vocode(server, mel, response_format="wav", seed=7, stream=False)
    assert full_wav.headers["content-length"] == str(44 + 2 * n)
    assert struct.unpack("<I", full_wav.content[4:8])[0] == 36 + 2 * n
    assert struct.unpack("<I", full_wav.content[40:44])[0] == 2 * n
    assert full_wav.content[44:] == pcm.content

    sse = _vocode(server, mel, response_format="pcm", seed=7, stream_format="sse")
    assert sse.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["audio_samples"] == n
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == pcm.content

    other_seed = _vocode(server, mel, response_format="pcm", seed=8).content
    assert other_seed != pcm.content


def test_json_features_equal_npy_features(server: Server) -> None:
    mel = tiny_mel(12, seed=3)
    by_npy = _vocode(server, mel, response_format="pcm", seed=5).content
    by_json = httpx.post(f"{server.url}/v1/vocode",
                         json={"features": mel.tolist(), "seed": 5, "response_format": "pcm"}, timeout=60)
    assert by_json.status_code == 200 and by_json.content == by_npy


def test_concurrent_streams_are_batched_and_equal_their_solo_runs(server: Server) -> None:
    mels = [tiny_mel(16 + 2 * i, seed=10 + i) for i in range(8)]  # 480 .. 900 samples
    before = server.metrics()

    async def one(client: httpx.AsyncClient, i: int) -> bytes:
        r = await client.post("/v1/vocode", params={"response_format": "pcm", "seed": str(100 + i)},
                              content=npy(mels[i]), headers=NPY_HEADERS)
        assert r.status_code == 200
        return r.content

    async def together() -> list[bytes]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return list(await asyncio.gather(*(one(client, i) for i in range(8))))

    batched = asyncio.run(together())
    after = server.metrics()
    multi = [
        metric(m, "tts_batch_size_count") - metric(m, "tts_batch_size_bucket", le="1.0") for m in (before, after)
    ]
    assert multi[1] > multi[0], "no sampler call advanced more than one stream"

    for i in range(8):
        alone = _vocode(server, mels[i], response_format="pcm", seed=100 + i).content
        assert len(alone) == mels[i].shape[0] * TINY_HOP * 2
        assert batched[i] == alone, f"stream {i} differs when batched"


BAD_REQUESTS: list[tuple[str, str, dict[str, str], bytes, int]] = [
    # (name, path, headers, body, expected status)
    ("malformed json (speech)", "/v1/audio/speech", {"content-type": "application/json"}, b'{"input": "hi"', 400),
    ("malformed json (vocode)", "/v1/vocode", {"content-type": "application/json"}, b"{features: [[1]]}", 400),
    ("no body", "/v1/audio/speech", {"content-type": "application/json"}, b"", 422),
    ("empty input", "/v1/audio/speech", {"content-type": "application/json"}, b'{"input": ""}', 422),
    ("blank input", "/v1/audio/speech", {"content-type": "application/json"}, b'{"input": "   "}', 422),
    ("too long text", "/v1/audio/speech", {"content-type": "application/json"},
     json.dumps({"input": "a" * 201}).encode(), 422),
    ("unknown voice", "/v1/audio/speech", {"content-type": "application/json"},
     b'{"input": "hi", "voice": "nobody"}', 404),
    ("unknown model", "/v1/audio/speech", {"content-type": "application/json"},
     b'{"input": "hi", "model": "nope"}', 404),
    ("speed out of range", "/v1/audio/speech", {"content-type": "application/json"},
     b'{"input": "hi", "speed": 10}', 422),
    ("unsupported format", "/v1/audio/speech", {"content-type": "application/json"},
     b'{"input": "hi", "response_format": "mp3"}', 422),
    ("negative seed", "/v1/audio/speech", {"content-type": "application/json"}, b'{"input": "hi", "seed": -1}', 422),
    ("sse without streaming", "/v1/audio/speech", {"content-type": "application/json"},
     b'{"input": "hi", "stream_format": "sse", "stream": false}', 422),
    ("text and phonemes", "/v1/synthesize", {"content-type": "application/json"},
     b'{"text": "hi", "phonemes": [{"phoneme": "hh"}]}', 422),
    ("neither text nor phonemes", "/v1/synthesize", {"content-type": "application/json"}, b"{}", 422),
    ("bad phoneme duration", "/v1/synthesize", {"content-type": "application/json"},
     b'{"phonemes": [{"phoneme": "hh", "duration_ms": -5}]}', 422),
    ("wrong content type (speech)", "/v1/audio/speech", {"content-type": "text/plain"}, b"hello", 415),
    ("wrong content type (vocode)", "/v1/vocode", {"content-type": "text/plain"}, b"hello", 415),
    ("no content type (vocode)", "/v1/vocode", {}, npy(tiny_mel(4)), 415),
    ("wrong feature width (npy)", "/v1/vocode", NPY_HEADERS, npy(np.zeros((10, 9), np.float32)), 422),
    ("wrong feature width (json)", "/v1/vocode", {"content-type": "application/json"},
     json.dumps({"features": [[0.0] * 7] * 3}).encode(), 422),
    ("ragged json features", "/v1/vocode", {"content-type": "application/json"},
     json.dumps({"features": [[0.0] * 8, [0.0] * 7]}).encode(), 422),
    ("NaN features", "/v1/vocode", NPY_HEADERS, npy(np.full((5, 8), np.nan, np.float32)), 422),
    ("inf features (json)", "/v1/vocode", {"content-type": "application/json"},
     b'{"features": [[Infinity, 0, 0, 0, 0, 0, 0, 0]]}', 422),
    ("huge features", "/v1/vocode", NPY_HEADERS, npy(np.full((5, 8), 1e30, np.float32)), 422),
    ("3-D features", "/v1/vocode", NPY_HEADERS, npy(np.zeros((1, 5, 8), np.float32)), 422),
    ("integer features", "/v1/vocode", NPY_HEADERS, npy(np.zeros((5, 8), np.int32)), 422),
    ("zero frames", "/v1/vocode", NPY_HEADERS, npy(np.zeros((0, 8), np.float32)), 422),
    ("empty json features", "/v1/vocode", {"content-type": "application/json"}, b'{"features": []}', 422),
    ("empty npy body", "/v1/vocode", NPY_HEADERS, b"", 422),
    ("not an npy", "/v1/vocode", NPY_HEADERS, b"\x93NUMPY garbage", 400),
    ("too long utterance", "/v1/vocode", NPY_HEADERS, npy(tiny_mel(2000)), 422),
    ("bad query option", "/v1/vocode?response_format=mp3", NPY_HEADERS, npy(tiny_mel(4)), 422),
    ("unknown path", "/v1/nothing", {}, b"", 404),
]


@pytest.mark.parametrize("name,path,headers,body,status", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_gets_a_json_4xx(server: Server, name: str, path: str, headers: dict[str, str], body: bytes,
                                   status: int) -> None:
    r = httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["message"] and err["type"] == "invalid_request_error" and err["code"]


def test_bad_input_never_makes_a_500_and_the_server_stays_healthy(server: Server) -> None:
    oversized = httpx.post(f"{server.url}/v1/vocode", content=npy(tiny_mel(3000)), headers=NPY_HEADERS)
    assert oversized.status_code == 413 and oversized.json()["error"]["code"] == "body_too_large"
    values = server.metrics()
    assert not [k for k in values if k[0] == "tts_requests_total" and ("status", "500") in k[1]]
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert _vocode(server, tiny_mel(4), response_format="pcm").status_code == 200


def test_a_client_that_disconnects_frees_its_slot(server: Server) -> None:
    before = server.metrics()
    with httpx.stream("POST", f"{server.url}/v1/vocode", params={"response_format": "pcm"},
                      content=npy(tiny_mel(1500)), headers=NPY_HEADERS, timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_raw())  # audio is flowing; now hang up
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = server.metrics()
        if (metric(after, "tts_client_disconnects_total") > metric(before, "tts_client_disconnects_total")
                and metric(after, "tts_active_streams") == 0):
            break
        time.sleep(0.05)
    assert metric(after, "tts_active_streams") == 0
    assert metric(after, "tts_client_disconnects_total") == metric(before, "tts_client_disconnects_total") + 1
    assert metric(after, "tts_requests_total", endpoint="vocode", status="499") == \
        metric(before, "tts_requests_total", endpoint="vocode", status="499") + 1


def test_metrics_count_known_requests_exactly(server: Server) -> None:
    before = server.metrics()
    assert _vocode(server, tiny_mel(20), response_format="pcm").status_code == 200  # 600 samples
    assert _vocode(server, tiny_mel(30), response_format="wav", stream=False).status_code == 200  # 900 samples
    assert _vocode(server, np.zeros((3, 5), np.float32)).status_code == 422
    after = server.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("tts_requests_total", endpoint="vocode", status="200") == 2
    assert delta("tts_requests_total", endpoint="vocode", status="422") == 1
    assert delta("tts_request_duration_seconds_count", endpoint="vocode") == 3
    assert delta("tts_time_to_first_audio_seconds_count") == 2
    assert delta("tts_real_time_factor_count") == 2
    assert delta("tts_queue_wait_seconds_count") == 2
    assert delta("tts_audio_seconds_total") == pytest.approx(1500 / 24_000, abs=1e-9)
    assert metric(after, "tts_worker_up", worker="cpu:0") == 1
    assert metric(after, "tts_worker_restarts_total", worker="cpu:0") == 0
    assert metric(after, "tts_queue_depth") == 0
    for name in ("tts_time_to_first_audio_seconds", "tts_request_duration_seconds", "tts_queue_wait_seconds"):
        les = {dict(labels)["le"] for n, labels in after if n == f"{name}_bucket"}
        assert {"0.01", "10.0", "+Inf"} <= les, f"{name} buckets {sorted(les)} do not span 10 ms .. 10 s"
