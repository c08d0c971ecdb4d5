"""Capture a job's stdout and stderr in bounded batches, and tell when its output is complete.

:class:`OutputCapture` reads the two non-blocking pipe read ends of a job (from
``Launcher.launch``) in one greenlet each and hands ``on_batch(stream, data)`` batches of at most
``batch_bytes``. A batch is flushed when it is full or when the pipe has nothing more ready
(optionally after lingering up to ``linger`` seconds for more, to coalesce chatty output into
fewer log frames); nothing ever sleeps: each greenlet waits on its fd's readiness. Bytes are
passed through untouched (invalid UTF-8 included). Order is kept within each stream; no order
between the two streams exists to keep.

``cap_bytes`` bounds what one job can emit (both streams together): the batch that crosses it is
cut at the cap, one :data:`TRUNCATION_MARKER` batch follows on that stream, and everything later
is read and dropped (so the job never blocks on a full pipe) and only counted.

:func:`finish` is how a worker turns an exit into a final result: it waits for the exit, then
for EOF on both pipes (every writer, grandchildren included, has closed them), so every byte is
delivered before the exit is reported. A pipe still open ``drain_timeout`` seconds after the exit
(a leftover process holding it) is abandoned and the result says so.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import gevent
from gevent.event import Event
from gevent.hub import get_hub
from gevent.pool import Group

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_CAP_BYTES",
    "TRUNCATION_MARKER",
    "JobExit",
    "OutputCapture",
    "Stream",
    "finish",
]

DEFAULT_BATCH_BYTES = 64 * 1024
DEFAULT_CAP_BYTES = 64 * 1024 * 1024
TRUNCATION_MARKER = b"\n[titan] output truncated: the job wrote more than its cap; the rest " \
                    b"was dropped\n"


class Stream(enum.IntEnum):
    """Which of a job's output streams a batch came from."""

    STDOUT = 1
    STDERR = 2


BatchCallback = Callable[[Stream, bytes], None]


