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
from service.engine.subscale import offline_chunks
from tests.service.test_engine import Recorder, run_engine
from tests.service.tts_server import tiny_mel

SUB = SubscaleConfig(factor=4, horizon=2, past=2, context_channels=8)
BLOCK = 120


@pytest.fixture(scope="module")
def voice() -> Voice:
    return untrained_voice(dataclasses.replace(VoiceConfig.tiny(), subscale=SUB), seed=3)


def offline(voice: Voice, mel: np.ndarray | list[np.ndarray], seed: int) -> np.ndarray:
    """The frames of ``mel`` (chunks conditioned apart, as the engine conditions each sentence)
    folded as one utterance through the compiled subscale sampler, no engine."""
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


def _gates(voice: Voice, mel: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return voice.model.gate_conditioning(torch.from_numpy(mel).unsqueeze(0))[0]


def test_text_streams_sentence_by_sentence(voice: Voice) -> None:
    """Each chunk (a sentence) is folded on its own and starts as soon as it comes: the first
    sentence is heard while the next is still being rendered."""
    chunks = [tiny_mel(5, seed=1), tiny_mel(6, seed=2), tiny_mel(4, seed=3)]
    heard = asyncio.Event()

    async def source() -> AsyncIterator[np.ndarray]:
        yield chunks[0]
        await asyncio.wait_for(heard.wait(), timeout=20)  # the next sentence waits for audio of the first
        for c in chunks[1:]:
            yield c

    async def body(engine) -> list[np.ndarray]:
        blocks = []
        async for b in await engine.submit(SynthesisRequest(source(), seed=4)):
            blocks.append(b)
            heard.set()
        return blocks

    blocks = run_engine(voice, body, block_samples=BLOCK)
    out = np.concatenate(blocks)
    sampler = SubscaleCpuSampler(extract_subscale_weights(voice.model))  # type: ignore[arg-type]
    np.testing.assert_array_equal(out, offline_chunks(sampler, [_gates(voice, c) for c in chunks], 4))
    hop = voice.config.features.hop_length
    assert len(out) == sum(len(c) for c in chunks) * hop
    # the whole of the utterance is not one fold: it differs from folding all the frames at once
    assert not np.array_equal(out, offline(voice, chunks, 4))


def test_offline_chunks_of_one_chunk_is_the_utterance(voice: Voice) -> None:
    mel = tiny_mel(7, seed=5)
    sampler = SubscaleCpuSampler(extract_subscale_weights(voice.model))  # type: ignore[arg-type]
    np.testing.assert_array_equal(offline_chunks(sampler, [_gates(voice, mel)], 9), offline(voice, mel, 9))
