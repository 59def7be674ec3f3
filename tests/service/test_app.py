"""The app in-process (httpx ASGITransport): readiness, error mapping, deadlines on SSE, settings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from models.config import FeatureConfig
from service.app import create_app
from service.engine.protocol import EngineStats, SynthesisRequest, VoiceInfo, WorkerStats
from service.frontend import TextFrontend
from service.metrics import Metrics
from service.settings import Settings
from service.streaming import AudioEncoder, sse_delta, sse_done
from service.voices import resolve_voice
from tests.service.tts_server import NPY_HEADERS, npy, tiny_mel

T = TypeVar("T")


class FakeEngine:
    """An EngineClient that is never ready, or whose submit raises ``error``."""

    def __init__(self, ready: bool = False, error: Exception | None = None) -> None:
        self.ready = ready
        self.error = error
        self.voice = VoiceInfo("fake", False, FeatureConfig(n_fft=256, win_length=120, hop_length=30, n_mels=8), 32)

    async def start(self) -> None:
        pass

    async def shutdown(self, drain_timeout_s: float) -> None:
        pass

    def is_ready(self) -> bool:
        return self.ready

    async def submit(self, request: SynthesisRequest) -> Any:
        raise self.error or AssertionError("not expected")

    def stats(self) -> EngineStats:
        return EngineStats(self.ready, 0, 0, (WorkerStats("cpu:0", self.ready, 0, 0),))


def serve(app: FastAPI, body: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """Run the app's lifespan and ``body(client)`` against it."""

    async def main() -> T:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await body(client)

    return asyncio.run(main())


def settings(**kw: Any) -> Settings:
    return Settings(frontend=False, **kw)


def test_not_ready_answers_503_with_retry_after_while_health_is_200() -> None:
    app = create_app(settings(retry_after_s=2), engine=FakeEngine(ready=False), frontend=TextFrontend(enabled=False))

    async def body(c: httpx.AsyncClient) -> None:
        assert (await c.get("/health")).status_code == 200
        ready = await c.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        r = await c.post("/v1/vocode", content=npy(tiny_mel(4)), headers=NPY_HEADERS)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert r.json()["error"]["code"] == "not_ready"

    serve(app, body)


def test_an_unexpected_error_is_a_json_500_and_counted() -> None:
    metrics = Metrics()
    app = create_app(settings(), engine=FakeEngine(ready=True, error=RuntimeError("boom")),
                     frontend=TextFrontend(enabled=False), metrics=metrics)

    async def body(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post("/v1/vocode", content=npy(tiny_mel(4)), headers=NPY_HEADERS)

    r = serve(app, body)
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error" and "RuntimeError" in r.json()["error"]["message"]
    assert metrics.requests.labels(endpoint="vocode", status="500")._value.get() == 1


def test_a_deadline_ends_an_sse_stream_with_an_error_event() -> None:
    metrics = Metrics()
    app = create_app(settings(voice="untrained-tiny", block_samples=120, request_timeout_s=0.3),
                     frontend=TextFrontend(enabled=False), metrics=metrics)

    async def body(c: httpx.AsyncClient) -> httpx.Response:
        assert await app.state.engine.wait_ready(10)
        return await c.post("/v1/vocode", params={"stream_format": "sse", "response_format": "pcm"},
                            content=npy(tiny_mel(3000)), headers=NPY_HEADERS, timeout=30)

    r = serve(app, body)
    assert r.status_code == 200
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "deadline_exceeded"
    assert metrics.rejected.labels(reason="deadline")._value.get() == 1
    assert metrics.requests.labels(endpoint="vocode", status="504")._value.get() == 1


def test_settings_come_from_tts_variables_with_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_MAX_BATCH", "4")
    monkeypatch.setenv("TTS_PORT", "9000")
    s = Settings(port=9100)  # an explicit value (a CLI flag) wins over the environment
    assert (s.max_batch, s.port, s.block_samples) == (4, 9100, 2400)
    monkeypatch.setenv("TTS_MAX_BATCH", "0")
    with pytest.raises(ValidationError, match="max_batch"):
        Settings()
    monkeypatch.setenv("TTS_MAX_BATCH", "4")
    with pytest.raises(ValidationError, match="device"):
        Settings(device="tpu")  # type: ignore[arg-type]
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} is undocumented"


def test_encoders() -> None:
    import numpy as np

    wav = AudioEncoder("wav", 24_000)
    head = wav.start()
    assert len(head) == 44 and head[4:8] == b"\xff\xff\xff\xff" and head[40:44] == b"\xff\xff\xff\xff"
    assert AudioEncoder("pcm", 24_000).start() == b""
    assert wav.block(np.array([1, -2], np.int16)) == b"\x01\x00\xfe\xff"
    assert sse_delta(b"\x01\x00") == b'data: {"type":"speech.audio.delta","audio":"AQA="}\n\n'
    assert sse_done({"audio_samples": 1}).startswith(b'data: {"type":"speech.audio.done"')
    with pytest.raises(ValueError, match="mp3"):
        AudioEncoder("mp3", 24_000)  # type: ignore[arg-type]


