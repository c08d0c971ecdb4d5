"""The bridge: actor refs across a connection.

An :class:`Endpoint` serves one handshaken connection in both directions:

* requests from the peer are checked against the peer's role, decoded and delivered to the local
  actor (``local``) with a :class:`Sender` whose ref points back across the connection; the
  reader waits while that actor's mailbox is full, so TCP backpressure reaches the peer;
* :class:`RemoteRef` sends our requests to the peer's actor and pairs replies with requests by
  request id. A lost connection fails every pending ``ask`` at once with BrokenError (or
  ClosedError when we closed it) instead of letting it time out.

Incoming frames are taken a read at a time: every frame one ``recv`` brought in is handled
before the next read. Outgoing frames go through one bounded queue and one writer greenlet that
sends them in batches: senders never interleave bytes, replies can be queued from callbacks, and
a burst of small frames costs one send. A frame due while the writer is idle and nothing is
queued (a reply to a lone request) is written at once by whoever produced it, with a write that
never waits (plain TCP only, not TLS); what the socket does not take goes to the writer ahead of
any later frame. That costs no greenlet switch, and happens at most once per endpoint per loop
iteration, so that a burst still leaves in one batch.

What a peer makes this side hold is bounded (see ``wire.outbox``).

Limits, by design: while the reader waits for room in a full mailbox, or for answers to the
peer's requests in flight, it reads nothing, replies included, so an actor that asks back over
the same connection meanwhile waits for its ask's timeout. A tell that still finds no room
after ``delivery_timeout`` breaks the connection (the peer sees BrokenError) rather than vanish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Group

from ..actors.base import Envelope, Ref, Sender
from ..actors.clock import SYSTEM_CLOCK, Clock
from ..actors.future import Future
from ..errors import (
    AskTimeoutError,
    BrokenError,
    ClosedError,
    ConnectionError_,
    MailboxFullError,
    PermissionDeniedError,
    ProtocolError,
    TitanError,
)
from . import codec
from .auth import Session
from .connection import Connection, RequestIds
from .frame import Flag, Frame
from .outbox import Full, InFlight, Outbox, PeerReply
from .registry import message_class
from .remote import RemoteRef
from .remote_errors import error_to_reply, reply_value
from .roles import PeerInfo, Role, check_may_send, check_run_scope
from .seal import MAC_SIZE

log = logging.getLogger("titan.wire")

_BATCH = 64
# indexed by a frame's flags (the reader refuses undefined bits): an IntFlag's ``&`` is a
# Python-level enum call, a tuple lookup is not
_IS_REPLY = tuple(bool(bits & Flag.REPLY)
                  for bits in range(int(Flag.REPLY | Flag.ERROR | Flag.SEALED) + 1))


class Endpoint:
    """One connection, both directions. Build with a finished handshake's session.

    Args:
        connection: the connection (handshake done).
        session: the handshake's outcome: the peer's role and identity.
        local: the actor that handles the peer's requests, or None to refuse them.
        name: for logs.
        clock: for ask expiry timers.
        outgoing_limit: frames that may wait for the writer before senders wait; also the
            peer's requests in flight, and its replies waiting for room, at most (wire.outbox).
        send_timeout: how long a sender waits for room before the peer counts as broken.
        delivery_timeout: how long the reader waits for room in the local actor's mailbox.
        backlog_bytes: the bytes those may hold (wire.outbox).
        on_closed: called once with this endpoint when it closes for any reason.
    """

    def __init__(self, connection: Connection, session: Session, *, local: Ref | None = None,
                 name: str = "endpoint", clock: Clock = SYSTEM_CLOCK,
                 outgoing_limit: int = 1024, send_timeout: float = 30.0,
                 delivery_timeout: float = 60.0, backlog_bytes: int = 64 * 1024 * 1024,
                 on_closed: Callable[["Endpoint"], None] | None = None) -> None:
        self.connection = connection
        self.session = session
        self.peer: PeerInfo = session.peer
        self.local = local
        self.name = name
        self._clock = clock
        self._outgoing = Outbox(outgoing_limit, backlog_bytes)
        self._queue = self._outgoing.queue
        self._max_send = connection.max_payload - MAC_SIZE  # larger: see Connection.check_size
        self._in_flight = InFlight(outgoing_limit, backlog_bytes)  # requests not answered yet
        self._send_timeout = send_timeout
        self._delivery_timeout = delivery_timeout
        self._dropping = False  # a peer that left too many replies unread is being dropped
        self._on_closed = on_closed
        self._pending: dict[int, Future] = {}
        self._ids = RequestIds()
        self._group = Group()
        self._closed_error: ConnectionError_ | None = None
        self._closed_event = Event()
        self.remote = RemoteRef(self)
        self._sender = Sender(self.remote, self.peer)  # the same for every request
        self._allowed: set[int] = set()  # type ids the peer's role was checked for
        self._scoped = self.peer.role is Role.JOB  # only a job's requests are run-scoped
        # frames written at once (see the module docstring and _write_now)
        self._direct = connection.can_send_nowait
        self._writing = self._wrote_directly = False
        self._loop = gevent.get_hub().loop
        self._next_iteration = self._allow_direct
        self.last_received = clock.monotonic()  # when a read last brought frames (liveness)

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

    def silent_for(self) -> float:
        """Seconds since a read last brought frames from the peer (on this endpoint's clock)."""
        return self._clock.monotonic() - self.last_received

    @property
    def is_open(self) -> bool:
        return self._closed_error is None

    def wait_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the connection to end; True once it has."""
        return self._closed_event.wait(timeout)

    def close(self, error: ConnectionError_ | None = None) -> None:
        """Close the connection, fail pending asks, stop the greenlets. Idempotent."""
        if self._closed_error is not None:
            return
        self._closed_error = error or ClosedError(f"the connection to {self.peer.identity!r} "
                                                  f"({self.connection.peer_address}) was "
                                                  "closed by this side")
        self.connection.close()
        self._closed_event.set()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(self._closed_error)
        self._outgoing.clear()
        self._in_flight.release()
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
        """Queue a frame for the writer (or write it now, see ``_write_now``), waiting up to
        ``timeout`` for room.

        A caller's own short timeout raises MailboxFullError and leaves the link alone; only a
        peer that stays silent for the whole ``send_timeout`` counts as broken.
        """
        if self._closed_error is not None:
            raise self._closed_error
        if self._write_now(item):
            return
        wait = self._send_timeout if timeout is None else min(timeout, self._send_timeout)
        try:
            self._outgoing.put(item, timeout=wait)
        except Full:
            if wait < self._send_timeout:
                raise MailboxFullError(
                    f"the outgoing queue to {self.connection.peer_address} stayed full "
                    f"({self._outgoing.maxsize} frames) for {wait} s") from None
            error = BrokenError(f"{self.connection.peer_address} does not read: "
                                f"{self._outgoing.maxsize} frames waited for "
                                f"{self._send_timeout} s")
            self.close(error)
            raise error from None

    def _enqueue_from_callback(self, item: tuple) -> None:
        """Queue a reply without waiting (a greenlet waits for room in a full queue), or drop a
        peer that leaves too much unread."""
        if self._closed_error is not None or self._write_now(item):
            return
        if not self._outgoing.overfull(len(item[1])):
            if not self._outgoing.put_nowait(item):
                self._group.spawn(self._guard, lambda: self._enqueue_late(item))
        elif not self._dropping:  # closing tells on_closed's actor, which may wait: not here
            self._dropping = True
            self._group.spawn(self._guard, self._drop_non_reader)

    def _enqueue_late(self, item: tuple) -> None:
        try:
            self._outgoing.put_late(item, self._send_timeout)
        except Full:
            raise BrokenError(f"{self.connection.peer_address} does not read: "
                              f"{self._outgoing.maxsize} frames waited for "
                              f"{self._send_timeout} s") from None

    def _drop_non_reader(self) -> None:
        error = BrokenError(f"{self.connection.peer_address} does not read its replies: "
                            f"{self._outgoing.describe()} wait for it")
        log.warning("%s: closing the connection: %s", self.name, error)
        raise error  # _guard closes the connection with it

    def send_request(self, message: Any, request_id: int, timeout: float | None) -> None:
        """Queue a request (request_id 0 for a tell). Raises EncodeError before queueing."""
        type_id, payload = codec.encode_any(message)
        if len(payload) > self._max_send:
            self.connection.check_size(payload, type(message).__name__)
        self._enqueue((type_id, payload, Flag(0), request_id), timeout)

    def _write_now(self, item: tuple) -> bool:
        """Write ``item`` at once, without waiting, when the writer is idle and nothing is
        queued before it (at most once per loop iteration). True when it was written or
        handed to the writer; False: the caller queues it.

        Never blocks and never raises, so it is callable from the hub and from any actor: when
        the write fails, the item goes to the writer, which meets the same failure and closes
        the endpoint the usual way (in its own greenlet).
        """
        if (not self._direct or self._writing or self._wrote_directly
                or not self._queue.empty()):
            return False
        self._wrote_directly = True
        self._loop.run_callback(self._next_iteration)
        # the queue is empty and nothing yields in between: what is put in it here goes first
        try:
            rest = self.connection.try_send_batch([item])
        except Exception:
            self._outgoing.put_nowait(item)
            return True
        if rest:
            self._outgoing.put_nowait((None, rest, Flag(0), 0))
        return True

    def _allow_direct(self) -> None:
        self._wrote_directly = False

    def _send_value(self, request_id: int, value: Any) -> None:
        """Queue the reply that carries ``value`` (never blocks; callable from the hub)."""
        if value is None:
            item = (0, b"", Flag.REPLY, request_id)
        else:
            try:
                type_id, payload = codec.encode_any(value)
                if len(payload) > self._max_send:
                    self.connection.check_size(payload, f"the reply {type(value).__name__}")
                item = (type_id, payload, Flag.REPLY, request_id)
            except Exception as error:  # the asker gets the error instead (the link goes on)
                log.error("%s: a %s reply cannot be sent: %s", self.name, type(value).__name__,
                          error)
                item = self._error_item(request_id, error)
        self._enqueue_from_callback(item)

    def _send_error(self, request_id: int, error: BaseException) -> None:
        """Queue the reply that carries ``error`` (never blocks; callable from the hub)."""
        self._enqueue_from_callback(self._error_item(request_id, error))

    @staticmethod
    def _error_item(request_id: int, error: BaseException) -> tuple:
        type_id, payload = codec.encode_any(error_to_reply(error))
        return (type_id, payload, Flag.REPLY | Flag.ERROR, request_id)

    def _write_loop(self) -> None:
        outgoing = self._outgoing.queue
        written = self._outgoing.written
        send_batch = self.connection.send_batch
        # one timer for every batch (armed around each send): a peer that stops reading for
        # send_timeout breaks the connection
        stalled = gevent.Timeout(self._send_timeout, BrokenError(
            f"{self.connection.peer_address} stopped reading for {self._send_timeout} s"))
        while True:
            batch = [outgoing.get()]
            while len(batch) < _BATCH and not outgoing.empty():
                batch.append(outgoing.get_nowait())
            stalled.start()
            self._writing = True  # no frame may overtake the batch while it is sent
            try:
                send_batch(batch)
            finally:
                self._writing = False
                stalled.cancel()
            written(batch)

    # -- receiving ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        recv_batch = self.connection.recv_batch
        on_reply, on_request = self._on_reply, self._on_request
        monotonic = self._clock.monotonic
        while True:
            frames = recv_batch()
            self.last_received = monotonic()
            for frame in frames:  # every frame one read brought in
                if _IS_REPLY[frame.flags]:
                    on_reply(frame)
                else:
                    on_request(frame)

    def _on_reply(self, frame: Frame) -> None:
        future = self._pending.pop(frame.request_id, None)
        if future is None:
            log.debug("%s: late or unknown reply %d", self.name, frame.request_id)
            return
        try:
            future.set(reply_value(frame))
        except TitanError as error:
            future.set_exception(error)

    def _on_request(self, frame: Frame) -> None:
        request_id = frame.request_id
        try:
            if self.local is None:
                raise PermissionDeniedError(f"{self.name} accepts no requests")
            if frame.type_id not in self._allowed:  # checked before spending work on decoding
                check_may_send(self.peer.role, message_class(frame.type_id))
                self._allowed.add(frame.type_id)
            message = codec.decode_frame_message(frame)
            if self._scoped:
                check_run_scope(self.peer, message)
        except TitanError as error:
            if request_id:
                self._enqueue_from_callback(self._error_item(request_id, error))
            else:
                log.warning("%s: refused a message from %s: %s", self.name,
                            self.connection.peer_address, error)
            return
        if request_id and self._in_flight.blocked and not self._in_flight.wait_room(
                self._delivery_timeout):
            raise BrokenError(f"{self.name}: {self._in_flight.count} requests from "
                              f"{self.connection.peer_address} waited {self._delivery_timeout} s "
                              "for their answers; closing the connection")
        reply = PeerReply(self, request_id, len(frame.payload)) if request_id else None
        try:
            self.local.deliver(Envelope(message, self._sender, reply), self._delivery_timeout)
        except TitanError as error:
            if reply is None:
                # A tell must never vanish: break the link so that the peer learns it was lost.
                raise BrokenError(f"{self.name}: {type(message).__name__} from "
                                  f"{self.connection.peer_address} could not be delivered "
                                  f"({error}); closing the connection") from error
            reply.set_exception(error)

    # -- asks ---------------------------------------------------------------------------------

    def new_request(self, timeout: float, what: str) -> tuple[int, Future]:
        if self._closed_error is not None:
            raise self._closed_error
        request_id = self._ids.next(self._pending)
        future = Future(what)
        self._pending[request_id] = future

        def expire() -> None:
            if self._pending.pop(request_id, None) is future:
                future.set_exception(AskTimeoutError(f"no {what} within {timeout} s"))
        handle = self._clock.call_later(timeout, expire)
        future.add_done_callback(lambda _done: handle.cancel())
        return request_id, future

    def forget_request(self, request_id: int, error: BaseException) -> None:
        """Drop a request that could not be sent, failing its Future (which stops its timer)."""
        future = self._pending.pop(request_id, None)
        if future is not None:
            future.set_exception(error)


def make_send_lock() -> Semaphore:
    """The lock a gevent Connection uses to serialise senders."""
    return Semaphore()
