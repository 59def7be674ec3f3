"""One request inside the engine, and the async iterator its HTTP response reads.

A :class:`Stream` is shared by three parties:

- the event loop appends its gate conditioning (one chunk per sentence) and may cancel it;
- one device worker thread owns its sampler state and position, reads conditioning windows
  and pushes each generated PCM block;
- the response reads those blocks through a :class:`StreamReader`.

Blocks cross from the worker thread to the event loop with ``loop.call_soon_threadsafe`` into
an ``asyncio.Queue``, so the worker never blocks on a slow client and the loop never blocks on
the worker. A stream of a voice served with the spectral-envelope post-filter
(:mod:`models.postfilter`) holds a :class:`~models.postfilter.StreamingPostFilter`: appended
chunks bring their log-mel frames as its targets, and the reader passes each block through it
on the event loop, then its tail at the end (the output lags the sampler by less than
``max(win_length, n_fft / 2)`` samples). Filtering on the reader's side keeps it off the
worker thread, which would otherwise hold every stream of its batch for it.

Backpressure: a stream holding ``max_unread`` or more generated samples that its reader has not
taken yet is not :meth:`Stream.ready`, so it sits out of the batch (keeping its slot and state)
until the reader catches up; taking a block wakes the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.audio import float_to_pcm, pcm_to_float
from models.comb import StreamingComb
from models.postfilter import StreamingPostFilter
from models.samplers.base import SamplerState, Uniforms, UniformSource, conditioning_window, window_frames
from models.samplers.pitch_sync import PitchSyncUniforms
from service.engine.protocol import DeadlineExceededError

_END = object()  # end-of-stream marker on the output queue
_ids = itertools.count(1)


class Stream:
    """Engine-side state of one utterance.

    Args:
        seed: seed of the stream's :class:`UniformSource`.
        hop: samples per conditioning frame.
        deadline: ``time.monotonic()`` after which the stream is dropped.
        loop: the event loop its reader runs on.
        max_unread: generated samples the reader may leave unread before the stream pauses
            (None: no limit).
        postfilter: the stream's post-filter (None: the sampler's blocks go out as they are);
            then every :meth:`append` must bring the chunk's log-mel frames.
        source: the stream's uniforms (None: a :class:`UniformSource` of ``seed``); with a
            :class:`~models.samplers.pitch_sync.PitchSyncUniforms` every :meth:`append` must
            bring the chunk's pitch periods.
        comb: the stream's pitch post-filter (:mod:`models.comb`), run by the reader before the
            envelope post-filter; then every :meth:`append` must bring the chunk's pitch periods.
    """

    def __init__(self, seed: int, hop: int, deadline: float, loop: asyncio.AbstractEventLoop,
                 max_unread: int | None = None, postfilter: StreamingPostFilter | None = None,
                 source: Uniforms | None = None, comb: StreamingComb | None = None) -> None:
        if max_unread is not None and max_unread < 1:
            raise ValueError(f"max_unread must be >= 1 sample or None, got {max_unread}")
        self.id = next(_ids)
        self.seed = seed
        self.hop = hop
        self.deadline = deadline
        self.submitted_at = time.monotonic()
        self.source: Uniforms = source if source is not None else UniformSource(seed)
        # worker-thread state
        self.state: SamplerState | None = None
        self.position = 0
        self.wake: Callable[[], None] = _noop
        # shared state, guarded by _lock
        self._lock = threading.Lock()
        self._gates: Tensor | None = None  # (T, 3H) float32 on CPU
        self._cuts: list[int] = []  # frames received at the end of each appended chunk
        self._final = False
        self._closed = False  # a terminal item (end or error) was queued
        self._cancelled = False
        self.max_unread = max_unread
        self._unread = 0  # samples delivered and not yet taken by the reader
        # output side
        self._loop = loop
        self.output: asyncio.Queue[Any] = asyncio.Queue()
        self.on_cancel: Callable[[Stream], None] = _noop_stream
        self.on_release: Callable[[], None] = _noop  # called once, at the first of end/fail/cancel
        self._released = False
        self.postfilter = postfilter  # fed and read on the event loop only (append, the reader)
        self.comb = comb  # likewise

    # -- input (event loop) ----------------------------------------------------------
    def append(self, gates: Tensor, periods: np.ndarray | None = None, *, final: bool,
               mel: np.ndarray | None = None) -> None:
        """Add frames (T_k, 3H) of gate conditioning; ``final`` marks the last chunk.

        ``periods`` (T_k,): the chunk's pitch periods in samples, 0 where unvoiced
        (:meth:`models.pitch.MelPitchTracker.periods`; required with pitch-synchronous uniforms,
        ignored without). ``mel`` (T_k, n_mels): the chunk's log-mel frames, the post-filter's
        targets (required with a post-filter, ignored without).
        """
        pitched = isinstance(self.source, PitchSyncUniforms) or self.comb is not None
        if pitched and (periods is None or periods.shape[0] != gates.shape[0]):
            raise ValueError("a stream with pitch-synchronous noise or a pitch post-filter needs each chunk's "
                             "pitch periods, one per gate frame")
        if periods is not None and isinstance(self.source, PitchSyncUniforms):
            self.source.add_periods(periods)  # before the frames: the worker never draws past the periods
        if periods is not None and self.comb is not None:
            self.comb.add_periods(periods)
        if self.postfilter is not None:
            if mel is None or mel.shape[0] != gates.shape[0]:
                raise ValueError("a post-filtered stream needs each chunk's log-mel frames, one per gate frame")
            self.postfilter.add_target(mel)
        with self._lock:
            self._gates = gates if self._gates is None else torch.cat([self._gates, gates])  # (T, 3H)
            self._cuts.append(int(self._gates.shape[0]))
            self._final = self._final or final
        self.wake()

    def finish_input(self) -> None:
        """No more chunks will come."""
        with self._lock:
            self._final = True
        self.wake()

    @property
    def frames(self) -> int:
        """Frames of conditioning received so far."""
        with self._lock:
            return 0 if self._gates is None else int(self._gates.shape[0])

    @property
    def total_samples(self) -> int | None:
        """Samples of the whole utterance, once its input is final (else None)."""
        with self._lock:
            if not self._final:
                return None
            return 0 if self._gates is None else int(self._gates.shape[0]) * self.hop

    # -- worker thread ---------------------------------------------------------------
    @property
    def live(self) -> bool:
        """Neither cancelled nor ended: the worker should keep it in its batch."""
        return not (self._cancelled or self._closed)

    def ready(self, n: int) -> bool:
        """Whether the next block of ``n`` samples can be generated now.

        Not while the reader has ``max_unread`` samples or more still to take. Otherwise a
        stream whose input is final is ready until its last sample; one whose input is still
        coming needs the frames the block reads (including the next frame for interpolation),
        so the audio does not depend on when later sentences arrive.
        """
        if self.backpressured():
            return False  # the reader is behind: wait for it
        with self._lock:
            t = 0 if self._gates is None else int(self._gates.shape[0])
            if self._final:
                return self.position < t * self.hop
            return t >= window_frames(self.position, n, self.hop)[1]

    def backpressured(self) -> bool:
        """Whether the reader has ``max_unread`` samples or more still to take."""
        with self._lock:
            return self.max_unread is not None and self._unread >= self.max_unread

    def chunk(self, k: int) -> Tensor | None:
        """(T_k, 3H) the frames of appended chunk ``k`` (a sentence of text), or None until it came."""
        with self._lock:
            if k >= len(self._cuts):
                return None
            assert self._gates is not None
            return self._gates[(self._cuts[k - 1] if k else 0) : self._cuts[k]]

    @property
    def chunks(self) -> tuple[int, bool]:
        """Chunks appended so far, and whether that is all of them (the input is final)."""
        with self._lock:
            return len(self._cuts), self._final

    def window(self, n: int) -> Tensor:
        """(F, 3H) conditioning the next block of ``n`` samples reads."""
        with self._lock:
            assert self._gates is not None  # ready() was checked
            return conditioning_window(self._gates, self.position, n, self.hop)

    def samples_left(self, n: int) -> int:
        """How many of the next ``n`` generated samples belong to the utterance."""
        total = self.total_samples
        return n if total is None else max(0, min(n, total - self.position))

    def expired(self, now: float) -> bool:
        return now > self.deadline

    # -- output (any thread) ---------------------------------------------------------
    def _put(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            self._loop.call_soon_threadsafe(self.output.put_nowait, item)

    def deliver(self, pcm: np.ndarray) -> None:
        """Queue one generated int16 PCM block (n,) for the reader."""
        if not self._closed:
            with self._lock:
                self._unread += len(pcm)
            self._put(pcm)

    def taken(self, n: int) -> None:
        """The reader took a block of ``n`` samples (event loop); wakes a worker waiting on it."""
        with self._lock:
            was_full = self.max_unread is not None and self._unread >= self.max_unread
            self._unread -= n
        if was_full:
            self.wake()

    @property
    def unread(self) -> int:
        """Generated samples the reader has not taken yet."""
        with self._lock:
            return self._unread

    def filtered(self, pcm: np.ndarray) -> np.ndarray:
        """A delivered block through the post-filter (the reader calls it): the int16 samples now
        final, maybe none; ``pcm`` itself without a post-filter."""
        if self.postfilter is None and self.comb is None:
            return pcm
        out = pcm_to_float(pcm)
        if self.comb is not None:
            out = self.comb.push(out)
        if self.postfilter is not None:
            out = self.postfilter.push(out)
        return float_to_pcm(out)

    def filtered_tail(self) -> np.ndarray:
        """The post-filter's last int16 samples once the stream ended (empty without one)."""
        if self.postfilter is None:
            return np.zeros(0, dtype=np.int16)
        return float_to_pcm(self.postfilter.flush())

    def end(self) -> None:
        """Queue the end of the stream (after every block)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._put(_END)
        self._release()
        self.wake()

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error`` (raised by the reader after the blocks before it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._put(error)
        self._release()
        self.wake()

    def cancel(self) -> None:
        """The reader is gone: drop the stream at the next block boundary."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
        self.on_cancel(self)
        self._release()
        self.wake()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self.on_release()

    @property
    def cancelled(self) -> bool:
        return self._cancelled


