"""A bounded two-lane mailbox that never drops a message.

Control messages (registrations, completions, asks) and bulk messages (log lines) have separate
bounds, and the reader takes control messages first, so a flood of output cannot delay a
completion. A full lane makes ``put`` wait up to its timeout and then raise
:class:`MailboxFullError`; nothing is ever dropped silently. Internal messages (timers, crash
reports, stop requests) bypass the bounds: they are produced by the actor system itself, a few at
a time.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gevent.event import Event
from gevent.lock import Semaphore

from ..errors import ActorDeadError, MailboxFullError
from ..wire.registry import Lane

_EMPTY = object()
EMPTY = _EMPTY


class Mailbox:
    """A two-lane bounded queue read by exactly one actor loop.

    Args:
        name: the owner's name, for error messages.
        maxsize: capacity of the control lane (>= 1).
        bulk_maxsize: capacity of the bulk lane (>= 1).
    """

    def __init__(self, name: str, maxsize: int = 1000, bulk_maxsize: int = 1000) -> None:
        if maxsize < 1 or bulk_maxsize < 1:
            raise ValueError("mailbox sizes must be at least 1")
        self._name = name
        self._lanes: tuple[deque, deque] = (deque(), deque())
        self._slots = (Semaphore(maxsize), Semaphore(bulk_maxsize))
        self._waiting = [0, 0]
        self._sizes = (maxsize, bulk_maxsize)
        self._internal: deque = deque()
        self._not_empty = Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._internal) + len(self._lanes[0]) + len(self._lanes[1])

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: Any, lane: Lane = Lane.CONTROL, timeout: float | None = 10.0) -> None:
        """Append ``item`` to ``lane``, waiting up to ``timeout`` seconds for room.

        Raises:
            ActorDeadError: the mailbox is closed (its actor stopped), before or during the wait.
            MailboxFullError: the lane stayed full for the whole timeout.
        """
        if self._closed:
            raise ActorDeadError(f"actor {self._name!r} is not running")
        slots = self._slots[lane]
        self._waiting[lane] += 1
        try:
            acquired = slots.acquire(timeout=timeout)
        finally:
            self._waiting[lane] -= 1
        if self._closed:
            raise ActorDeadError(f"actor {self._name!r} stopped before it could take the message")
        if not acquired:
            raise MailboxFullError(
                f"the {lane.name.lower()} mailbox of actor {self._name!r} stayed full "
                f"({self._sizes[lane]} messages) for {timeout} s")
        self._lanes[lane].append(item)
        self._not_empty.set()

    def put_internal(self, item: Any) -> None:
        """Append a system message (timer, crash report, stop) without waiting or bounds."""
        if self._closed:
            raise ActorDeadError(f"actor {self._name!r} is not running")
        self._internal.append(item)
        self._not_empty.set()

    def get(self) -> Any:
        """Take the next item: system messages first, then control, then bulk; wait if empty."""
        while True:
            item = self.get_nowait()
            if item is not _EMPTY:
                return item
            self._not_empty.clear()
            self._not_empty.wait()

    def get_nowait(self) -> Any:
        """Take the next item like :meth:`get`, or return ``EMPTY`` at once when there is none."""
        if self._internal:
            return self._internal.popleft()
        for lane in (Lane.CONTROL, Lane.BULK):
            if self._lanes[lane]:
                item = self._lanes[lane].popleft()
                self._slots[lane].release()
                return item
        return _EMPTY

    def seal(self) -> None:
        """Refuse further puts (waking every waiting putter with ActorDeadError); keep the rest."""
        self._closed = True
        for lane in (Lane.CONTROL, Lane.BULK):
            for _ in range(self._waiting[lane]):
                self._slots[lane].release()

    def close(self) -> list[Any]:
        """Seal the mailbox and return what was left unread."""
        self.seal()
        left = list(self._internal) + list(self._lanes[0]) + list(self._lanes[1])
        for queue in (self._internal, *self._lanes):
            queue.clear()
        return left
