"""Actors: a greenlet that owns its state and reads a bounded mailbox of typed messages.

An :class:`Actor` subclass declares its handlers with :func:`handles`; the table from message
type to handler is built once per class. The only handle to a running actor is a :class:`Ref`:
an :class:`ActorRef` for an actor in this process, or a remote ref (``wire.bridge``) for one
across a connection. Both offer ``tell`` (fire and forget) and ``ask`` (a reply or the handler's
exception, always within a timeout).

Handlers take ``(self, message)`` or ``(self, message, sender)``. A handler's return value is the
reply to an ``ask``; a handler that cannot answer at once returns a :class:`Future` and resolves
it later, while the actor goes on with other messages.
"""

from __future__ import annotations

import abc
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import gevent
from gevent.pool import Group

from ..errors import ActorDeadError
from ..wire.registry import Lane
from ..wire.roles import LOCAL_PEER, PeerInfo
from .clock import SYSTEM_CLOCK, Clock, TimerHandle
from .future import Future

if TYPE_CHECKING:
    from .cell import _Cell

log = logging.getLogger("titan.actors")

DEFAULT_ASK_TIMEOUT = 30.0
DEFAULT_TELL_TIMEOUT = 10.0


def handles(*message_types: type) -> Callable:
    """Mark a method as the handler of ``message_types`` (each type has one handler per class)."""
    def mark(function: Callable) -> Callable:
        function._titan_handles = message_types  # type: ignore[attr-defined]
        return function
    return mark


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a message: a ref to answer or tell back (or None), and the peer's identity."""

    ref: "Ref | None" = None
    peer: PeerInfo = LOCAL_PEER


NO_SENDER = Sender()


def lane_of(message: Any) -> Lane:
    """The mailbox lane of a message: its class's LANE, control by default."""
    return getattr(type(message), "LANE", Lane.CONTROL)


class Ref(abc.ABC):
    """The interface shared by local and remote actor refs."""

    name: str

    @property
    @abc.abstractmethod
    def is_alive(self) -> bool:
        """False once the actor has stopped (or the connection to it is gone)."""

    @abc.abstractmethod
    def tell(self, message: Any, *, timeout: float | None = None,
             sender: Sender = NO_SENDER) -> None:
        """Deliver ``message`` without waiting for it to be handled.

        Raises:
            MailboxFullError: (local) the mailbox stayed full for ``timeout`` seconds.
            ActorDeadError: the actor is not running.
            ClosedError / BrokenError: (remote) the connection is closed or broken.
        """

    @abc.abstractmethod
    def ask_async(self, message: Any, *, timeout: float | None = None,
                  sender: Sender = NO_SENDER) -> Future:
        """Deliver ``message`` and return the Future of its reply (delivery errors raise)."""

    def ask(self, message: Any, *, timeout: float | None = None,
            sender: Sender = NO_SENDER) -> Any:
        """Deliver ``message`` and wait for its reply.

        Returns the handler's value. Raises the handler's exception, AskTimeoutError when no reply
        came within ``timeout`` (default 30 s), ActorDeadError when the actor stopped first, and
        the errors of :meth:`tell`.
        """
        timeout = DEFAULT_ASK_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout  # one deadline for delivery and reply together
        reply = self.ask_async(message, timeout=timeout, sender=sender)
        return reply.get(max(deadline - time.monotonic(), 0.0))


@dataclass(slots=True)
class Envelope:
    """A message on its way through a mailbox, with its sender and the Future of its reply."""

    message: Any
    sender: Sender
    reply: Future | None = None


