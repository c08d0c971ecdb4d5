"""Injected clocks: monotonic time for liveness and timeouts, wall time for what is persisted.

Actors take a :class:`Clock` in their constructor. :class:`SystemClock` runs timers on gevent's
event loop; :class:`ManualClock` lets a test move time by hand, so a test of a 10 s lease takes
no real time.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

import gevent


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it fires."""

    def cancel(self) -> None:
        """Stop the callback from firing; cancelling twice or after it fired does nothing."""


class Clock(Protocol):
    """The time source of an actor."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; meaningless across processes."""

    def time(self) -> float:
        """Wall-clock epoch seconds; what persisted deadlines and expiries use."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds of this clock.

        The callback runs in the event loop's context: it must not block (spawn a greenlet or do a
        non-blocking put instead).
        """


class _LoopTimer:
    __slots__ = ("_watcher",)

    def __init__(self, watcher) -> None:
        self._watcher = watcher

    def cancel(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None


class SystemClock:
    """The real clocks: ``time.monotonic``, ``time.time`` and timers on gevent's loop."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        watcher = gevent.get_hub().loop.timer(max(float(delay), 0.0))
        handle = _LoopTimer(watcher)

        def fire() -> None:
            handle.cancel()
            callback()

        watcher.start(fire)
        return handle


SYSTEM_CLOCK = SystemClock()


class _ManualTimer:
    __slots__ = ("due", "seq", "callback", "cancelled")

    def __init__(self, due: float, seq: int, callback: Callable[[], None]) -> None:
        self.due, self.seq, self.callback, self.cancelled = due, seq, callback, False

    def __lt__(self, other: "_ManualTimer") -> bool:
        return (self.due, self.seq) < (other.due, other.seq)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to: for tests, never for production.

    ``advance(seconds)`` moves both clocks forward and runs every timer that falls due, in order
    of due time, in the calling greenlet.
    """

    def __init__(self, start_monotonic: float = 1000.0, start_wall: float = 1_800_000_000.0):
        self._mono = start_monotonic
        self._wall = start_wall
        self._timers: list[_ManualTimer] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._wall

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _ManualTimer(self._mono + max(float(delay), 0.0), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    @property
    def pending_timers(self) -> int:
        """How many timers are scheduled and not cancelled."""
        return sum(1 for t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers (including ones they schedule)."""
        target = self._mono + seconds
        while self._timers and self._timers[0].due <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._wall += timer.due - self._mono
            self._mono = timer.due
            timer.callback()
        self._wall += target - self._mono
        self._mono = target
