"""The master's event stream: numbered events, a bounded window, and long-poll waiters.

Clients resume from the last sequence number they saw (``WaitEvents``); a waiter is a deferred
reply resolved by the next matching event or by its timeout, so nothing polls.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..actors.clock import Clock, TimerHandle
from ..actors.future import Future
from ..wire.messages.master import Event, EventBatch, EventKind


class _Waiter:
    __slots__ = ("after", "run_id", "reply", "timer")

    def __init__(self, after: int, run_id: str, reply: Future) -> None:
        self.after, self.run_id, self.reply = after, run_id, reply
        self.timer: TimerHandle | None = None


class EventStream:
    """Numbered events kept in a window of ``capacity``; ``last_seq`` survives restarts when the
    owner passes the number it persisted."""

    def __init__(self, clock: Clock, capacity: int = 20_000, last_seq: int = 0) -> None:
        self._clock = clock
        self._events: deque[Event] = deque(maxlen=capacity)
        self._last_seq = last_seq
        self._waiters: set[_Waiter] = set()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def publish(self, kind: EventKind, **fields: Any) -> Event:
        """Append an event and wake every waiter it matches."""
        self._last_seq += 1
        event = Event(self._last_seq, self._clock.time(), kind, **fields)
        self._events.append(event)
        for waiter in [w for w in self._waiters if not w.run_id or w.run_id == event.run_id]:
            self._resolve(waiter)
        return event

    def since(self, after_seq: int, run_id: str = "", limit: int = 1000) -> EventBatch:
        """Events after ``after_seq`` (of ``run_id`` when given); ``reset`` when some were lost:
        they left the window, or ``after_seq`` is ahead of this stream (a position from before
        a restart of the master, whose numbering restarted lower)."""
        oldest = self._events[0].seq if self._events else self._last_seq + 1
        reset = (after_seq + 1 < oldest and after_seq < self._last_seq) \
            or after_seq > self._last_seq
        picked = []
        if after_seq < self._last_seq:
            start = max(0, len(self._events) - (self._last_seq - after_seq))
            for index in range(start, len(self._events)):
                event = self._events[index]
                if not run_id or event.run_id == run_id:
                    picked.append(event)
                    if len(picked) >= limit:
                        break
        last = picked[-1].seq if len(picked) >= limit else self._last_seq
        return EventBatch(tuple(picked), last, reset)

    def wait(self, after_seq: int, run_id: str, timeout: float) -> EventBatch | Future:
        """The batch at once when there is news, else a Future resolved by the next matching
        event or, after ``timeout`` seconds, by an empty batch."""
        batch = self.since(after_seq, run_id)
        if batch.events or batch.reset or timeout <= 0:
            return batch
        waiter = _Waiter(after_seq, run_id, Future("events"))
        self._waiters.add(waiter)
        waiter.timer = self._clock.call_later(timeout, lambda: self._resolve(waiter))
        return waiter.reply

    def close(self) -> None:
        """Answer every waiter (with what there is) so no client hangs on a stopping master."""
        for waiter in list(self._waiters):
            self._resolve(waiter)

    def _resolve(self, waiter: _Waiter) -> None:
        if waiter not in self._waiters:
            return
        self._waiters.discard(waiter)
        if waiter.timer is not None:
            waiter.timer.cancel()
        waiter.reply.set(self.since(waiter.after, waiter.run_id))
