"""Blocking work (file I/O, fsync) off the event loop, in gevent's threadpool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent

__all__ = ["run_in_thread"]


def _capture(func: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[bool, Any]:
    try:
        return True, func(*args, **kwargs)
    except Exception as e:
        return False, e


def run_in_thread(func: Callable[..., Any], *args: Any, pool: Any = None, **kwargs: Any) -> Any:
    """Run ``func(*args, **kwargs)`` in the hub's threadpool (or ``pool``); return its value or
    raise its exception in the calling greenlet, which waits while the loop goes on.

    The exception travels as a value because gevent's pool would also report it to the hub as
    an unhandled error, while it is the caller's to handle. A caller killed mid-call lets the
    thread finish first, so nobody closes (and the OS reuses) a descriptor the thread uses.
    """
    pending = (pool or gevent.get_hub().threadpool).spawn(_capture, func, args, kwargs)
    try:
        ok, value = pending.get()
    except BaseException:
        if not pending.ready():
            pending.wait()
        raise
    if not ok:
        raise value
    return value
