"""The synthesis engine: admission, feature conditioning and the device workers.

:class:`Engine` implements :class:`~service.engine.protocol.EngineClient`. ``submit``
(on the event loop) validates features, admits the request into the bounded
:class:`~service.engine.queue.AdmissionQueue`, computes the gate conditioning
(``model.gate_conditioning``, (T, n_mels) -> (T, 3H)) in a thread pool, and returns a reader.
For a request whose features come in chunks (text, one sentence at a time) a feeder task
conditions each later chunk while the earlier ones are being generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.comb import StreamingComb
from models.features import validate_features
from models.pitch import MelPitchTracker
from models.postfilter import StreamingPostFilter
from models.samplers.pitch_sync import PitchSyncUniforms
from models.voices import Voice
from service.engine.devices import (
    check_sampler_device,
    gpu_subscale_available,
    resolve_devices,
    sampler_factory,
    warm_up_block,
)
from service.engine.protocol import (
    EngineNotReadyError,
    EngineObserver,
    EngineStats,
    InputUnavailableError,
    NullObserver,
    SynthesisRequest,
    VoiceInfo,
    WorkerStats,
)
from service.engine.queue import AdmissionQueue
from service.engine.stream import Stream, StreamReader
from service.engine.worker import DeviceWorker, SamplerFactory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """Engine knobs (the service builds it from its settings).

    Attributes:
        device: ``auto``, ``cpu`` or ``cuda``.
        workers: CPU workers (one per GPU on CUDA).
        sampler: sampler kind (see :mod:`service.engine.devices`).
        max_batch: streams per worker batch.
        block_samples: samples per block (n).
        queue_size: streams that may wait beyond the free batch slots.
        request_timeout_s: deadline of a request from submission (s).
        torch_threads: torch intra-op threads (0: leave as is).
        max_unread_s: seconds of generated audio a stream may hold unread by its client
            before it sits out of the batch until the client catches up (0: no limit).
    """

    device: str = "cpu"
    workers: int = 1
    sampler: str = "auto"
    max_batch: int = 16
    block_samples: int = 2400
    queue_size: int = 64
    request_timeout_s: float = 300.0
    torch_threads: int = 0
    max_unread_s: float = 30.0


class Engine:
    """Continuous-batching synthesis over one voice and one worker per device.

    Args:
        config: engine knobs.
        load_voice: returns the voice to serve (called once, in a thread, by :meth:`start`).
        observer: receives engine events (metrics).
        make_sampler: overrides the sampler factory (tests inject failing samplers).
    """

    def __init__(
        self,
        config: EngineConfig,
        load_voice: Callable[[], Voice],
        observer: EngineObserver | None = None,
        make_sampler: Callable[[Voice], SamplerFactory] | None = None,
    ) -> None:
        self.config = config
        self._load_voice = load_voice
        self._observer: EngineObserver = observer or NullObserver()
        self._make_sampler = make_sampler or (lambda v: sampler_factory(v, config.sampler, config.workers))
        self._voice: Voice | None = None
        self._info: VoiceInfo | None = None
        self._workers: list[DeviceWorker] = []
        self._queue = AdmissionQueue(config.queue_size, self._observer.queue_depth)
        self._pool: ThreadPoolExecutor | None = None
        self._pitch: MelPitchTracker | None = None  # set at start for pitch-synchronous noise or a pitch post-filter
        self._feeders: dict[int, asyncio.Task[None]] = {}  # stream id -> feeder task
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Load the voice (in a thread) and start the workers; they warm up in the background."""
        if self.config.torch_threads > 0:
            torch.set_num_threads(self.config.torch_threads)
        devices = resolve_devices(self.config.device, self.config.workers)
        voice = await asyncio.to_thread(self._load_voice)
        voice.model.eval()
        if voice.config.subscale is not None and self.config.device == "auto" and not gpu_subscale_available():
            devices = resolve_devices("cpu", self.config.workers)  # no CUDA or no Triton: the CPU subscale samplers
        for _, device in devices:
            check_sampler_device(voice, self.config.sampler, device)
        self._voice = voice
        cfg = voice.config
        self._info = VoiceInfo(
            name=voice.name,
            trained=voice.trained,
            features=cfg.features,
            hidden_size=cfg.model.hidden_size,
            card=dict(voice.card),
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts-cond")
        self._pitch = MelPitchTracker(cfg.features) if voice.pitch_sync or voice.comb_gain else None
        if self._pitch is not None:  # compile the tracker now, not in the first request's time to first audio
            await asyncio.to_thread(self._pitch.periods, np.zeros((2, cfg.features.n_mels), dtype=np.float32))
        make = await asyncio.to_thread(self._make_sampler, voice)
        warm = await asyncio.to_thread(
            warm_up_block, voice, min(self.config.block_samples, cfg.features.hop_length), self.config.max_batch
        )
        for name, device in devices:
            self._observer.worker_up(name, False)
            worker = DeviceWorker(
                name, device, make, warm, self._queue, self.config.block_samples,
                self.config.max_batch, self._observer, self._active_changed,
            )
            self._workers.append(worker)
        self._queue.slots = sum(w.max_batch for w in self._workers)
        for worker in self._workers:
            worker.start()
        post = "off" if voice.postfilter_db is None else f"{voice.postfilter_db:g} dB"
        log.info("engine started: voice %r (trained=%s, T=%g, post-filter %s, pitch-synchronous noise %s, "
                 "pitch post-filter gain %g), workers %s", voice.name, voice.trained, voice.temperature, post,
                 "on" if voice.pitch_sync else "off", voice.comb_gain, [w.name for w in self._workers])

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until :meth:`is_ready` (or ``timeout`` s); returns readiness."""
        end = time.monotonic() + timeout
        while not self.is_ready() and time.monotonic() < end:
            await asyncio.sleep(0.01)
        return self.is_ready()

    async def shutdown(self, drain_timeout_s: float) -> None:
        """Stop admitting, let streams finish for up to ``drain_timeout_s``, then stop the workers."""
        self._closing = True
        end = time.monotonic() + drain_timeout_s
        while self._queue.admitted and time.monotonic() < end:
            await asyncio.sleep(0.02)
        for s in self._queue.close():
            s.fail(EngineNotReadyError("the server is shutting down; the request was not started"))
        for task in list(self._feeders.values()):
            task.cancel()
        for w in self._workers:
            w.stop()
        for w in self._workers:
            await asyncio.to_thread(w.join, 10.0)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        log.info("engine stopped")

    # -- EngineClient ----------------------------------------------------------------
    def is_ready(self) -> bool:
        return self._voice is not None and not self._closing and any(w.up for w in self._workers)

    @property
    def voice(self) -> VoiceInfo:
        if self._info is None:
            raise EngineNotReadyError("the voice is not loaded yet")
        return self._info

    def stats(self) -> EngineStats:
        return EngineStats(
            ready=self.is_ready(),
            queue_depth=len(self._queue),
            active_streams=self._active_total(),
            workers=tuple(WorkerStats(w.name, w.up, w.restarts, w.active_count) for w in self._workers),
        )

    async def submit(self, request: SynthesisRequest) -> StreamReader:
        """See :meth:`service.engine.protocol.EngineClient.submit`."""
        if not self.is_ready() or self._voice is None:
            raise EngineNotReadyError("the voice is still loading or the server is shutting down; retry shortly")
        first: np.ndarray | None = None
        if isinstance(request.features, np.ndarray):
            first = self._validate(request.features, request.max_samples, 0)
        loop = asyncio.get_running_loop()
        features = self._voice.config.features
        unread_s = self.config.max_unread_s
        post_db = self._voice.postfilter_db
        stream = Stream(request.seed, features.hop_length, time.monotonic() + self.config.request_timeout_s, loop,
                        max(1, round(unread_s * features.sample_rate)) if unread_s > 0 else None,
                        StreamingPostFilter(features, post_db) if post_db is not None else None,
                        PitchSyncUniforms(request.seed, features.hop_length, self._pitch.max_period)
                        if self._pitch is not None and self._voice.pitch_sync else None,
                        StreamingComb(features.hop_length, self._voice.comb_gain, self._pitch.max_period)
                        if self._pitch is not None and self._voice.comb_gain else None)
        stream.on_cancel = self._on_cancel
        stream.on_release = self._queue.release
        self._queue.put(stream)
        try:
            if first is not None:
                stream.append(*await self._condition(first), final=True, mel=first)
            else:
                assert not isinstance(request.features, np.ndarray)
                chunks = aiter(request.features)
                try:
                    mel = await anext(chunks)
                except StopAsyncIteration:
                    raise ValueError("the input produced no audio features; send non-empty input") from None
                mel = self._validate(mel, request.max_samples, 0)
                stream.append(*await self._condition(mel), final=False, mel=mel)
                task = asyncio.create_task(self._feed(stream, chunks, request.max_samples, mel.shape[0]))
                self._feeders[stream.id] = task
        except BaseException:
            stream.cancel()
            raise
        return StreamReader(stream)

    # -- internals -------------------------------------------------------------------
    def _validate(self, mel: np.ndarray, max_samples: int | None, frames_before: int) -> np.ndarray:
        assert self._voice is not None
        feats = self._voice.config.features
        out = validate_features(mel, feats)  # (T, n_mels) float32
        if max_samples is not None and (frames_before + out.shape[0]) * feats.hop_length > max_samples:
            secs = (frames_before + out.shape[0]) * feats.hop_length / feats.sample_rate
            raise ValueError(
                f"the utterance would last {secs:.1f} s, more than the {max_samples / feats.sample_rate:.1f} s "
                "this server allows (TTS_MAX_AUDIO_S); split it into shorter requests"
            )
        return out

    async def _condition(self, mel: np.ndarray) -> tuple[Tensor, np.ndarray | None]:
        """(T, n_mels) -> (T, 3H) gate conditioning and, with pitch-synchronous sampling or a pitch
        post-filter, the (T,) pitch periods of the frames (else None), computed in the conditioning
        thread."""
        voice, pool, pitch = self._voice, self._pool, self._pitch
        assert voice is not None and pool is not None

        def run() -> tuple[Tensor, np.ndarray | None]:
            with torch.no_grad():
                gates = voice.model.gate_conditioning(torch.from_numpy(mel).unsqueeze(0))[0].contiguous()
            return gates, None if pitch is None else pitch.periods(mel)

        return await asyncio.get_running_loop().run_in_executor(pool, run)

    async def _feed(self, stream: Stream, chunks: AsyncIterator[np.ndarray], max_samples: int | None,
                    frames: int) -> None:
        """Condition the later chunks of a stream as they come; then mark its input final."""
        try:
            async for mel in chunks:
                if not stream.live:
                    return
                mel = self._validate(mel, max_samples, frames)
                frames += mel.shape[0]
                stream.append(*await self._condition(mel), final=False, mel=mel)
            stream.finish_input()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("stream %d: input failed mid-stream: %s", stream.id, exc)
            stream.fail(InputUnavailableError(f"the rest of the input could not be processed: {exc}"))
        finally:
            self._feeders.pop(stream.id, None)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _on_cancel(self, stream: Stream) -> None:
        """The reader left (event loop): forget the stream if it still waits, stop feeding it."""
        self._queue.remove(stream)
        task = self._feeders.pop(stream.id, None)
        if task is not None:
            task.cancel()

    def _active_total(self) -> int:
        return sum(w.active_count for w in self._workers)

    def _active_changed(self) -> None:
        self._observer.active_streams(self._active_total())
