"""What an endpoint owes its peer, bounded: requests being answered, and frames to write.

:class:`InFlight` counts the peer's requests whose answers are not produced yet (a handler may
answer later, with a Future): at its limit the endpoint stops reading, so a peer cannot pile up
requests, and TCP backpressure reaches it instead.

:class:`Outbox` holds the frames the writer has yet to send, counted in frames and bytes.
Senders that may wait (an actor's request or tell) wait for room in the queue. A reply cannot
wait where it is produced (often in the hub), so when it finds the queue full it is handed to a
greenlet that waits for room: it is *late*. Both counts are bounded, so that a peer that sends
requests but never reads the replies costs a bounded amount of memory: :meth:`Outbox.overfull`
tells the endpoint to drop such a peer rather than hold one more reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gevent.event import Event
from gevent.queue import Full, Queue

from ..actors.future import Future
from .frame import Flag

if TYPE_CHECKING:
    from .bridge import Endpoint

__all__ = ["Full", "InFlight", "Outbox", "PeerReply"]


class InFlight:
    """At most ``limit`` of the peer's requests, holding at most ``limit_bytes`` of payload,
    being answered at once (one request alone always may). ``blocked``: no more may start now;
    the reader checks that attribute, and waits with :meth:`wait_room` only when it is set."""

    __slots__ = ("_room", "blocked", "bytes", "count", "limit", "limit_bytes")

    def __init__(self, limit: int, limit_bytes: int) -> None:
        self.count = self.bytes = 0
        self.limit, self.limit_bytes = limit, limit_bytes
        self.blocked = False
        self._room = Event()

    def start(self, size: int) -> None:
        self.count += 1
        self.bytes += size
        if self.count >= self.limit or self.bytes >= self.limit_bytes:
            self.blocked = True
            self._room.clear()

    def end(self, size: int) -> None:
        self.count -= 1
        self.bytes -= size
        if self.blocked and self.count < self.limit and (
                self.count == 0 or self.bytes < self.limit_bytes):
            self.blocked = False
            self._room.set()

    def wait_room(self, timeout: float) -> bool:
        """Wait up to ``timeout`` until one more request may start; True when it may."""
        return not self.blocked or self._room.wait(timeout) or not self.blocked

    def release(self) -> None:
        """Wake a waiting reader for good (the connection is closing)."""
        self.limit = self.limit_bytes = 1 << 62
        self.blocked = False
        self._room.set()


class Outbox:
    """At most ``frames`` queued frames, plus at most ``frames`` late replies.

    Items are ``(type_id, payload, flags, request_id)`` tuples; :attr:`bytes` counts the payloads
    queued or late and not written yet, :attr:`reply_bytes` those of replies alone.
    ``backlog_bytes`` bounds the replies (one alone always fits: the largest frame the peer may
    receive is bounded elsewhere). This side's own requests and tells are not counted against
    the peer: they wait for room (backpressure), and a reply queued behind them says nothing of
    whether the peer reads its replies.
    """

    __slots__ = ("_limit", "bytes", "late", "maxsize", "queue", "reply_bytes")

    def __init__(self, frames: int, backlog_bytes: int) -> None:
        self.queue: Queue = Queue(maxsize=frames)  # the writer takes from it directly
        self.maxsize = frames
        self.bytes = self.reply_bytes = 0
        self.late = 0
        self._limit = backlog_bytes

    def describe(self) -> str:
        return (f"{self.bytes} bytes ({self.queue.qsize()} frames queued, {self.late} more "
                f"waiting for room)")

    def _count(self, item: tuple, sign: int) -> None:
        size = len(item[1]) * sign
        self.bytes += size
        if item[2] & Flag.REPLY:
            self.reply_bytes += size

    def put(self, item: tuple, timeout: float | None) -> None:
        """Queue ``item``, waiting up to ``timeout`` for room. Raises Full."""
        self._count(item, 1)
        try:
            self.queue.put(item, timeout=timeout)
        except Full:
            self._count(item, -1)
            raise

    def put_nowait(self, item: tuple) -> bool:
        """Queue ``item`` if there is room (True); False: the caller must :meth:`put_late` it."""
        self._count(item, 1)
        try:
            self.queue.put_nowait(item)
        except Full:
            self.late += 1
            return False
        return True

    def put_late(self, item: tuple, timeout: float) -> None:
        """Wait up to ``timeout`` for room for an item :meth:`put_nowait` could not queue.
        Raises Full."""
        try:
            self.queue.put(item, timeout=timeout)
        except Full:
            self._count(item, -1)
            raise
        finally:
            self.late -= 1

    def overfull(self, size: int) -> bool:
        """Whether one more reply of ``size`` bytes is more than a peer may leave unread."""
        return self.late >= self.maxsize or (
            self.reply_bytes > 0 and self.reply_bytes + size > self._limit)

    def written(self, batch: list[tuple]) -> None:
        """Forget the bytes of ``batch``, taken from the queue and written."""
        for item in batch:
            self._count(item, -1)

    def clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.bytes = self.reply_bytes = 0


class PeerReply(Future):
    """The Future of a peer's ask: resolving it queues the reply frame at once, in the
    resolving greenlet, instead of one hub callback later (it never blocks)."""

    __slots__ = ("_endpoint", "_request_id", "_size")

    def __init__(self, endpoint: Endpoint, request_id: int, size: int) -> None:
        super().__init__("reply to a peer's request")
        self._endpoint = endpoint
        self._request_id = request_id
        self._size = size  # of the request, counted in flight until it is answered
        endpoint._in_flight.start(size)

    def set(self, value: Any = None) -> None:
        if not self._result.ready():
            self._result.set(value)
            self._endpoint._in_flight.end(self._size)
            self._endpoint._send_value(self._request_id, value)

    def set_exception(self, exc: BaseException) -> None:
        if not self._result.ready():
            self._result.set_exception(exc)
            self._endpoint._in_flight.end(self._size)
            self._endpoint._send_error(self._request_id, exc)
