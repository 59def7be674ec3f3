"""The bounded admission queue between ``submit`` (event loop) and the device workers (threads).

Streams wait here until a worker has a free batch slot. The bound is on every stream admitted
and not yet finished (waiting or in a batch): at most ``slots + capacity``, where ``slots`` is
the batch room of all workers; so with ``capacity = 0`` a request is admitted only when a slot
is free. A full queue raises :class:`QueueFullError` at once (HTTP 429), it never blocks the
loop. A stream gives its place back (:meth:`AdmissionQueue.release`) when it ends, fails or is
cancelled.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from service.engine.protocol import EngineNotReadyError, QueueFullError
from service.engine.stream import Stream


class AdmissionQueue:
    """FIFO of admitted streams, shared by all workers of an engine.

    Args:
        capacity: streams that may wait beyond the batch slots.
        on_depth: called with the new depth after every change (any thread).
    """

    def __init__(self, capacity: int, on_depth: Callable[[int], None]) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.slots = 0  # batch room of all workers, set by the engine once they exist
        self._admitted = 0  # streams admitted and not yet released
        self._items: deque[Stream] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._on_depth = on_depth
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, wake: Callable[[], None]) -> None:
        """``wake()`` is called whenever a stream is put (workers busy with other streams)."""
        self._listeners.append(wake)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, stream: Stream) -> None:
        """Admit ``stream`` or raise.

        Raises:
            QueueFullError: ``slots + capacity`` streams are already admitted and unfinished.
            EngineNotReadyError: the queue is closed (shutting down).
        """
        with self._cond:
            if self._closed:
                raise EngineNotReadyError("the server is shutting down; retry on another instance")
            if self._admitted >= self.slots + self.capacity:
                raise QueueFullError(
                    f"{self._admitted} requests are in progress or waiting (limit {self.slots + self.capacity}); "
                    "retry shortly"
                )
            self._admitted += 1
            self._items.append(stream)
            depth = len(self._items)
            self._cond.notify()
        self._on_depth(depth)
        for wake in self._listeners:
            wake()

    def release(self) -> None:
        """One admitted stream finished (ended, failed or cancelled): its place is free again."""
        with self._cond:
            self._admitted = max(0, self._admitted - 1)

    @property
    def admitted(self) -> int:
        """Streams admitted and not yet released (waiting or in a batch)."""
        with self._cond:
            return self._admitted

    def take(self, max_n: int, timeout: float) -> list[Stream]:
        """Up to ``max_n`` streams in arrival order, waiting up to ``timeout`` s for the first."""
        if max_n <= 0:
            return []
        with self._cond:
            if not self._items and timeout > 0 and not self._closed:
                self._cond.wait(timeout)
            out = [self._items.popleft() for _ in range(min(max_n, len(self._items)))]
            depth = len(self._items)
        if out:
            self._on_depth(depth)
        return out

    def remove(self, stream: Stream) -> bool:
        """Take ``stream`` out if it is still waiting (a cancelled request)."""
        with self._cond:
            try:
                self._items.remove(stream)
            except ValueError:
                return False
            depth = len(self._items)
        self._on_depth(depth)
        return True

    def close(self) -> list[Stream]:
        """Refuse new streams; return (and forget) the ones still waiting."""
        with self._cond:
            self._closed = True
            out = list(self._items)
            self._items.clear()
            self._cond.notify_all()
        self._on_depth(0)
        return out

    def wake_all(self) -> None:
        """Wake every worker blocked in :meth:`take`."""
        with self._cond:
            self._cond.notify_all()