class OutputCapture:
    """Reads a job's two output pipes until EOF; see the module docstring.

    The capture owns the fds from :meth:`start` on and closes them at EOF or :meth:`close`. A
    fd of -1 is a stream that was not captured (EOF at once). An exception raised by
    ``on_batch`` stops the capture (both fds closed) and is re-raised by :meth:`wait`.
    """

    def __init__(self, stdout_fd: int, stderr_fd: int, on_batch: BatchCallback, *,
                 batch_bytes: int = DEFAULT_BATCH_BYTES, cap_bytes: int = DEFAULT_CAP_BYTES,
                 linger: float = 0.0, marker: bytes = TRUNCATION_MARKER) -> None:
        if batch_bytes < 1 or cap_bytes < 0 or linger < 0:
            raise ValueError(f"batch_bytes must be >= 1, cap_bytes and linger >= 0; got "
                             f"{batch_bytes}, {cap_bytes}, {linger}")
        self._fds = {Stream.STDOUT: stdout_fd, Stream.STDERR: stderr_fd}
        self._on_batch = on_batch
        self._batch_bytes = batch_bytes
        self._budget = cap_bytes
        self._linger = linger
        self._marker = marker
        self._open = 0
        self._eof = Event()
        self._group = Group()
        self._error: BaseException | None = None
        self.captured_bytes = 0
        self.dropped_bytes = 0
        self.truncated = False

    def start(self) -> OutputCapture:
        """Start reading; returns self."""
        for stream, fd in self._fds.items():
            if fd >= 0:
                self._open += 1
                self._group.spawn(self._pump, stream, fd)
        if not self._open:
            self._eof.set()
        return self

    @property
    def complete(self) -> bool:
        """True once both streams reached EOF (or were never captured)."""
        return self._eof.is_set() and self._error is None

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for EOF on both streams; return whether it came.

        Raises whatever ``on_batch`` raised, if it did.
        """
        self._eof.wait(timeout)
        if self._error is not None:
            self.close()
            raise self._error
        return self._eof.is_set()

    def close(self) -> None:
        """Stop reading and close the fds (what is still in the pipes is lost). Idempotent."""
        self._group.kill()
        for stream in self._fds:
            self._close_fd(stream)  # a greenlet killed before it ran never closed its fd
        self._eof.set()

    def _close_fd(self, stream: Stream) -> None:
        fd, self._fds[stream] = self._fds[stream], -1
        if fd >= 0:
            os.close(fd)

    # -- internals -----------------------------------------------------------------------------

    def _pump(self, stream: Stream, fd: int) -> None:
        watcher = get_hub().loop.io(fd, 1)
        chunks: list[bytes] = []
        size = 0
        started = 0.0
        try:
            while True:
                try:
                    chunk = os.read(fd, self._batch_bytes - size)
                except BlockingIOError:
                    if chunks and not self._wait_more(watcher, started):
                        self._deliver(stream, chunks)
                        chunks, size = [], 0
                    elif not chunks:
                        get_hub().wait(watcher)
                    continue
                if not chunk:
                    break
                if not chunks:
                    started = get_hub().loop.now()
                chunks.append(chunk)
                size += len(chunk)
                if size >= self._batch_bytes:
                    self._deliver(stream, chunks)
                    chunks, size = [], 0
            if chunks:
                self._deliver(stream, chunks)
        except Exception as e:  # on_batch failed: stop both streams, wait() re-raises
            self._error = e
            for other in list(self._group):
                if other is not gevent.getcurrent():
                    other.kill(block=False)
        finally:
            watcher.close()
            self._close_fd(stream)
            self._open -= 1
            if self._open <= 0 or self._error is not None:
                self._eof.set()

    def _wait_more(self, watcher, started: float) -> bool:
        """Linger for more data after a drained read; True when the fd became readable."""
        remaining = started + self._linger - get_hub().loop.now()
        if remaining <= 0:
            return False
        with gevent.Timeout(remaining, False):
            get_hub().wait(watcher)
            return True
        return False

    def _deliver(self, stream: Stream, chunks: list[bytes]) -> None:
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.truncated:
            self.dropped_bytes += len(data)
            return
        if len(data) > self._budget:
            keep, self._budget = self._budget, 0
            self.dropped_bytes += len(data) - keep
            self.truncated = True
            if keep:
                self.captured_bytes += keep
                self._on_batch(stream, data[:keep])
            self._on_batch(stream, self._marker)
            return
        self._budget -= len(data)
        self.captured_bytes += len(data)
        self._on_batch(stream, data)


class _Waitable(Protocol):
    def wait(self, timeout: float | None) -> int | None: ...


@dataclass(frozen=True, slots=True)
class JobExit:
    """How a job ended: ``code`` (negative: killed by that signal), whether all its output was
    read to EOF, whether it was cut at the cap, and how many bytes were delivered / dropped."""

    code: int
    output_complete: bool
    truncated: bool
    captured_bytes: int
    dropped_bytes: int


def finish(process: _Waitable, capture: OutputCapture, *, timeout: float | None,
           drain_timeout: float = 5.0) -> JobExit | None:
    """Wait for ``process`` to exit (at most ``timeout`` seconds; None: no limit), then for EOF
    on its output (at most ``drain_timeout`` seconds more), and return the final JobExit.

    Returns None when the process is still running after ``timeout`` (the capture goes on; kill
    the process and call again). When EOF does not come in time the capture is closed and
    ``output_complete`` is False. Raises what ``process.wait`` raises (the launcher went away)
    and what ``on_batch`` raised.
    """
    code = process.wait(timeout)
    if code is None:
        return None
    complete = capture.wait(drain_timeout)
    if not complete:
        capture.close()
    return JobExit(code, complete, capture.truncated, capture.captured_bytes,
                   capture.dropped_bytes)
