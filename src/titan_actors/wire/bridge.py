"""The bridge: actor refs across a connection.

An :class:`Endpoint` serves one handshaken connection in both directions:

* requests from the peer are checked against the peer's role, decoded and delivered to the local
  actor (``local``) with a :class:`Sender` whose ref points back across the connection; the
  reader waits while that actor's mailbox is full, so TCP backpressure reaches the peer;
* :class:`RemoteRef` sends our requests to the peer's actor and pairs replies with requests by
  request id. A lost connection fails every pending ``ask`` at once with BrokenError (or
  ClosedError when we closed it) instead of letting it time out.

Outgoing frames go through one bounded queue and one writer greenlet that sends them in batches:
senders never interleave bytes, replies can be queued from callbacks, and a burst of small frames
costs one ``sendall``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.lock import Semaphore
from gevent.pool import Group
from gevent.queue import Full, Queue

from ..actors.base import DEFAULT_ASK_TIMEOUT, NO_SENDER, Envelope, Ref, Sender
from ..actors.clock import SYSTEM_CLOCK, Clock
from ..actors.future import Future
from ..errors import (
    AskTimeoutError,
    BrokenError,
    ClosedError,
    ConnectionError_,
    DecodeError,
    PermissionDeniedError,
    ProtocolError,
    TitanError,
    UnknownMessageTypeError,
)
from . import codec
from .auth import Session
from .connection import Connection
from .frame import Flag, Frame
from .messages.control import ErrorReply
from .remote_errors import error_to_reply, reply_to_error
from .roles import PeerInfo, Role, role_may

log = logging.getLogger("titan.wire")

_CLOSE = object()
_BATCH = 64


class Endpoint:
    """One connection, both directions. Build with a finished handshake's session.

    Args:
        connection: the connection (handshake done).
        session: the handshake's outcome: the peer's role and identity.
        local: the actor that handles the peer's requests, or None to refuse them.
        name: for logs.
        clock: for ask expiry timers.
        outgoing_limit: frames that may wait for the writer before senders wait.
        send_timeout: how long a sender waits for room before the peer counts as broken.
        delivery_timeout: how long the reader waits for room in the local actor's mailbox.
        on_closed: called once with this endpoint when it closes for any reason.
    """

    def __init__(self, connection: Connection, session: Session, *, local: Ref | None = None,
                 name: str = "endpoint", clock: Clock = SYSTEM_CLOCK,
                 outgoing_limit: int = 1024, send_timeout: float = 30.0,
                 delivery_timeout: float = 60.0,
                 on_closed: Callable[["Endpoint"], None] | None = None) -> None:
        self.connection = connection
        self.session = session
        self.peer: PeerInfo = session.peer
        self.local = local
        self.name = name
        self._clock = clock
        self._outgoing: Queue = Queue(maxsize=outgoing_limit)
        self._send_timeout = send_timeout
        self._delivery_timeout = delivery_timeout
        self._on_closed = on_closed
        self._pending: dict[int, Future] = {}
        self._ids = itertools.count(1)
        self._group = Group()
        self._closed_error: ConnectionError_ | None = None
        self.remote = RemoteRef(self)

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> "Endpoint":
        """Start the reader and writer greenlets (owned by this endpoint)."""
        self._group.spawn(self._guard, self._write_loop)
        self._group.spawn(self._guard, self._read_loop)
        return self

    def serve(self) -> None:
        """Run the reader in the calling greenlet until the connection ends (servers use this)."""
        self._group.spawn(self._guard, self._write_loop)
        self._guard(self._read_loop)

    @property
    def is_open(self) -> bool:
        return self._closed_error is None

    def close(self, error: ConnectionError_ | None = None) -> None:
        """Close the connection, fail pending asks, stop the greenlets. Idempotent."""
        if self._closed_error is not None:
            return
        self._closed_error = error or ClosedError(f"the connection to {self.peer.identity!r} "
                                                  f"({self.connection.peer_address}) was "
                                                  "closed by this side")
        self.connection.close()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(self._closed_error)
        while not self._outgoing.empty():
            self._outgoing.get_nowait()
        current = gevent.getcurrent()
        gevent.killall([g for g in self._group if g is not current], block=False)
        if self._on_closed is not None:
            callback, self._on_closed = self._on_closed, None
            callback(self)

    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except ConnectionError_ as error:
            self.close(error)
        except ProtocolError as error:
            log.warning("%s: closing the connection to %s: %s", self.name,
                        self.connection.peer_address, error)
            self.close(BrokenError(f"{self.connection.peer_address} sent bad bytes: {error}"))
        except gevent.GreenletExit:
            raise
        except Exception as error:
            log.exception("%s: connection to %s failed", self.name, self.connection.peer_address)
            self.close(BrokenError(f"connection to {self.connection.peer_address} failed: "
                                   f"{error!r}"))

    # -- sending ------------------------------------------------------------------------------

    def _enqueue(self, item: tuple, timeout: float | None) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        try:
            self._outgoing.put(item, timeout=self._send_timeout if timeout is None else timeout)
        except Full:
            error = BrokenError(f"{self.connection.peer_address} does not read: "
                                f"{self._outgoing.maxsize} frames waited for "
                                f"{self._send_timeout} s")
            self.close(error)
            raise error from None

    def _enqueue_from_callback(self, item: tuple) -> None:
        if self._closed_error is not None:
            return
        try:
            self._outgoing.put_nowait(item)
        except Full:
            self._group.spawn(self._guard, lambda: self._enqueue(item, None))

    def send_request(self, message: Any, request_id: int, timeout: float | None) -> None:
        """Queue a request (request_id 0 for a tell). Raises EncodeError before queueing."""
        type_id, payload = codec.encode_any(message)
        self._enqueue((type_id, payload, Flag(0), request_id), timeout)

    def _send_reply(self, request_id: int, future: Future) -> None:
        if future.successful():
            value = future.value
            if value is None:
                item = (0, b"", Flag.REPLY, request_id)
            else:
                try:
                    type_id, payload = codec.encode_any(value)
                    item = (type_id, payload, Flag.REPLY, request_id)
                except Exception as error:
                    log.error("%s: reply %r cannot be encoded: %s", self.name, value, error)
                    item = self._error_item(request_id, error)
        else:
            item = self._error_item(request_id, future.exception)
        self._enqueue_from_callback(item)

    @staticmethod
    def _error_item(request_id: int, error: BaseException) -> tuple:
        type_id, payload = codec.encode_any(error_to_reply(error))
        return (type_id, payload, Flag.REPLY | Flag.ERROR, request_id)

    def _write_loop(self) -> None:
        outgoing = self._outgoing
        while True:
            item = outgoing.get()
            batch = []
            while item is not _CLOSE:
                batch.append(item)
                if len(batch) >= _BATCH or outgoing.empty():
                    break
                item = outgoing.get_nowait()
            if batch:
                with gevent.Timeout(self._send_timeout, BrokenError(
                        f"{self.connection.peer_address} stopped reading for "
                        f"{self._send_timeout} s")):
                    self.connection.send_batch(batch)
            if item is _CLOSE:
                return

    # -- receiving ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        while True:
            frame = self.connection.recv()
            if frame.flags & Flag.REPLY:
                self._on_reply(frame)
            else:
                self._on_request(frame)

    def _on_reply(self, frame: Frame) -> None:
        future = self._pending.pop(frame.request_id, None)
        if future is None:
            log.debug("%s: late or unknown reply %d", self.name, frame.request_id)
            return
        try:
            value = None if frame.type_id == 0 else codec.decode_frame_message(frame)
        except (DecodeError, UnknownMessageTypeError) as error:
            future.set_exception(error)
            return
        if frame.flags & Flag.ERROR:
            if isinstance(value, ErrorReply):
                future.set_exception(reply_to_error(value))
            else:
                future.set_exception(DecodeError("an error reply did not carry an ErrorReply"))
        else:
            future.set(value)

    def _on_request(self, frame: Frame) -> None:
        request_id = frame.request_id
        try:
            message = codec.decode_frame_message(frame)
            self._authorize(message)
            if self.local is None:
                raise PermissionDeniedError(f"{self.name} accepts no requests")
        except TitanError as error:
            if request_id:
                self._enqueue_from_callback(self._error_item(request_id, error))
            else:
                log.warning("%s: refused a message from %s: %s", self.name,
                            self.connection.peer_address, error)
            return
        reply = Future(f"reply to {type(message).__name__}") if request_id else None
        envelope = Envelope(message, Sender(self.remote, self.peer), reply)
        try:
            self.local.deliver(envelope, self._delivery_timeout)
        except TitanError as error:
            if reply is None:
                log.warning("%s: could not deliver %s: %s", self.name, type(message).__name__,
                            error)
                return
            reply.set_exception(error)
        if reply is not None:
            reply.add_done_callback(lambda done: self._send_reply(request_id, done))

    def _authorize(self, message: Any) -> None:
        required = type(message).REQUIRES
        role = self.peer.role
        if required is None:
            if role is not Role.ADMIN:
                raise PermissionDeniedError(
                    f"{type(message).__name__} is not a request a {role.name.lower()} may send")
        elif not role_may(role, required):
            raise PermissionDeniedError(
                f"role {role.name.lower()} may not send {type(message).__name__} "
                f"(needs {required.name.lower()})")

    # -- asks ---------------------------------------------------------------------------------

    def new_request(self, timeout: float, what: str) -> tuple[int, Future]:
        if self._closed_error is not None:
            raise self._closed_error
        request_id = next(self._ids) & 0xFFFFFFFF or next(self._ids)
        future = Future(what)
        self._pending[request_id] = future

        def expire() -> None:
            if self._pending.pop(request_id, None) is future:
                future.set_exception(AskTimeoutError(f"no {what} within {timeout} s"))
        handle = self._clock.call_later(timeout, expire)
        future.add_done_callback(lambda _done: handle.cancel())
        return request_id, future

    def forget_request(self, request_id: int) -> None:
        self._pending.pop(request_id, None)


class RemoteRef(Ref):
    """A ref to the actor on the other end of an endpoint: the same interface as ActorRef."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self.name = f"{endpoint.peer.identity}@{endpoint.connection.peer_address}"

    def __repr__(self) -> str:
        return f"<RemoteRef {self.name}{'' if self.is_alive else ' (closed)'}>"

    @property
    def is_alive(self) -> bool:
        return self._endpoint.is_open

    @property
    def peer(self) -> PeerInfo:
        return self._endpoint.peer

    def tell(self, message: Any, *, timeout: float | None = None,
             sender: Sender = NO_SENDER) -> None:
        self._endpoint.send_request(message, 0, timeout)

    def ask_async(self, message: Any, *, timeout: float | None = None,
                  sender: Sender = NO_SENDER) -> Future:
        timeout = DEFAULT_ASK_TIMEOUT if timeout is None else timeout
        request_id, future = self._endpoint.new_request(
            timeout, f"reply from {self.name} to {type(message).__name__}")
        try:
            self._endpoint.send_request(message, request_id, timeout)
        except BaseException:
            self._endpoint.forget_request(request_id)
            raise
        return future


def make_send_lock() -> Semaphore:
    """The lock a gevent Connection uses to serialise senders."""
    return Semaphore()
