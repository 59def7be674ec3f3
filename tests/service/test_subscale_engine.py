"""The engine serving a Subscale WaveRNN voice (service/engine/subscale.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import numpy as np
import pytest
import torch

from models.config import SubscaleConfig, VoiceConfig
from models.samplers.base import UniformSource
from models.samplers.subscale import extract_subscale_weights, generate_utterance
from models.samplers.subscale_cpu import SubscaleCpuSampler
from models.subscale import subscale_lag_samples
from models.voices import Voice, untrained_voice
from service.engine import SynthesisRequest
from tests.service.test_engine import Recorder, collect, run_engine
from tests.service.tts_server import tiny_mel

SUB = SubscaleConfig(factor=4, horizon=2, past=2, context_channels=8)
BLOCK = 120


@pytest.fixture(scope="module")
def voice() -> Voice:
    return untrained_voice(dataclasses.replace(VoiceConfig.tiny(), subscale=SUB), seed=3)


def offline(voice: Voice, mel: np.ndarray | list[np.ndarray], seed: int) -> np.ndarray:
    """The whole utterance through the compiled subscale sampler, no engine (chunks conditioned apart,
    as the engine conditions each sentence)."""
    with torch.no_grad():
        gates = torch.cat([voice.model.gate_conditioning(torch.from_numpy(m).unsqueeze(0))[0]
                           for m in (mel if isinstance(mel, list) else [mel])])  # (T, 3H)
    sampler = SubscaleCpuSampler(extract_subscale_weights(voice.model))  # type: ignore[arg-type]
    steps = -(-gates.shape[0] * voice.config.features.hop_length // SUB.factor)
    return generate_utterance(sampler, gates, UniformSource(seed).draw(steps * SUB.factor))  # type: ignore[arg-type]


def test_streams_equal_the_offline_subscale_utterance(voice: Voice) -> None:
    mels = [tiny_mel(9 + 4 * i, seed=i) for i in range(3)]
    rec = Recorder()

    async def body(engine) -> tuple[list[np.ndarray], list[int]]:
        streams = [await engine.submit(SynthesisRequest(m, seed=10 + i)) for i, m in enumerate(mels)]

        async def blocks(s) -> list[np.ndarray]:
            return [b async for b in s]

        got = await asyncio.gather(*(blocks(s) for s in streams))
        return [np.concatenate(b) for b in got], [len(b[0]) for b in got]

    outs, firsts = run_engine(voice, body, observer=rec, block_samples=BLOCK)
    lag = subscale_lag_samples(SUB.factor, SUB.horizon)
    for i, (mel, out) in enumerate(zip(mels, outs, strict=True)):
        np.testing.assert_array_equal(out, offline(voice, mel, 10 + i), err_msg=f"stream {i}")
    # the first call runs BLOCK // B steps and can hand over only what is past the declared lag
    assert all(0 < f <= BLOCK - lag + SUB.factor for f in firsts), (firsts, lag)
    assert sum(rec.batches) >= len(mels)  # every stream was advanced, block by block


def test_chunked_input_streams_once_final_and_equals_whole(voice: Voice) -> None:
    chunks = [tiny_mel(5, seed=1), tiny_mel(6, seed=2)]

    async def source() -> AsyncIterator[np.ndarray]:
        for c in chunks:
            yield c
            await asyncio.sleep(0.05)

    async def body(engine) -> np.ndarray:
        return await collect(await engine.submit(SynthesisRequest(source(), seed=4)))

    out = run_engine(voice, body, block_samples=BLOCK)
    np.testing.assert_array_equal(out, offline(voice, chunks, 4))
