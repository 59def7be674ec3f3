"""Serving a Subscale WaveRNN voice: the scheduler and warm-up for subscale samplers.

A subscale sampler (:mod:`models.samplers.subscale`, :mod:`models.samplers.subscale_cpu`)
folds one utterance into B sub-tensors and runs them as its batch, so it advances one stream
per call, and it needs the utterance's length (all of its conditioning frames) before the
first step. :class:`SubscaleScheduler` therefore

- keeps a stream waiting until its input is final (a text request streams once every
  sentence is rendered, not sentence by sentence);
- per block, advances each ready stream by ``block_samples // B`` global steps (about
  ``block_samples`` samples) in one call, the stream's own B sub-tensors being the batch;
- hands over the samples that became final: the first ones after the declared lag of
  ``(B - 1) * F`` steps (:func:`models.subscale.subscale_lag_samples`), then about a block per
  call. Streams keep their own :class:`~models.samplers.base.UniformSource`, so a stream's audio
  equals :func:`models.samplers.subscale.generate_utterance` with that seed.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from models.samplers.subscale import SubscaleState
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


class SubscaleScheduler(Scheduler):
    """The active streams of a worker serving a subscale voice (see the module docstring)."""

    def __init__(self, sampler: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sampler, *args, **kwargs)
        self.sub_sampler: SubscaleSampler = sampler
        self.factor = int(sampler.sub.factor)
        self._utterances: dict[int, tuple[SubscaleState, Tensor, Tensor, int]] = {}

    def admit(self, streams: list[Stream]) -> None:
        if len(streams) > self.free_slots:
            raise ValueError(f"{len(streams)} streams do not fit the {self.free_slots} free slots")
        self.active.extend(streams)

    def prune(self) -> int:
        dropped = super().prune()
        live = {s.id for s in self.active}
        for sid in [k for k in self._utterances if k not in live]:
            del self._utterances[sid]
        return dropped

    def _start(self, s: Stream) -> tuple[SubscaleState, Tensor, Tensor, int]:
        gates = s.all_gates()  # (T, 3H)
        state = self.sub_sampler.initial_state(int(gates.shape[0]))
        steps = state.steps_per_subtensor
        uniforms = s.source.draw(steps * self.factor)  # (T_sub * B, 2), original sample order
        return state, gates, uniforms, total_steps(self.factor, int(self.sub_sampler.sub.horizon), steps)

    def step(self) -> int:
        """Advance every stream whose input is final by one block; returns how many advanced."""
        self.prune()
        n = self.block_samples
        ready = [s for s in self.active if s.total_samples is not None and s.ready(n)]
        if not ready:
            return 0
        n_steps = max(1, n // self.factor)
        for s in ready:
            entry = self._utterances.get(s.id) or self._start(s)
            state, gates, uniforms, last = entry
            with torch.no_grad():
                pcm, state = self.sub_sampler.generate(state, gates, uniforms, n_steps)  # (m,) int16, m >= 0
            self._utterances[s.id] = (state, gates, uniforms, last)
            if pcm.numel():
                s.position += int(pcm.shape[0])
                s.deliver(pcm.numpy().copy())
            if state.step >= last:
                s.end()
                del self._utterances[s.id]
        self.observer.batch(len(ready))
        self.active = [s for s in self.active if s.live]
        return len(ready)

    def fail_all(self, error: BaseException) -> list[Stream]:
        self._utterances.clear()
        return super().fail_all(error)
