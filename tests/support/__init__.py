"""Shared test helpers: one way to wait, with a timeout, and never a sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

from gevent.event import Event


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.002,
               what: str = "") -> object:
    """Poll ``predicate`` (yielding to other greenlets) until it is truthy; return its value.

    Raises AssertionError naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    idle = Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        idle.wait(interval)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