class ActorRef(Ref):
    """A ref to an actor in this process: ``tell`` and ``ask`` put an envelope in its mailbox."""

    __slots__ = ("_cell", "name")

    def __init__(self, cell: "_Cell") -> None:
        self._cell = cell
        self.name = cell.name

    def __repr__(self) -> str:
        return f"<ActorRef {self.name}{'' if self.is_alive else ' (dead)'}>"

    @property
    def is_alive(self) -> bool:
        return not self._cell.mailbox.closed

    def tell(self, message: Any, *, timeout: float | None = None,
             sender: Sender = NO_SENDER) -> None:
        self.deliver(Envelope(message, sender), timeout)

    def ask_async(self, message: Any, *, timeout: float | None = None,
                  sender: Sender = NO_SENDER) -> Future:
        reply = Future(f"reply from actor {self.name!r} to {type(message).__name__}")
        self.deliver(Envelope(message, sender, reply), timeout)
        return reply

    def deliver(self, envelope: Envelope, timeout: float | None = None) -> None:
        """Put a prepared envelope in the mailbox (the bridge uses this for remote senders)."""
        timeout = DEFAULT_TELL_TIMEOUT if timeout is None else timeout
        self._cell.mailbox.put(envelope, lane_of(envelope.message), timeout)

    @property
    def crashed(self) -> bool:
        """True once a crash (that its supervision did not restart) stopped the actor."""
        return self._cell.crashed

    def join(self, timeout: float | None) -> bool:
        """Wait until the actor has stopped (None: as long as it runs). True once stopped."""
        self._cell.greenlet.join(timeout)
        return self._cell.greenlet.dead

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop the actor after the messages already in its mailbox; later ones are refused.

        Returns True when it stopped within ``timeout`` (None: don't wait). Stopping a stopped
        actor does nothing.
        """
        self._cell.request_stop()
        if timeout is None or gevent.getcurrent() is self._cell.greenlet:
            return False
        self._cell.greenlet.join(timeout)
        return self._cell.greenlet.dead



class Actor:
    """Base class of every actor. Subclasses declare handlers with :func:`handles`.

    Hooks: ``on_start`` (before the first message), ``on_stop`` (after the last, on a requested
    stop), ``on_failure(error)`` (after a crash, before the supervision decision). The clock is
    injected through the constructor; ``self.ref`` is valid from ``on_start`` on.
    """

    _handler_table: ClassVar[dict[type, tuple[str, bool]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Walk the whole MRO, most basic first, so that handler groups written as mixins (one
        # class per kind of peer) are found too, and subclasses override their bases.
        table: dict[type, tuple[str, bool]] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for message_type in getattr(member, "_titan_handles", ()):
                    params = [p for p in inspect.signature(member).parameters.values()
                              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
                    table[message_type] = (name, len(params) >= 3)
        cls._handler_table = table

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SYSTEM_CLOCK
        self._cell: _Cell | None = None
        self._group = Group()
        self._timers: set[TimerHandle] = set()

    # -- hooks --------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Called in the actor's greenlet before the first message."""

    def on_stop(self) -> None:
        """Called after the last message when the actor is stopped on request."""

    def on_failure(self, error: BaseException) -> None:
        """Called after a crash, before the actor is restarted or stopped."""

    # -- for subclasses -----------------------------------------------------------------------

    @property
    def ref(self) -> ActorRef:
        """This actor's own ref."""
        if self._cell is None:
            raise ActorDeadError(f"{type(self).__name__} is not started yet")
        return self._cell.ref

    @property
    def name(self) -> str:
        return self._cell.name if self._cell else type(self).__name__

    def spawn(self, function: Callable, *args: Any, **kwargs: Any) -> gevent.Greenlet:
        """Run ``function`` in a greenlet this actor owns: killed when the actor stops or
        restarts; an exception from it is a crash of this actor."""
        where = getattr(function, "__qualname__", repr(function))

        def guarded() -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as error:  # the owner's crash path, not the hub's
                cell = self._cell  # looked up now: the greenlet may predate on_start
                if cell is None:
                    log.error("%s: greenlet %s failed before the actor started",
                              type(self).__name__, where, exc_info=error)
                else:
                    cell.report_crash(error, f"greenlet {where}", self)
                raise _Reported() from error
        return self._group.spawn(_swallow_reported, guarded)

    def send_after(self, delay: float, message: Any) -> TimerHandle:
        """Deliver ``message`` to this actor after ``delay`` seconds of its clock."""
        def fire() -> None:
            self._timers.discard(handle)
            self.notify(message)
        handle = self.clock.call_later(delay, fire)
        self._timers.add(handle)
        return handle

    def send_every(self, interval: float, message: Any) -> TimerHandle:
        """Deliver ``message`` every ``interval`` seconds until the returned handle is cancelled
        or the actor stops."""
        repeating = _Repeating(self, interval, message)
        repeating.schedule()
        return repeating

    def stop(self) -> None:
        """Ask this actor to stop after the messages already queued."""
        if self._cell is not None:
            self._cell.request_stop()

    # -- internals ----------------------------------------------------------------------------

    def notify(self, message: Any) -> None:
        """Deliver ``message`` to this actor without blocking, from anywhere: a timer, a
        Future's callback in the hub, another greenlet. Dropped once the actor stopped."""
        if self._cell is not None and not self._cell.mailbox.closed:
            self._cell.mailbox.put_internal(Envelope(message, Sender(self._cell.ref)))

    def _handler_for(self, message: Any) -> tuple[Callable, bool] | None:
        entry = self._handler_table.get(type(message))
        if entry is None:
            for base in type(message).__mro__[1:]:
                entry = self._handler_table.get(base)
                if entry:
                    break
            else:
                return None
        name, wants_sender = entry
        return getattr(self, name), wants_sender

    def _shutdown(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        self._group.kill(block=False)


class _Reported(Exception):
    """An owned greenlet's error that was already handed to its actor's crash path."""


def _swallow_reported(guarded: Callable) -> Any:
    try:
        return guarded()
    except _Reported:
        return None


class _Repeating:
    """A periodic timer: reschedules itself after each delivery."""

    def __init__(self, actor: Actor, interval: float, message: Any) -> None:
        self._actor, self._interval, self._message = actor, interval, message
        self._handle: TimerHandle | None = None
        self._cancelled = False

    def schedule(self) -> None:
        if not self._cancelled:
            self._handle = self._actor.clock.call_later(self._interval, self._fire)
            self._actor._timers.add(self)

    def _fire(self) -> None:
        self._actor._timers.discard(self)
        self._actor.notify(self._message)
        self.schedule()

    def cancel(self) -> None:
        self._cancelled = True
        if self._handle is not None:
            self._handle.cancel()
        self._actor._timers.discard(self)
