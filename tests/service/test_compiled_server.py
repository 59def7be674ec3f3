"""The default sampler on CPU (``auto`` = the compiled CPU sampler) behind a real server.

Its audio must be byte-identical to the reference vocoder's for the same features and seed,
alone and when several streams are batched together.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from models.vocoder import Vocoder
from service.voices import UNTRAINED_TINY, resolve_voice
from tests.service.tts_server import NPY_HEADERS, Server, npy, start_server, tiny_mel


@pytest.fixture(scope="module")
def compiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"TTS_VOICE": UNTRAINED_TINY, "TTS_BLOCK_SAMPLES": "240", "TTS_MAX_BATCH": "4", "TTS_FRONTEND": "false"}
    yield from start_server(env, tmp_path_factory.mktemp("compiled") / "server.log")


def _pcm(server: Server, mel: np.ndarray, seed: int) -> np.ndarray:
    r = httpx.post(f"{server.url}/v1/vocode", params={"response_format": "pcm", "seed": str(seed)},
                   content=npy(mel), headers=NPY_HEADERS, timeout=60)
    assert r.status_code == 200, r.text
    return np.frombuffer(r.content, dtype="<i2")


def test_compiled_sampler_serves_the_reference_audio(compiled_server: Server) -> None:
    ready = httpx.get(f"{compiled_server.url}/ready").json()
    assert ready["status"] == "ready"
    voice = resolve_voice(UNTRAINED_TINY)
    vocoder = Vocoder(voice.model, voice.config)  # reference sampler, in process
    mels = [tiny_mel(n, seed=i) for i, n in enumerate([40, 55, 70, 33])]
    expected = [vocoder.vocode(m, seed=10 + i) for i, m in enumerate(mels)]
    assert np.array_equal(_pcm(compiled_server, mels[0], 10), expected[0])
    with ThreadPoolExecutor(4) as pool:  # concurrent: the engine batches them
        got = list(pool.map(lambda i: _pcm(compiled_server, mels[i], 10 + i), range(4)))
    for g, e in zip(got, expected, strict=True):
        assert np.array_equal(g, e)
