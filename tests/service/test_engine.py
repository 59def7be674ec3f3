"""The engine in-process: continuous batching, deadlines, cancellation, worker restarts, drain."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import pytest
import torch

from models.config import VoiceConfig
from models.pitch import MelPitchTracker
from models.postfilter import envelope_postfilter
from models.samplers.base import Sampler, SamplerState
from models.samplers.reference import ReferenceSampler
from models.vocoder import Vocoder
from models.voices import Voice, untrained_voice
from models.weights import extract_weights
from service.engine import (
    DeadlineExceededError,
    Engine,
    EngineConfig,
    EngineNotReadyError,
    QueueFullError,
    SynthesisRequest,
    WorkerFailedError,
)
from service.engine.protocol import AudioStream, NullObserver
from tests.service.tts_server import tiny_mel

T = TypeVar("T")
BLOCK = 120


@pytest.fixture(scope="module")
def voice() -> Voice:
    return untrained_voice(VoiceConfig.tiny(), seed=0)


class Recorder(NullObserver):
    """Keeps the batch sizes and worker events the engine reports."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.restarts: list[str] = []
        self.active: list[int] = []

    def batch(self, size: int) -> None:
        self.batches.append(size)

    def worker_restarted(self, worker: str) -> None:
        self.restarts.append(worker)

    def active_streams(self, count: int) -> None:
        self.active.append(count)


def run_engine(voice: Voice, body: Callable[[Engine], Awaitable[T]], observer: Recorder | None = None,
               make_sampler: Any = None, **config: Any) -> T:
    """Start an engine over ``voice``, run ``body(engine)``, shut the engine down."""

    async def main() -> T:
        cfg = EngineConfig(**{"block_samples": BLOCK, "max_batch": 8, **config})
        engine = Engine(cfg, lambda: voice, observer=observer, make_sampler=make_sampler)
        assert not engine.is_ready()
        await engine.start()
        assert await engine.wait_ready(10)
        try:
            return await body(engine)
        finally:
            await engine.shutdown(drain_timeout_s=0)

    return asyncio.run(main())


async def collect(stream: AudioStream) -> np.ndarray:
    return np.concatenate([b async for b in stream])


def solo(voice: Voice, mel: np.ndarray, seed: int) -> np.ndarray:
    return Vocoder(voice.model, voice.config).vocode(mel, seed=seed, block_samples=BLOCK)


def test_batched_streams_equal_the_single_stream_vocoder(voice: Voice) -> None:
    mels = [tiny_mel(8 + 3 * i, seed=i) for i in range(6)]  # different lengths: streams leave at different blocks
    rec = Recorder()

    async def body(engine: Engine) -> list[np.ndarray]:
        streams = [await engine.submit(SynthesisRequest(m, seed=i)) for i, m in enumerate(mels)]
        return list(await asyncio.gather(*(collect(s) for s in streams)))

    outs = run_engine(voice, body, observer=rec)
    assert max(rec.batches) > 1
    for i, (mel, out) in enumerate(zip(mels, outs, strict=True)):
        np.testing.assert_array_equal(out, solo(voice, mel, seed=i), err_msg=f"stream {i}")


def test_chunked_input_does_not_depend_on_when_chunks_arrive(voice: Voice) -> None:
    chunks = [tiny_mel(5, seed=1), tiny_mel(9, seed=2), tiny_mel(4, seed=3)]

    async def source(delay: float) -> AsyncIterator[np.ndarray]:
        for c in chunks:
            yield c
            await asyncio.sleep(delay)

    async def body(engine: Engine) -> tuple[np.ndarray, np.ndarray]:
        slow = await engine.submit(SynthesisRequest(source(0.15), seed=4))
        fast = await engine.submit(SynthesisRequest(source(0.0), seed=4))
        return await collect(slow), await collect(fast)

    slow, fast = run_engine(voice, body)
    assert slow.shape == (18 * 30,)
    np.testing.assert_array_equal(slow, fast)


def test_post_filtered_streams_are_the_post_filtered_engine_output(voice: Voice) -> None:
    filtered = dataclasses.replace(voice, card={**voice.card, "postfilter": {"max_gain_db": 20}})
    mel = tiny_mel(12, seed=5)
    chunks = [tiny_mel(4, seed=1), tiny_mel(6, seed=2), tiny_mel(3, seed=3)]

    async def source() -> AsyncIterator[np.ndarray]:
        for c in chunks:
            yield c
            await asyncio.sleep(0.05)

    async def body(engine: Engine) -> list[np.ndarray]:
        whole = await engine.submit(SynthesisRequest(mel, seed=0))
        streams = [whole, await engine.submit(SynthesisRequest(source(), seed=4))]
        return list(await asyncio.gather(*(collect(s) for s in streams)))

    plain, filtered_out = run_engine(voice, body), run_engine(filtered, body)
    for i, (target, raw, out) in enumerate(zip([mel, np.concatenate(chunks)], plain, filtered_out, strict=True)):
        want = envelope_postfilter(raw / 32768.0, target, voice.config.features, 20.0)
        assert out.shape == raw.shape
        np.testing.assert_allclose(out / 32767.0, want, atol=2 / 32767, err_msg=f"stream {i}")
        assert not np.array_equal(out, raw)  # the filter did act


