"""The master's link to a separate store process (the ``store_address`` setting).

:class:`StoreLink` is a :class:`~titan_actors.actors.base.Ref` to the store actor of a ``titanctl
store`` process, so the master forwards clients' store requests with ``ask_async`` exactly as it
does to an embedded store. One owned greenlet keeps one connection, dialled as ``Role.PEER``;
when the store process dies or restarts it dials again with a capped backoff.

Failure model, all bounded:

* While there is no connection, a request gets a Future at once (the master's actor never
  blocks) and waits at most ``unreachable_timeout`` seconds for the link; then it fails with
  :class:`StoreUnavailableError` naming the store's address and why it cannot be reached. Waiting
  requests are sent in arrival order once the link is back, and at most ``max_waiting`` wait.
* A request already sent when the connection breaks fails at once with StoreUnavailableError:
  the store may or may not have applied it, so it is not sent again (a repeated ``sadd`` would
  answer 0, a repeated ``del`` would find nothing).
* A crash of the link's greenlet is logged, fails every waiting request, and calls
  ``on_failure`` (the composition root stops the master: a master that can no longer reach its
  store must not look healthy).
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Group

from ..config_parse import format_address
from ..errors import (
    AskTimeoutError,
    ClosedError,
    ConnectionError_,
    StoreUnavailableError,
    TitanError,
)
from ..wire.auth import KeyRing
from ..wire.bridge import Endpoint
from ..wire.frame import DEFAULT_MAX_PAYLOAD
from ..wire.roles import Role
from ..wire.server import dial
from .base import DEFAULT_ASK_TIMEOUT, NO_SENDER, Ref, Sender
from .clock import SYSTEM_CLOCK, Clock, TimerHandle
from .future import Future

__all__ = ["StoreLink", "StoreLinkOptions"]

log = logging.getLogger("titan.store_link")


@dataclass(frozen=True, slots=True)
class StoreLinkOptions:
    """Where the store is and how patiently to reach it.

    ``unreachable_timeout`` bounds how long a request waits for a missing connection;
    ``reconnect_min`` / ``reconnect_max`` are the backoff between dials (doubling, capped);
    ``connect_timeout`` bounds one dial with its handshake.
    """

    address: tuple[str, int]
    identity: str = "master"
    unreachable_timeout: float = 3.0
    reconnect_min: float = 0.05
    reconnect_max: float = 1.0
    connect_timeout: float = 5.0
    max_waiting: int = 1024
    max_payload: int = DEFAULT_MAX_PAYLOAD


@dataclass(slots=True)
class _Waiting:
    """A request that arrived while the link was down."""

    message: Any
    reply: Future
    send_by: float  # monotonic: the ask's own deadline
    give_up_at: float  # monotonic: the end of the bounded wait for the link
    timer: TimerHandle | None = None


class StoreLink(Ref):
    """A ref to the store actor of another process, kept connected. See the module docstring.

    Args:
        options: address and timings.
        keys: the master's key ring (the cluster key proves the PEER role), or None.
        tls: a client SSL context when the store speaks TLS.
        clock: monotonic time and timers (asks' expiry, bounded waits).
        on_failure: called with the error if the link's greenlet crashes.
    """

    def __init__(self, options: StoreLinkOptions, *, keys: KeyRing | None = None,
                 tls: ssl.SSLContext | None = None, clock: Clock = SYSTEM_CLOCK,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.options = options
        self.address = format_address(options.address)
        self.name = f"store@{self.address}"
        self._keys = keys
        self._tls = tls
        self._clock = clock
        self._on_failure = on_failure
        self._endpoint: Endpoint | None = None
        self._waiting: deque[_Waiting] = deque()
        self._why = "no connection yet"  # why the store cannot be reached, for error messages
        self._closed = False
        self._wakeup = Event()  # cuts the reconnect backoff short when closing
        self._connected = Event()
        self._group = Group()

    def __repr__(self) -> str:
        return f"<StoreLink {self.address}{'' if self.connected else ' (disconnected)'}>"

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> StoreLink:
        """Start dialling in a greenlet owned by this link; returns self."""
        self._group.spawn(self._connect_loop).link_exception(self._crashed)
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Close the connection, fail waiting requests, stop the greenlet. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._why = "the master is stopping"
        self._wakeup.set()
        self._fail_waiting(ClosedError(f"the link to the store at {self.address} was closed"))
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.close()
        if not self._group.join(timeout):
            self._group.kill(block=True, timeout=1.0)

    @property
    def is_alive(self) -> bool:
        """True until closed: the link outlives the connections it makes."""
        return not self._closed

    @property
    def connected(self) -> bool:
        endpoint = self._endpoint
        return endpoint is not None and endpoint.is_open

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a connection; True once there is one."""
        return self._connected.wait(timeout)

    # -- the Ref interface ------------------------------------------------------------------------

    def tell(self, message: Any, *, timeout: float | None = None,
             sender: Sender = NO_SENDER) -> None:
        """Send without a reply. Raises StoreUnavailableError at once when not connected."""
        endpoint = self._endpoint
        if endpoint is None or not endpoint.is_open:
            raise StoreUnavailableError(f"{self._unreachable(type(message).__name__)} was "
                                        "not sent")
        endpoint.remote.tell(message, timeout=timeout)

    def ask_async(self, message: Any, *, timeout: float | None = None,
                  sender: Sender = NO_SENDER) -> Future:
        """Send ``message`` to the store; the Future resolves with its answer, the store's
        error, or StoreUnavailableError (see the module docstring). Never blocks on a missing
        connection.

        Raises:
            ClosedError: the link was closed. EncodeError: the message cannot be encoded.
            StoreUnavailableError: ``max_waiting`` requests already wait for the link.
        """
        if self._closed:
            raise ClosedError(f"the link to the store at {self.address} was closed")
        timeout = DEFAULT_ASK_TIMEOUT if timeout is None else timeout
        reply = Future(f"reply from the store at {self.address} to {type(message).__name__}")
        endpoint = self._endpoint
        if endpoint is not None and endpoint.is_open:
            try:
                self._send(endpoint, message, timeout, reply)
                return reply
            except ConnectionError_:
                pass  # it broke just now: wait for the next connection like any other request
        now = self._clock.monotonic()
        if len(self._waiting) >= self.options.max_waiting:
            raise StoreUnavailableError(
                f"{self._unreachable(type(message).__name__)} was refused: "
                f"{len(self._waiting)} requests already wait for it")
        waiting = _Waiting(message, reply, now + timeout,
                           now + min(timeout, self.options.unreachable_timeout))
        self._park(waiting)
        return reply

    # -- sending --------------------------------------------------------------------------------

    def _send(self, endpoint: Endpoint, message: Any, timeout: float, reply: Future) -> None:
        """Send over ``endpoint``; ``reply`` gets the answer, with connection failures and
        timeouts told as StoreUnavailableError. Raises the errors of ``RemoteRef.ask_async``."""
        what = type(message).__name__
        answer = endpoint.remote.ask_async(message, timeout=timeout)

        def done(result: Future) -> None:
            if result.successful():
                reply.set(result.value)
                return
            error = result.exception
            if isinstance(error, ConnectionError_):
                error = StoreUnavailableError(
                    f"the connection to the store at {self.address} broke before it answered "
                    f"{what} ({error}); a write may or may not have been applied")
            elif isinstance(error, AskTimeoutError):
                error = StoreUnavailableError(
                    f"the store at {self.address} did not answer {what} within {timeout:g} s")
            reply.set_exception(error)
        answer.add_done_callback(done)

    def _park(self, waiting: _Waiting) -> None:
        """Queue a request until the link is back or its bounded wait ends."""
        delay = max(waiting.give_up_at - self._clock.monotonic(), 0.0)
        waiting.timer = self._clock.call_later(delay, lambda: self._give_up(waiting))
        self._waiting.append(waiting)

    def _give_up(self, waiting: _Waiting) -> None:
        """The bounded wait of ``waiting`` ended without a connection (runs in the loop)."""
        try:
            self._waiting.remove(waiting)
        except ValueError:
            return  # it was sent meanwhile
        waited = self.options.unreachable_timeout
        waiting.reply.set_exception(StoreUnavailableError(
            f"{self._unreachable(type(waiting.message).__name__)} waited {waited:g} s for it"))

    def _unreachable(self, what: str) -> str:
        return f"the store at {self.address} is unreachable ({self._why}); the request ({what})"

    def _fail_waiting(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, deque()
        for request in waiting:
            if request.timer is not None:
                request.timer.cancel()
            request.reply.set_exception(error)

    def _send_waiting(self, endpoint: Endpoint) -> bool:
        """Send the waiting requests in arrival order. False when the connection broke."""
        while self._waiting:
            waiting = self._waiting.popleft()
            if waiting.timer is not None:
                waiting.timer.cancel()
            remaining = waiting.send_by - self._clock.monotonic()
            try:
                if remaining <= 0:
                    raise AskTimeoutError(f"no reply from the store at {self.address} to "
                                          f"{type(waiting.message).__name__} in time")
                self._send(endpoint, waiting.message, remaining, waiting.reply)
            except ConnectionError_:
                self._park(waiting)  # back in the queue, with what is left of its wait,
                self._waiting.rotate(1)  # at its front
                return False
            except Exception as error:  # this request's own problem (it cannot be encoded)
                waiting.reply.set_exception(error)
        return True

    # -- the connection ---------------------------------------------------------------------------

    def _connect_loop(self) -> None:
        """Dial, serve until the connection ends, and again, with a capped backoff."""
        host, port = self.options.address
        delay = self.options.reconnect_min
        reported = ""
        while not self._closed:
            try:
                endpoint = dial(host, port, role=Role.PEER, identity=self.options.identity,
                                keys=self._keys, tls=self._tls,
                                timeout=self.options.connect_timeout,
                                max_payload=self.options.max_payload, clock=self._clock)
            except (TitanError, OSError) as error:
                self._why = str(error) or type(error).__name__
                if self._why != reported:  # once per cause, not once per attempt
                    log.warning("cannot reach the store at %s: %s (retrying every %g s at most)",
                                self.address, self._why, self.options.reconnect_max)
                    reported = self._why
                self._wakeup.wait(delay)  # the reconnect backoff; close() cuts it short
                delay = min(delay * 2, self.options.reconnect_max)
                continue
            if self._closed:
                endpoint.close()
                return
            delay, reported = self.options.reconnect_min, ""
            log.info("connected to the store at %s", self.address)
            if self._send_waiting(endpoint):
                self._endpoint = endpoint
                self._connected.set()
            while not self._closed and not endpoint.wait_closed(5.0):
                pass
            self._endpoint = None
            self._connected.clear()
            if not self._closed:
                self._why = "the connection was lost; reconnecting"
                log.warning("lost the store at %s; reconnecting", self.address)

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        error = greenlet.exception
        log.error("the link to the store at %s crashed", self.address,
                  exc_info=(type(error), error, error.__traceback__))
        self._closed = True
        self._why = f"the link crashed: {error!r}"
        self._fail_waiting(StoreUnavailableError(f"{self._unreachable('waiting')} failed"))
        if self._on_failure is not None:
            self._on_failure(error)
