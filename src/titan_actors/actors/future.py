"""A one-shot result that a greenlet can wait on with a timeout, or be called back from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gevent.event import AsyncResult

from ..errors import AskTimeoutError


class Future:
    """The pending reply of an ``ask``, or a value an actor will produce later.

    A handler that cannot answer at once (it waits on an fsync, a worker, a decision) returns a
    Future; its reply is sent when the Future is resolved, while the actor goes on with other
    messages.
    """

    __slots__ = ("_result", "_what")

    def __init__(self, what: str = "reply", result: AsyncResult | None = None) -> None:
        # Several Futures may share one result (the records of one fsync batch do).
        self._result = result if result is not None else AsyncResult()
        self._what = what

    def set(self, value: Any = None) -> None:
        """Resolve with ``value``. Resolving twice keeps the first outcome."""
        if not self._result.ready():
            self._result.set(value)

    def set_exception(self, exc: BaseException) -> None:
        """Resolve with an error that :meth:`get` raises. Resolving twice keeps the first."""
        if not self._result.ready():
            self._result.set_exception(exc)

    def ready(self) -> bool:
        """True once resolved."""
        return self._result.ready()

    def successful(self) -> bool:
        """True once resolved with a value (not an error)."""
        return self._result.successful()

    @property
    def exception(self) -> BaseException | None:
        """The error this Future was resolved with, or None."""
        return self._result.exception

    @property
    def value(self) -> Any:
        """The value this Future was resolved with (None while pending or failed)."""
        return self._result.value

    def get(self, timeout: float) -> Any:
        """Wait up to ``timeout`` seconds and return the value, or raise the error.

        Raises:
            AskTimeoutError: nothing arrived in time.
        """
        self._result.wait(timeout)
        if not self._result.ready():
            raise self._timed_out(timeout)
        return self._result.get(block=False)

    def wait(self, timeout: float) -> None:
        """Wait like :meth:`get`, for the outcome only: return on success, raise the error."""
        self.get(timeout)

    def _timed_out(self, timeout: float | None) -> Exception:
        return AskTimeoutError(f"no {self._what} within {timeout} s")

    def add_done_callback(self, callback: Callable[["Future"], None]) -> None:
        """Call ``callback(self)`` from the hub once resolved (soon, if it already is).

        The callback must not block (send a message, set an event) and should not raise.
        """
        self._result.rawlink(lambda _result: callback(self))

    rawlink = add_done_callback

    def resolve_from(self, other: "Future") -> None:
        """Resolve this Future with the outcome of ``other`` once that is resolved."""
        def copy(done: Future) -> None:
            if done.successful():
                self.set(done.value)
            else:
                self.set_exception(done.exception)
        other.add_done_callback(copy)
