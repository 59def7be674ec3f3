"""One long-lived Festival interpreter driven through its stdin and stdout.

``festival --pipe`` reads Scheme forms from stdin and prints nothing but what the forms print.
Its stdout is block-buffered on a pipe, so it runs under ``stdbuf -oL`` (line-buffered).
Every request is wrapped so that it ends with a unique marker line, ``@@FE<n> OK`` or
``@@FE<n> ERR`` (a Scheme error caught by ``unwind-protect``); the lines printed before the
marker are the answer. A reader thread moves stdout lines into a queue so a request can wait
with a timeout; a second thread drains stderr (Festival's error messages) into a short
history that error messages quote.

Not thread-safe on its own: :class:`~models.frontend.festival.FestivalFrontend` hands each
process to one caller at a time.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_MARKER = "@@FE"


class ProcessDied(RuntimeError):
    """Festival exited (or closed its stdout) before answering."""


class ProcessHung(RuntimeError):
    """Festival did not answer within the timeout; the process has been killed."""


class SchemeError(RuntimeError):
    """The request raised a Scheme error inside Festival (the process is still usable)."""


class FestivalProcess:
    """A ``festival --pipe`` child process with request/answer framing.

    Args:
        command: the argv that starts Festival in pipe mode.
        init: Scheme forms run once after start (voice selection, helper definitions).
        cwd: working directory of the child.
    """

    def __init__(self, command: list[str], init: str, cwd: Path) -> None:
        self.command = command
        self.init = init
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._seq = 0

    @property
    def pid(self) -> int | None:
        """The child's process id, or None when not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float) -> None:
        """Start the child and run ``init`` (raises ProcessDied/ProcessHung/SchemeError)."""
        self.kill()
        self._lines = queue.Queue()
        self._stderr.clear()
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(self.cwd),
            start_new_session=True,  # its own process group: killed as a whole
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        threading.Thread(target=self._pump, args=(self._proc.stdout, self._lines), daemon=True).start()
        threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True).start()
        started = time.monotonic()
        self.call(self.init, timeout_s)
        log.info("Festival process %d ready in %.2f s", self._proc.pid, time.monotonic() - started)

    def call(self, body: str, timeout_s: float) -> list[str]:
        """Evaluate Scheme ``body``; return the lines it printed (without the marker).

        Raises:
            ProcessDied: the process exited or its pipes closed.
            ProcessHung: no answer within ``timeout_s``; the process was killed.
            SchemeError: the forms raised a Scheme error (message from Festival's stderr).
        """
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise ProcessDied("the Festival process is not running")
        self._seq += 1
        tag = f"{_MARKER}{self._seq}"
        form = f'(unwind-protect (begin {body}\n(format t "\\n{tag} OK\\n")) (format t "\\n{tag} ERR\\n"))\n'
        self._stderr.clear()
        try:
            proc.stdin.write(form.encode("ascii"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            self.kill()
            raise ProcessDied(f"writing to Festival failed ({err})") from err
        deadline = time.monotonic() + timeout_s
        out: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pid = proc.pid
                self.kill()
                raise ProcessHung(f"Festival (pid {pid}) did not answer within {timeout_s:g} s") from None
            if line is None:
                code = proc.poll()
                self.kill()
                raise ProcessDied(f"Festival exited (code {code}); stderr: {self.stderr_tail()}")
            if line.startswith(tag):
                if line.endswith("OK"):
                    return out
                time.sleep(0.01)  # let the stderr thread catch the message
                raise SchemeError(self.stderr_tail() or "unknown Scheme error")
            if line.startswith(_MARKER):
                continue  # a marker of an earlier request cannot appear (queues are per start)
            if line:
                out.append(line)

    def stderr_tail(self) -> str:
        return " | ".join(self._stderr)

    def kill(self) -> None:
        """Kill the child's process group (no-op when not running) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("Festival process %d did not exit after SIGKILL", proc.pid)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    @staticmethod
    def _pump(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        lines.put(None)  # EOF

    def _drain(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                text = raw.decode("utf-8", "replace").strip()
                if text:
                    self._stderr.append(text)
                    log.debug("festival: %s", text)
        except (OSError, ValueError):
            pass
