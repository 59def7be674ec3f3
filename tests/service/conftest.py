"""Real servers for the service tests: ``wavernn-tts serve`` in a subprocess on a free loopback port.

Servers use tiny untrained voices (H=32, 8 mels, hop 30) and small blocks so that each test
generates a few thousand samples at most. The main server runs the reference sampler, whose
~3,000 samples/s per stream keep streams in flight long enough to observe streaming, batching
and disconnects; ``test_compiled_server.py`` covers the default (compiled) sampler.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.tts_server import Server, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The main test server: tiny untrained voice, 240-sample blocks, batches of up to 8."""
    env = {
        "TTS_VOICE": "untrained-tiny",
        "TTS_SAMPLER": "reference",
        "TTS_BLOCK_SAMPLES": "240",
        "TTS_MAX_BATCH": "8",
        "TTS_QUEUE_SIZE": "16",
        "TTS_MAX_BODY_BYTES": "65536",
        "TTS_MAX_INPUT_CHARS": "200",
        "TTS_MAX_AUDIO_S": "2",
    }
    yield from start_server(env, tmp_path_factory.mktemp("server") / "server.log")