def test_pitch_synced_streams_are_the_pitch_synced_vocoder_and_do_not_depend_on_chunk_timing(voice: Voice) -> None:
    synced = dataclasses.replace(voice, card={**voice.card, "sampling": {"pitch_sync": True}})
    mels = [tiny_mel(14, seed=6), tiny_mel(9, seed=7)]
    tracker = MelPitchTracker(voice.config.features)
    assert all((tracker.periods(m) > 0).any() for m in mels)  # the draws do repeat somewhere
    chunks = [tiny_mel(5, seed=1), tiny_mel(9, seed=2), tiny_mel(4, seed=3)]

    async def source(delay: float) -> AsyncIterator[np.ndarray]:
        for c in chunks:
            yield c
            await asyncio.sleep(delay)

    async def body(engine: Engine) -> list[np.ndarray]:
        streams = [await engine.submit(SynthesisRequest(m, seed=i)) for i, m in enumerate(mels)]
        streams += [await engine.submit(SynthesisRequest(source(d), seed=4)) for d in (0.15, 0.0)]
        return list(await asyncio.gather(*(collect(s) for s in streams)))

    outs = run_engine(synced, body)
    for i, mel in enumerate(mels):
        want = Vocoder(voice.model, voice.config, pitch_sync=True).vocode(mel, seed=i, block_samples=BLOCK)
        np.testing.assert_array_equal(outs[i], want, err_msg=f"stream {i}")
        assert not np.array_equal(outs[i], solo(voice, mel, seed=i))
    np.testing.assert_array_equal(outs[2], outs[3])
    assert outs[2].shape == (18 * 30,)


def test_pitch_post_filtered_streams_are_the_vocoders_output(voice: Voice) -> None:
    card = {**voice.card, "sampling": {"pitch_sync": True}, "postfilter": {"max_gain_db": 20, "comb_gain": 0.8}}
    combed = dataclasses.replace(voice, card=card)
    mels = [tiny_mel(14, seed=6), tiny_mel(9, seed=7)]

    async def body(engine: Engine) -> list[np.ndarray]:
        streams = [await engine.submit(SynthesisRequest(m, seed=i)) for i, m in enumerate(mels)]
        return list(await asyncio.gather(*(collect(s) for s in streams)))

    outs = run_engine(combed, body)
    for i, mel in enumerate(mels):
        vocoder = Vocoder(voice.model, voice.config, postfilter_db=20, pitch_sync=True, comb_gain=0.8)
        want = vocoder.vocode(mel, seed=i, block_samples=BLOCK)
        assert outs[i].shape == want.shape
        np.testing.assert_allclose(outs[i] / 32767.0, want / 32767.0, atol=2 / 32767, err_msg=f"stream {i}")
        no_comb = Vocoder(voice.model, voice.config, postfilter_db=20, pitch_sync=True).vocode(mel, seed=i)
        assert not np.array_equal(want, no_comb)  # the comb did act


class FailingOnce:
    """Sampler factory whose first sampler raises on its second block (after the warm-up)."""

    def __init__(self, voice: Voice) -> None:
        self.weights = extract_weights(voice.model)
        self.built = 0

    def __call__(self, device: torch.device) -> Sampler:
        self.built += 1
        inner = ReferenceSampler(self.weights)
        if self.built > 1:
            return inner
        calls = [0]

        class Broken:
            hidden_size, hop_length = inner.hidden_size, inner.hop_length

            def generate(self, state: SamplerState, cond: torch.Tensor, u: torch.Tensor) -> Any:
                calls[0] += 1
                if calls[0] >= 3:
                    raise RuntimeError("simulated device fault")
                return inner.generate(state, cond, u)

        return Broken()


def test_a_failing_worker_fails_its_streams_and_restarts(voice: Voice) -> None:
    factory = FailingOnce(voice)
    rec = Recorder()
    mel = tiny_mel(20, seed=5)

    async def body(engine: Engine) -> np.ndarray:
        doomed = await engine.submit(SynthesisRequest(mel, seed=1))
        with pytest.raises(WorkerFailedError, match="simulated device fault"):
            await collect(doomed)
        assert await engine.wait_ready(10)  # restarted
        assert engine.stats().workers[0].restarts == 1
        return await collect(await engine.submit(SynthesisRequest(mel, seed=1)))

    out = run_engine(voice, body, observer=rec, make_sampler=lambda v: factory)
    assert rec.restarts == ["cpu:0"] and factory.built == 2
    np.testing.assert_array_equal(out, solo(voice, mel, seed=1))