class StreamReader:
    """The :class:`~service.engine.protocol.AudioStream` of one :class:`Stream`.

    Yields int16 PCM blocks (n,); raises the stream's error, or
    :class:`DeadlineExceededError` when nothing ends the stream before its deadline.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self.seed = stream.seed
        self._done = False

    def __aiter__(self) -> StreamReader:
        return self

    async def __anext__(self) -> np.ndarray:
        s = self._stream
        while True:
            if self._done:
                raise StopAsyncIteration
            try:
                async with asyncio.timeout(max(0.0, s.deadline - time.monotonic())):
                    item = await s.output.get()
            except TimeoutError:
                self._done = True
                s.cancel()
                raise DeadlineExceededError("request deadline exceeded before the audio was complete") from None
            if item is _END:
                self._done = True
                tail = s.filtered_tail()
                if tail.size:
                    return tail
                raise StopAsyncIteration
            if isinstance(item, BaseException):
                self._done = True
                raise item
            s.taken(len(item))
            out = s.filtered(item)
            if out.size:
                return out

    def cancel(self) -> None:
        """Leave the batch at the next block boundary; iteration stops."""
        self._done = True
        self._stream.cancel()

    async def aclose(self) -> None:
        if not self._done:
            self.cancel()

    @property
    def finished(self) -> bool:
        return self._done


def _noop() -> None:
    pass


def _noop_stream(_: Stream) -> None:
    pass

