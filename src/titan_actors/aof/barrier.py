"""Durability barriers, and the bounded queue of records waiting for the flusher to resolve them."""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent.event

from titan_actors.actors.future import Future
from titan_actors.errors import AofTimeoutError


class Barrier(Future):
    """Resolves when one appended record is durable under the file's fsync policy.

    Success means the record is acknowledged; failure (:class:`~titan_actors.errors.AofWriteError`)
    means it is not (a later replay may or may not find it). Barriers of records written together
    share one underlying result. A Barrier is a Future: an actor handler can return it, and the
    reply leaves once the record is durable. ``wait(timeout)`` raises AofWriteError on failure and
    AofTimeoutError when it did not resolve in time (the record may still become durable later).
    """

    __slots__ = ()

    def __init__(self, result: gevent.event.AsyncResult) -> None:
        super().__init__("durable record", result)

    def _timed_out(self, timeout: float | None) -> Exception:
        return AofTimeoutError(f"the record was not durable within {timeout} s")


def resolved_barrier() -> Barrier:
    """Return a barrier that has already succeeded."""
    result = gevent.event.AsyncResult()
    result.set(None)
    return Barrier(result)


def failed_barrier(error: BaseException) -> Barrier:
    """Return a barrier that has already failed with ``error``."""
    result = gevent.event.AsyncResult()
    result.set_exception(error)
    return Barrier(result)


class Batch:
    """Encoded records queued together; they share one ``barrier`` (and its ``result``)."""

    __slots__ = ("barrier", "nbytes", "records", "result")

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.nbytes = 0
        self.result = gevent.event.AsyncResult()
        self.barrier = Barrier(self.result)

    def resolve(self) -> None:
        """Acknowledge every record of the batch."""
        self.result.set(None)

    def fail(self, error: BaseException) -> None:
        """Fail every record of the batch with ``error`` (unless already resolved)."""
        if not self.result.ready():
            self.result.set_exception(error)


class WriteQueue:
    """Records waiting for the flusher, in batches, capped at ``max_bytes``.

    Every record put while no batch is being taken joins the open batch, so a flusher that takes
    the whole queue at once writes and fsyncs all of it together (group commit).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._batches: list[Batch] = []
        self._open: Batch | None = None
        self._room = gevent.event.Event()

    def __bool__(self) -> bool:
        return bool(self._batches)

    def put(self, record: bytes) -> Barrier:
        """Queue ``record`` in the open batch; return its barrier (the batch's: the records of
        a batch become durable together). Never blocks."""
        batch = self._open
        if batch is None:
            batch = self._open = Batch()
            self._batches.append(batch)
        batch.records.append(record)
        size = len(record)
        batch.nbytes += size
        self.nbytes += size
        return batch.barrier

    def take(self) -> list[Batch]:
        """Remove and return every batch, and wake the appenders waiting for room."""
        batches, self._batches, self._open = self._batches, [], None
        self.nbytes = 0
        room, self._room = self._room, gevent.event.Event()
        room.set()
        return batches

    def restore(self, batches: list[Batch]) -> None:
        """Put taken ``batches`` back in front, in order (their records are still unwritten)."""
        self._batches[:0] = batches
        self.nbytes += sum(b.nbytes for b in batches)

    def fail_all(self, error: BaseException) -> None:
        """Fail and drop every queued batch."""
        for batch in self.take():
            batch.fail(error)

    def wait_for_room(self, nbytes: int, timeout: float,
                      still_waiting: Callable[[], bool]) -> None:
        """Block until ``nbytes`` more fit, the queue is empty, or ``still_waiting()`` is False.

        ``still_waiting`` is asked after each wake-up; it may raise (the file was closed).

        Raises:
            AofTimeoutError: no room within ``timeout`` seconds (the disk is not keeping up).
        """
        deadline = time.monotonic() + timeout
        while self.nbytes and self.nbytes + nbytes > self.max_bytes and still_waiting():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._room.wait(remaining):
                raise AofTimeoutError(
                    f"append waited {timeout} s for room: {self.nbytes} bytes are queued "
                    f"(max_pending_bytes {self.max_bytes}); the disk is not keeping up")