def test_a_missing_frontend_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "models.frontend":
            raise ImportError("No module named 'models.frontend'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    fe = TextFrontend()
    fe.start()
    assert not fe.available and "festival festvox-us-slt-hts" in fe.reason


def test_shutdown_lets_the_streams_in_flight_finish() -> None:
    import threading
    import time

    import uvicorn

    from tests.service.tts_server import TINY_HOP, free_port

    port = free_port()
    app = create_app(settings(voice="untrained-tiny", block_samples=240, drain_timeout_s=30))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    frames = 120  # 15 blocks: the shutdown starts while most of them are still to come
    with httpx.stream("POST", f"{url}/v1/vocode", params={"response_format": "pcm"}, content=npy(tiny_mel(frames)),
                      headers=NPY_HEADERS, timeout=60) as r:
        chunks = r.iter_raw()
        got = len(next(chunks))
        server.should_exit = True  # what SIGTERM does
        got += sum(len(c) for c in chunks)
    thread.join(timeout=30)
    assert got == 2 * frames * TINY_HOP
    assert not thread.is_alive()
    assert not app.state.engine.is_ready()


def test_tts_temperature_is_the_served_voices_and_shown_on_its_card(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_TEMPERATURE", "0.7")
    assert Settings().temperature == 0.7
    monkeypatch.setenv("TTS_TEMPERATURE", "0")
    with pytest.raises(ValidationError, match="temperature"):
        Settings()
    monkeypatch.delenv("TTS_TEMPERATURE")
    assert Settings().temperature is None  # the card's
    app = create_app(settings(voice="untrained-tiny", temperature=0.7), frontend=TextFrontend(enabled=False))

    async def body(c: httpx.AsyncClient) -> tuple[dict[str, Any], Any]:
        assert await app.state.engine.wait_ready(10)
        return (await c.get("/v1/models")).json(), app.state.engine._voice

    models, voice = serve(app, body)
    assert models["data"][0]["card"]["sampling"] == {"temperature": 0.7}
    assert voice.temperature == 0.7  # what the workers' samplers are built from


def test_tts_pitch_sync_replaces_the_cards_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_PITCH_SYNC", "maybe")
    with pytest.raises(ValidationError, match="pitch_sync"):
        Settings()
    monkeypatch.setenv("TTS_PITCH_SYNC", "true")
    assert Settings().pitch_sync is True
    monkeypatch.delenv("TTS_PITCH_SYNC")
    assert Settings().pitch_sync is None  # the card's
    app = create_app(settings(voice="untrained-tiny", pitch_sync=True), frontend=TextFrontend(enabled=False))

    async def body(c: httpx.AsyncClient) -> tuple[dict[str, Any], Any, int]:
        assert await app.state.engine.wait_ready(10)
        r = await c.post("/v1/vocode?response_format=pcm", content=npy(tiny_mel(10)), headers=NPY_HEADERS)
        return (await c.get("/v1/models")).json(), app.state.engine._voice, len(r.content)

    models, voice, size = serve(app, body)
    assert models["data"][0]["card"]["sampling"]["pitch_sync"] is True
    assert voice.pitch_sync is True
    assert size == 10 * 30 * 2
    assert resolve_voice("untrained-tiny", pitch_sync=False).pitch_sync is False


def test_tts_comb_gain_replaces_the_cards_pitch_post_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_COMB_GAIN", "1.2")
    with pytest.raises(ValidationError, match="comb_gain"):
        Settings()
    monkeypatch.setenv("TTS_COMB_GAIN", "0.8")
    assert Settings().comb_gain == 0.8
    monkeypatch.delenv("TTS_COMB_GAIN")
    app = create_app(settings(voice="untrained-tiny", comb_gain=0.8, postfilter_db=10),
                     frontend=TextFrontend(enabled=False))

    async def body(c: httpx.AsyncClient) -> tuple[dict[str, Any], Any, int]:
        assert await app.state.engine.wait_ready(10)
        r = await c.post("/v1/vocode?response_format=pcm", content=npy(tiny_mel(10)), headers=NPY_HEADERS)
        return (await c.get("/v1/models")).json(), app.state.engine._voice, len(r.content)

    models, voice, size = serve(app, body)
    assert models["data"][0]["card"]["postfilter"] == {"max_gain_db": 10.0, "comb_gain": 0.8}
    assert voice.comb_gain == 0.8 and voice.postfilter_db == 10.0
    assert size == 10 * 30 * 2
    only = resolve_voice("untrained-tiny", comb_gain=0.5)
    assert only.card["postfilter"] == {"max_gain_db": 0.0, "comb_gain": 0.5} and only.postfilter_db is None
    assert "postfilter" not in resolve_voice("untrained-tiny", comb_gain=0).card


def test_tts_postfilter_db_replaces_the_cards_post_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_POSTFILTER_DB", "61")
    with pytest.raises(ValidationError, match="postfilter_db"):
        Settings()
    monkeypatch.setenv("TTS_POSTFILTER_DB", "12")
    assert Settings().postfilter_db == 12.0
    monkeypatch.delenv("TTS_POSTFILTER_DB")
    assert Settings().postfilter_db is None  # the card's
    app = create_app(settings(voice="untrained-tiny", postfilter_db=12), frontend=TextFrontend(enabled=False))

    async def body(c: httpx.AsyncClient) -> tuple[dict[str, Any], Any, int]:
        assert await app.state.engine.wait_ready(10)
        r = await c.post("/v1/vocode?response_format=pcm", content=npy(tiny_mel(10)), headers=NPY_HEADERS)
        return (await c.get("/v1/models")).json(), app.state.engine._voice, len(r.content)

    models, voice, size = serve(app, body)
    assert models["data"][0]["card"]["postfilter"] == {"max_gain_db": 12.0}
    assert voice.postfilter_db == 12.0
    assert size == 10 * 30 * 2  # every sample, the post-filter's tail included
    off = resolve_voice("untrained-tiny", postfilter_db=0)
    assert off.postfilter_db is None and "postfilter" not in off.card
