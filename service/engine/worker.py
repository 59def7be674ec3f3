"""A device worker: one thread, one sampler, one scheduler loop.

The thread builds its sampler, warms it up (one tiny block), then loops: take waiting streams
into free batch slots, run one batched block, repeat. An exception from the sampler fails
every stream of this worker with :class:`WorkerFailedError` and the worker restarts itself
(new sampler, new warm-up) after a short back-off. Stopping is cooperative.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import torch

from models.samplers.base import Sampler
from service.engine.protocol import EngineNotReadyError, EngineObserver, WorkerFailedError
from service.engine.queue import AdmissionQueue
from service.engine.scheduler import Scheduler
from service.engine.subscale import SubscaleScheduler, is_subscale

log = logging.getLogger(__name__)

#: Builds a sampler on a device (called in the worker thread, again on each restart).
SamplerFactory = Callable[[torch.device], Sampler]
#: Generates one tiny block with a fresh sampler (raises if the sampler is broken).
WarmUp = Callable[[Sampler, torch.device], None]

IDLE_WAIT_S = 0.1  # how long an idle worker waits on the queue before re-checking stop
NOT_READY_WAIT_S = 0.05  # how long a worker whose streams all wait for input sleeps at most
RESTART_BACKOFF_S = (0.1, 0.5, 2.0, 5.0)  # successive restart delays


class DeviceWorker:
    """Owns a sampler on ``device`` and advances up to ``max_batch`` streams per block.

    Args:
        name: label in metrics and logs (``cpu:0``, ``cuda:1``).
        device: torch device of the sampler.
        make_sampler: builds the sampler (in this worker's thread).
        warm_up: runs one tiny block; the worker is up only afterwards.
        queue: shared admission queue.
        block_samples, max_batch: see :class:`Scheduler`.
        observer: engine events.
        on_active_change: called after the number of active streams changed.
    """

    def __init__(
        self,
        name: str,
        device: torch.device,
        make_sampler: SamplerFactory,
        warm_up: WarmUp,
        queue: AdmissionQueue,
        block_samples: int,
        max_batch: int,
        observer: EngineObserver,
        on_active_change: Callable[[], None],
    ) -> None:
        self.name = name
        self.device = device
        self.max_batch = max_batch
        self.block_samples = block_samples
        self.restarts = 0
        self._make_sampler = make_sampler
        self._warm_up = warm_up
        self._queue = queue
        self._observer = observer
        self._on_active_change = on_active_change
        self._scheduler: Scheduler | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._up = False
        self._thread = threading.Thread(target=self._run, name=f"tts-worker-{name}", daemon=True)
        queue.add_listener(self._wake.set)

    # -- control (event loop) ----------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end; streams still active fail with a shutting-down error."""
        self._stop.set()
        self._wake.set()
        self._queue.wake_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wake(self) -> None:
        """A stream of this worker changed (input arrived, cancelled): re-check without waiting."""
        self._wake.set()

    @property
    def up(self) -> bool:
        return self._up

    @property
    def active_count(self) -> int:
        sched = self._scheduler
        return 0 if sched is None else len(sched.active)

    # -- thread --------------------------------------------------------------------
    def _set_up(self, up: bool) -> None:
        if self._up != up:
            self._up = up
            self._observer.worker_up(self.name, up)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                sampler = self._make_sampler(self.device)
                self._warm_up(sampler, self.device)
                kind = SubscaleScheduler if is_subscale(sampler) else Scheduler
                self._scheduler = kind(sampler, self.device, self.block_samples, self.max_batch, self._observer)
                self._set_up(True)
                log.info("worker %s up (%s, max batch %d)", self.name, type(sampler).__name__, self.max_batch)
                self._loop(self._scheduler)
                failures = 0
            except Exception as exc:
                log.exception("worker %s failed; restarting", self.name)
                self._set_up(False)
                self._fail_active(WorkerFailedError(
                    f"the synthesis worker {self.name} failed ({type(exc).__name__}: {exc}); "
                    "it is being restarted, retry the request"
                ))
                self.restarts += 1
                self._observer.worker_restarted(self.name)
                self._stop.wait(RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)])
                failures += 1
        self._set_up(False)
        self._fail_active(EngineNotReadyError("the server is shutting down; the stream was cut short"))

    def _fail_active(self, error: BaseException) -> None:
        if self._scheduler is not None and self._scheduler.active:
            self._scheduler.fail_all(error)
            self._on_active_change()

    def _loop(self, sched: Scheduler) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            before = len(sched.active)
            if sched.free_slots > 0:
                new = self._queue.take(sched.free_slots, timeout=0.0 if sched.active else IDLE_WAIT_S)
                for s in new:
                    s.wake = self._wake.set
                    self._observer.admitted(max(0.0, time.monotonic() - s.submitted_at))
                sched.admit(new)
            size = sched.step()
            if len(sched.active) != before or size:
                self._on_active_change()
            if size == 0 and sched.active:
                self._wake.wait(NOT_READY_WAIT_S)
