"""The text endpoints on a real server (Festival frontend); skipped where Festival is not installed."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.service.tts_server import TINY_HOP, Server


@pytest.fixture(scope="module")
def text_server(server: Server) -> Server:
    if not httpx.get(f"{server.url}/ready").json().get("text_frontend"):
        pytest.skip("the Festival text frontend is unavailable here (apt-get install festival festvox-us-slt-hts)")
    return server


def test_speech_streams_sentences_reproducibly(text_server: Server) -> None:
    body = {"model": "tts-1", "input": "Hi. Ok.", "speed": 4.0, "seed": 5, "response_format": "pcm"}

    async def twice() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=text_server.url, timeout=60) as client:
            return list(await asyncio.gather(*(client.post("/v1/audio/speech", json=body) for _ in range(2))))

    a, b = asyncio.run(twice())
    assert a.status_code == 200 and b.status_code == 200, a.text
    assert a.headers["x-sample-rate"] == "24000" and a.headers["x-seed"] == "5"
    assert len(a.content) > 0 and len(a.content) % (2 * TINY_HOP) == 0
    assert a.content == b.content  # same request, same seed, same audio, whatever the timing of sentences


def test_synthesize_phonemes_with_durations_and_pitch(text_server: Server) -> None:
    phonemes = [{"phoneme": "hh", "duration_ms": 60}, {"phoneme": "ay", "duration_ms": 80, "pitch_hz": 200}]
    r = httpx.post(f"{text_server.url}/v1/synthesize",
                   json={"phonemes": phonemes, "speed": 4.0, "seed": 1, "stream_format": "sse"}, timeout=60)
    assert r.status_code == 200, r.text
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["input_phonemes"] == 2 and events[-1]["usage"]["audio_samples"] > 0


def test_an_unknown_phoneme_is_a_422(text_server: Server) -> None:
    r = httpx.post(f"{text_server.url}/v1/synthesize", json={"phonemes": [{"phoneme": "qq"}]}, timeout=30)
    assert r.status_code == 422, r.text
    assert "qq" in r.json()["error"]["message"]
