"""Serving a Subscale WaveRNN voice: the scheduler and warm-up for subscale samplers.

A subscale sampler (:mod:`models.samplers.subscale`, :mod:`models.samplers.subscale_cpu`)
folds one utterance into B sub-tensors and runs them as its batch, so it advances one stream
per call, and it needs the utterance's length (all of its conditioning frames) before the
first step. :class:`SubscaleScheduler` therefore folds each appended chunk of a stream on its
own: the text path appends one chunk per sentence, so a text request streams sentence by
sentence, its first sentence starting while the frontend still renders the next ones.

- Chunk ``k`` of a stream is an utterance of its own (zero state, silence before it) that
  starts once chunk ``k`` has arrived and chunk ``k - 1`` is finished; a stream with no chunk
  to run sits out of the batch.
- Per block, each ready stream advances by ``block_samples // B`` global steps (about
  ``block_samples`` samples) in one call, the chunk's B sub-tensors being the batch.
- It hands over the samples that became final: the first ones of each chunk after the
  declared lag of ``(B - 1) * F`` steps (:func:`models.subscale.subscale_lag_samples`), then
  about a block per call.

Each chunk draws ``T * B`` uniforms (``T = ceil(L / B)`` steps for its ``L`` samples) from the
stream's own :class:`~models.samplers.base.UniformSource` when it starts, so a stream's audio
equals the chunks' :func:`models.samplers.subscale.generate_utterance` outputs with those
consecutive draws, joined (see :func:`offline_chunks`), whatever the block size and batch mates.
Sentences begin and end in the frontend's silence, where the fresh state of the next chunk
starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from models.samplers.base import UniformSource
from models.samplers.subscale import SubscaleState, generate_utterance
from models.subscale import total_steps
from service.engine.scheduler import Scheduler
from service.engine.stream import Stream


class SubscaleSampler(Protocol):
    """What the engine needs of a subscale sampler (both subscale samplers have it)."""

    hidden_size: int
    hop_length: int
    sub: Any

    def initial_state(self, frames: int) -> SubscaleState: ...

    def generate(self, state: SubscaleState, gates: Tensor, uniforms: Tensor,
                 n_steps: int) -> tuple[Tensor, SubscaleState]: ...


def is_subscale(sampler: object) -> bool:
    """Whether ``sampler`` is a subscale sampler (per-utterance state, ``n_steps`` blocks)."""
    return hasattr(sampler, "initial_state") and hasattr(sampler, "sub")


@dataclass
class _Chunk:
    """The chunk a stream is generating: its index, sampler state, frames, draws and last step."""

    index: int
    state: SubscaleState
    gates: Tensor
    uniforms: Tensor
    last: int


class SubscaleScheduler(Scheduler):
    """The active streams of a worker serving a subscale voice (see the module docstring)."""

    def __init__(self, sampler: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sampler, *args, **kwargs)
        self.sub_sampler: SubscaleSampler = sampler
        self.factor = int(sampler.sub.factor)
        self._running: dict[int, _Chunk] = {}  # stream id -> the chunk it is generating
        self._next: dict[int, int] = {}  # stream id -> the chunk it starts next

    def admit(self, streams: list[Stream]) -> None:
        if len(streams) > self.free_slots:
            raise ValueError(f"{len(streams)} streams do not fit the {self.free_slots} free slots")
        self.active.extend(streams)

    def prune(self) -> int:
        dropped = super().prune()
        live = {s.id for s in self.active}
        for table in (self._running, self._next):
            for sid in [k for k in table if k not in live]:
                del table[sid]
        return dropped

    def _current(self, s: Stream) -> _Chunk | None:
        """The chunk ``s`` generates now (starting the next one if it has come), or None."""
        chunk = self._running.get(s.id)
        if chunk is not None:
            return chunk
        k = self._next.get(s.id, 0)
        gates = s.chunk(k)
        if gates is None:
            return None
        state = self.sub_sampler.initial_state(int(gates.shape[0]))
        steps = state.steps_per_subtensor
        uniforms = s.source.draw(steps * self.factor)  # (T * B, 2), original sample order
        chunk = _Chunk(k, state, gates, uniforms, total_steps(self.factor, int(self.sub_sampler.sub.horizon), steps))
        self._running[s.id] = chunk
        return chunk

    def step(self) -> int:
        """Advance every stream that has a chunk to run by one block; returns how many advanced."""
        self.prune()
        n_steps = max(1, self.block_samples // self.factor)
        advanced = 0
        for s in self.active:
            if s.backpressured():
                continue
            chunk = self._current(s)
            if chunk is None:
                continue
            with torch.no_grad():
                pcm, chunk.state = self.sub_sampler.generate(chunk.state, chunk.gates, chunk.uniforms, n_steps)
            advanced += 1
            if pcm.numel():
                s.position += int(pcm.shape[0])
                s.deliver(pcm.numpy().copy())
            if chunk.state.step >= chunk.last:
                del self._running[s.id]
                self._next[s.id] = chunk.index + 1
                count, final = s.chunks
                if final and chunk.index + 1 >= count:
                    s.end()
        if advanced:
            self.observer.batch(advanced)
        self.active = [s for s in self.active if s.live]
        return advanced

    def fail_all(self, error: BaseException) -> list[Stream]:
        self._running.clear()
        self._next.clear()
        return super().fail_all(error)


def offline_chunks(sampler: Any, chunks: list[Tensor], seed: int) -> np.ndarray:
    """What a stream of seed ``seed`` whose input came as ``chunks`` (each (T_k, 3H)) plays, without
    the engine: each chunk generated whole with the next ``T * B`` draws of its source."""
    source = UniformSource(seed)
    out = []
    for gates in chunks:
        steps = sampler.initial_state(int(gates.shape[0])).steps_per_subtensor
        out.append(generate_utterance(sampler, gates, source.draw(steps * int(sampler.sub.factor))))
    return np.concatenate(out).astype(np.int16)