def test_a_request_past_its_deadline_is_cut_short_and_leaves_the_batch(voice: Voice) -> None:
    async def body(engine: Engine) -> tuple[int, int]:
        stream = await engine.submit(SynthesisRequest(tiny_mel(3000), seed=0))
        got = 0
        with pytest.raises(DeadlineExceededError):
            async for block in stream:
                got += block.shape[0]
        for _ in range(100):
            if engine.stats().active_streams == 0:
                break
            await asyncio.sleep(0.02)
        return got, engine.stats().active_streams

    got, active = run_engine(voice, body, request_timeout_s=0.3)
    assert 0 < got < 3000 * 30 and active == 0


def test_a_cancelled_stream_leaves_within_a_block(voice: Voice) -> None:
    rec = Recorder()

    async def body(engine: Engine) -> int:
        stream = await engine.submit(SynthesisRequest(tiny_mel(3000), seed=0))
        await stream.__anext__()
        n = len(rec.batches)
        stream.cancel()
        for _ in range(200):
            if engine.stats().active_streams == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.stats().active_streams == 0
        return len(rec.batches) - n

    blocks_after_cancel = run_engine(voice, body, observer=rec)
    assert blocks_after_cancel <= 2 and rec.active[-1] == 0


def test_admission_is_bounded(voice: Voice) -> None:
    async def body(engine: Engine) -> None:
        # unread, the first stream pauses after one block and cannot end (and give its place
        # back) before the third request comes, however fast the worker is
        first = await engine.submit(SynthesisRequest(tiny_mel(40), seed=0))
        second = await engine.submit(SynthesisRequest(tiny_mel(4), seed=1))  # the one waiting place
        with pytest.raises(QueueFullError):
            await engine.submit(SynthesisRequest(tiny_mel(4), seed=2))
        assert (await collect(first)).shape == (1200,)
        assert (await collect(second)).shape == (120,)

    run_engine(voice, body, max_batch=1, queue_size=1, max_unread_s=1e-9)


def test_invalid_features_are_refused_before_admission(voice: Voice) -> None:
    async def body(engine: Engine) -> None:
        with pytest.raises(ValueError, match="n_mels=8"):
            await engine.submit(SynthesisRequest(np.zeros((4, 5), np.float32), seed=0))
        with pytest.raises(ValueError, match="TTS_MAX_AUDIO_S"):
            await engine.submit(SynthesisRequest(tiny_mel(100), seed=0, max_samples=1000))
        assert engine.stats().queue_depth == 0 and engine.stats().active_streams == 0

    run_engine(voice, body)


def test_shutdown_drains_streams_in_flight_then_refuses(voice: Voice) -> None:
    mel = tiny_mel(40, seed=9)

    async def main() -> np.ndarray:
        engine = Engine(EngineConfig(block_samples=BLOCK), lambda: voice)
        with pytest.raises(EngineNotReadyError):
            await engine.submit(SynthesisRequest(mel, seed=0))  # not started
        await engine.start()
        await engine.wait_ready(10)
        stream = await engine.submit(SynthesisRequest(mel, seed=3))
        reading = asyncio.create_task(collect(stream))
        await engine.shutdown(drain_timeout_s=30)
        assert not engine.is_ready()
        with pytest.raises(EngineNotReadyError):
            await engine.submit(SynthesisRequest(mel, seed=0))
        assert not [t for t in threading.enumerate() if t.name.startswith("tts-worker")]
        return await reading

    np.testing.assert_array_equal(asyncio.run(main()), solo(voice, mel, seed=3))


def test_a_slow_reader_pauses_its_stream_without_holding_back_the_others(voice: Voice) -> None:
    """Backpressure: a stream whose client stops reading stays within max_unread; the others finish."""
    mel = tiny_mel(40, seed=5)  # 1,200 samples = 10 blocks
    unread_s = 2 * BLOCK / voice.config.features.sample_rate  # two blocks

    async def body(engine: Engine) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        slow = await engine.submit(SynthesisRequest(mel, seed=1))
        fast = await engine.submit(SynthesisRequest(mel, seed=2))
        fast_out = await collect(fast)  # the other stream completes while `slow` is not read at all
        await asyncio.sleep(0.2)
        held = slow._stream.unread  # type: ignore[attr-defined]
        first = await slow.__anext__()  # reading again resumes generation
        rest = await collect(slow)
        return held, fast_out, first, rest

    held, fast_out, first, rest = run_engine(voice, body, max_unread_s=unread_s)
    assert held == 2 * BLOCK, "the unread stream should stop exactly at its limit"
    assert fast_out.shape == (40 * 30,)
    np.testing.assert_array_equal(np.concatenate([first, rest]), solo(voice, mel, seed=1))


def test_a_sampler_the_device_cannot_run_fails_the_start_not_the_workers(voice: Voice) -> None:
    async def main() -> None:
        engine = Engine(EngineConfig(device="cpu", sampler="gpu"), lambda: voice)
        with pytest.raises(ValueError, match="TTS_SAMPLER=gpu runs on CUDA"):
            await engine.start()

    asyncio.run(main())
