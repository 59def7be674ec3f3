"""Admission control on a real server: a full queue answers 429, the accepted streams complete.

This server loads its voice from a checkpoint file (TTS_VOICE=<path>), one worker with room
for 2 streams and 1 waiting place: 3 requests are admitted, the 4th is refused. It runs the
reference sampler (about 3,000 samples/s per stream for this tiny voice), so the admitted
streams are still in flight, for about a second, when the 4th request arrives; the compiled
CPU sampler would finish them within milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.config import VoiceConfig
from models.wavernn import WaveRNN
from tests.service.tts_server import NPY_HEADERS, TINY_HOP, Server, metric, npy, start_server, tiny_mel


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("admission")
    cfg = VoiceConfig.tiny()
    torch.manual_seed(1)
    ckpt = folder / "tiny-ckpt.pt"
    save_checkpoint(ckpt, WaveRNN(cfg.model), cfg, meta={"trained": False})
    env = {
        "TTS_VOICE": str(ckpt),
        "TTS_BLOCK_SAMPLES": "240",
        "TTS_MAX_BATCH": "2",
        "TTS_QUEUE_SIZE": "1",
        "TTS_WORKERS": "1",
        "TTS_SAMPLER": "reference",
        "TTS_RETRY_AFTER_S": "3",
        "TTS_FRONTEND": "false",
    }
    yield from start_server(env, folder / "server.log")


def test_the_checkpoint_voice_is_served(small_server: Server) -> None:
    (card,) = httpx.get(f"{small_server.url}/v1/models").json()["data"]
    assert card["id"] == "tiny-ckpt" and card["trained"] is False and card["hidden_size"] == 32


def test_a_full_queue_answers_429_and_the_accepted_streams_complete(small_server: Server) -> None:
    url = f"{small_server.url}/v1/vocode"
    frames = [100, 100, 60]
    before = small_server.metrics()
    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=60))
        accepted = []
        for i, n in enumerate(frames):
            r = stack.enter_context(client.stream("POST", url, params={"response_format": "pcm", "seed": str(i)},
                                                  content=npy(tiny_mel(n, seed=i)), headers=NPY_HEADERS))
            assert r.status_code == 200
            accepted.append(r)
        refused = httpx.post(url, content=npy(tiny_mel(10)), headers=NPY_HEADERS, timeout=30)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "3"
        assert refused.json()["error"]["code"] == "queue_full"
        bodies = [r.read() for r in accepted]
    assert [len(b) for b in bodies] == [2 * n * TINY_HOP for n in frames]

    m = small_server.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric(m, name, **labels) - metric(before, name, **labels)

    assert delta("tts_requests_rejected_total", reason="queue_full") == 1
    assert delta("tts_requests_total", endpoint="vocode", status="429") == 1
    assert delta("tts_requests_total", endpoint="vocode", status="200") == 3
    assert metric(m, "tts_batch_size_bucket", le="2.0") == metric(m, "tts_batch_size_count")  # never above 2


def test_text_endpoints_answer_503_without_the_frontend_while_vocode_works(small_server: Server) -> None:
    r = httpx.post(f"{small_server.url}/v1/audio/speech", json={"input": "Hello."})
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "frontend_unavailable" and "festival festvox-us-slt-hts" in err["message"]
    r = httpx.post(f"{small_server.url}/v1/synthesize", json={"phonemes": [{"phoneme": "hh"}]})
    assert r.status_code == 503 and "festival" in r.json()["error"]["message"]
    assert httpx.get(f"{small_server.url}/ready").json()["text_frontend"] is False
    v = httpx.post(f"{small_server.url}/v1/vocode", content=npy(tiny_mel(4)), headers=NPY_HEADERS, timeout=30)
    assert v.status_code == 200 and len(v.content) == 44 + 2 * 4 * TINY_HOP
