"""Continuous batching: one sampler call per block advances every ready stream of a worker.

Streams join (:meth:`Scheduler.admit`) and leave (end, cancel, deadline) only at block
boundaries. Each :meth:`Scheduler.step`:

1. drops cancelled, ended and expired streams;
2. picks the streams whose next block can be generated (their conditioning has arrived);
3. stacks their state (B, H), conditioning windows (B, F, 3H) and their own uniform draws
   (B, n, 2), makes ONE ``sampler.generate`` call, and splits the new state back per stream;
4. pushes each stream's PCM block (n,) to its reader at once, and ends finished streams.

Because every stream draws from its own :class:`~models.samplers.base.UniformSource` and the
sampler is row-wise deterministic, a stream's audio does not depend on its batch mates.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from models.samplers.base import Sampler, SamplerState, draw_batch, stack_windows
from service.engine.protocol import DeadlineExceededError, EngineObserver
from service.engine.stream import Stream


class Scheduler:
    """The active streams of one device worker and the batched step over them.

    Args:
        sampler: any :class:`~models.samplers.base.Sampler`.
        device: where the sampler's inputs must live.
        block_samples: samples per step (n).
        max_batch: most streams in the batch.
        observer: receives ``batch(size)`` per sampler call.
        clock: monotonic time source (seconds).
    """

    def __init__(
        self,
        sampler: Sampler,
        device: torch.device,
        block_samples: int,
        max_batch: int,
        observer: EngineObserver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if block_samples < 1 or max_batch < 1:
            raise ValueError(f"block_samples ({block_samples}) and max_batch ({max_batch}) must be >= 1")
        self.sampler = sampler
        self.device = device
        self.block_samples = block_samples
        self.max_batch = max_batch
        self.observer = observer
        self.clock = clock
        self.active: list[Stream] = []

    @property
    def free_slots(self) -> int:
        return self.max_batch - len(self.active)

    def admit(self, streams: list[Stream]) -> None:
        """Streams join the batch (at a block boundary) with a fresh sampler state."""
        if len(streams) > self.free_slots:
            raise ValueError(f"{len(streams)} streams do not fit the {self.free_slots} free slots")
        for s in streams:
            if s.state is None:
                s.state = SamplerState.initial(1, self.sampler.hidden_size, self.device)
            self.active.append(s)

    def prune(self) -> int:
        """Drop streams that ended, were cancelled or ran past their deadline; returns how many were dropped."""
        now = self.clock()
        keep: list[Stream] = []
        for s in self.active:
            if not s.live:
                continue
            if s.expired(now):
                s.fail(DeadlineExceededError("request deadline exceeded; the stream was cut short"))
                continue
            total = s.total_samples
            if total is not None and s.position >= total:  # input ended on a block boundary
                s.end()
                continue
            keep.append(s)
        dropped = len(self.active) - len(keep)
        self.active = keep
        return dropped

    def step(self) -> int:
        """Advance every ready stream by one block; returns the batch size (0: none ready)."""
        self.prune()
        n = self.block_samples
        ready = [s for s in self.active if s.ready(n)]
        if not ready:
            return 0
        cond = stack_windows([s.window(n) for s in ready]).to(self.device)  # (B, F, 3H)
        uniforms = draw_batch([s.source for s in ready], n).to(self.device)  # (B, n, 2)
        state = SamplerState.concat([s.state for s in ready if s.state is not None])
        pcm, new_state = self.sampler.generate(state, cond, uniforms)  # pcm (B, n) int16
        pcm_np = pcm.cpu().numpy()
        self.observer.batch(len(ready))
        for i, s in enumerate(ready):
            keep = s.samples_left(n)
            s.state = new_state.select([i])
            s.position += n
            s.deliver(pcm_np[i, :keep].copy())
            total = s.total_samples
            if total is not None and s.position >= total:
                s.end()
        self.active = [s for s in self.active if s.live]  # finished streams leave at once
        return len(ready)

    def fail_all(self, error: BaseException) -> list[Stream]:
        """End every active stream with ``error`` (the worker failed or is stopping)."""
        failed = self.active
        self.active = []
        for s in failed:
            s.fail(error)
        return failed
