"""models.stop: the first SIGINT/SIGTERM asks a job to stop; a second one acts as usual."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from models.stop import StopSignals


def test_first_signal_is_recorded_second_acts_as_usual() -> None:
    # Python's own Ctrl-C handler, whatever the test run inherited: a shell starts background jobs
    # with SIGINT ignored, and then a second Ctrl-C would (rightly) be ignored too
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        with StopSignals() as stop:
            assert stop.received is None
            os.kill(os.getpid(), signal.SIGTERM)  # would end the test run without the block
            time.sleep(0.01)
            assert stop.received is signal.SIGTERM
            with pytest.raises(KeyboardInterrupt):  # a second signal (here Ctrl-C): as without the block
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_outside_the_main_thread_it_changes_nothing() -> None:
    seen: list[object] = []

    def work() -> None:
        with StopSignals() as stop:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(stop.received)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [before, None]
