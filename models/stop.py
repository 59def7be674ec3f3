"""Stop a long job cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, a container runtime, Kubernetes).

While a :class:`StopSignals` block is active, the first of these signals does not kill the process:
it is recorded in ``received`` and the job (training) finishes its current step, writes a
checkpoint and returns, so that no work since the last periodic checkpoint is lost. A second
signal acts as it would have without the block (``KeyboardInterrupt`` for SIGINT, termination for
SIGTERM), for a job that must go now. Handlers can only be installed from the main thread; in any
other thread the block does nothing and the signals keep their usual effect.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager that turns the first SIGINT/SIGTERM into a request to stop."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second signal: behave as without this block
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signal.Signals(signum)
