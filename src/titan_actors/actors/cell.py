"""The runtime of one actor: its mailbox, its loop greenlet, its instance and restart budget.

Internal to the actor system: user code holds refs, never cells.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent

from ..errors import ActorDeadError, NoHandlerError, TitanError
from .base import Actor, ActorRef, Envelope
from .future import Future
from .mailbox import EMPTY, Mailbox
from .supervision import Directive, RestartBudget, Supervision

if TYPE_CHECKING:
    from .system import ActorSystem

log = logging.getLogger("titan.actors")


class _Stop:
    __slots__ = ()


class _Crash:
    __slots__ = ("error", "where", "instance")

    def __init__(self, error: BaseException, where: str, instance: Actor | None) -> None:
        self.error, self.where, self.instance = error, where, instance


_STOP = _Stop()


class _Cell:
    """The runtime of one actor: mailbox, loop greenlet, current instance and restart budget."""

    def __init__(self, system: "ActorSystem", name: str, factory: Callable[[], Actor],
                 supervision: Supervision, mailbox: Mailbox) -> None:
        self.system, self.name, self.factory = system, name, factory
        self.mailbox = mailbox
        self.budget = RestartBudget(supervision)
        self.ref = ActorRef(self)
        self.instance: Actor | None = None
        self.greenlet: gevent.Greenlet | None = None
        self._stop_requested = False
        self._deferred: set[Future] = set()
        self.crashed = False  # True once a crash stopped this actor (not a requested stop)

    def request_stop(self) -> None:
        if not self._stop_requested and not self.mailbox.closed:
            self._stop_requested = True
            self.mailbox.put_internal(_STOP)
            self.mailbox.seal()  # refuse new messages now; those already queued are handled

    def report_crash(self, error: BaseException, where: str,
                     instance: Actor | None = None) -> None:
        """Queue a crash of ``instance`` (a later instance is not blamed for it)."""
        if not self.mailbox.closed:
            self.mailbox.put_internal(_Crash(error, where, instance))

    def run(self) -> None:
        try:
            if not self._start_instance():
                return
            while True:
                item = self.mailbox.get()
                if item is _STOP:
                    self._drain_and_stop()
                    return
                if isinstance(item, _Crash):
                    if item.instance is not None and item.instance is not self.instance:
                        log.info("actor %s: ignoring a crash of its previous instance in %s",
                                 self.name, item.where)
                        continue
                    if not self._crashed(item.error, item.where):
                        return
                    continue
                if not self._dispatch(item):
                    return
        finally:
            self._finalize()

    def _start_instance(self) -> bool:
        """Build an instance and run on_start; on a crash apply the policy. False: stopped."""
        while True:
            try:
                instance = self.factory()
                instance._cell = self
                self.instance = instance
                instance.on_start()
                return True
            except Exception as error:
                if self.instance is None:
                    log.exception("actor %s could not be constructed", self.name)
                    return False
                if not self._crashed(error, "on_start", restart_now=False):
                    return False

    def _dispatch(self, envelope: Envelope) -> bool:
        """Handle one envelope. Returns False when a crash stopped the actor."""
        instance = self.instance
        found = instance._handler_for(envelope.message)
        if found is None:
            error = NoHandlerError(
                f"actor {self.name!r} ({type(instance).__name__}) has no handler for "
                f"{type(envelope.message).__name__}")
            if envelope.reply is not None:
                envelope.reply.set_exception(error)
            else:
                log.warning("%s", error)
            return True
        handler, wants_sender = found
        try:
            result = handler(envelope.message, envelope.sender) if wants_sender else \
                handler(envelope.message)
        except Exception as error:
            if envelope.reply is not None:
                if not isinstance(error, TitanError):
                    log.warning("actor %s: %s raised while answering %s", self.name,
                                handler.__name__, type(envelope.message).__name__,
                                exc_info=True)
                envelope.reply.set_exception(error)
                return True
            return self._crashed(error, f"handler {handler.__name__}")
        if envelope.reply is not None:
            if isinstance(result, Future):
                # tracked, so that a stop or restart answers it instead of leaving it hanging
                reply = envelope.reply
                self._deferred.add(reply)
                reply.add_done_callback(self._deferred.discard)
                reply.resolve_from(result)
            else:
                envelope.reply.set(result)
        return True

    def _crashed(self, error: BaseException, where: str, restart_now: bool = True) -> bool:
        """Apply the supervision policy to a crash. Returns True when the actor goes on."""
        log.error("actor %s crashed in %s", self.name, where, exc_info=error)
        instance = self.instance
        try:
            instance.on_failure(error)
        except Exception:
            log.exception("actor %s: on_failure raised", self.name)
        instance._shutdown()
        if self.budget.decide(self.system.clock.monotonic()) is Directive.STOP:
            log.error("actor %s stopped after the crash", self.name)
            self.crashed = True
            self._fail_pending()
            return False
        log.warning("actor %s restarting", self.name)
        self._fail_deferred()
        self.instance = None
        if restart_now:
            return self._start_instance()
        return True

    def _drain_and_stop(self) -> None:
        self.mailbox.seal()
        while (item := self.mailbox.get_nowait()) is not EMPTY:
            if isinstance(item, Envelope) and not self._dispatch(item):
                return
        try:
            self.instance.on_stop()
        except Exception:
            log.exception("actor %s: on_stop raised", self.name)

    def _fail_deferred(self) -> None:
        for reply in list(self._deferred):
            reply.set_exception(ActorDeadError(
                f"actor {self.name!r} stopped or restarted before its deferred reply was ready"))
        self._deferred.clear()

    def _fail_pending(self) -> None:
        self._fail_deferred()
        for item in self.mailbox.close():
            if isinstance(item, Envelope) and item.reply is not None:
                item.reply.set_exception(ActorDeadError(
                    f"actor {self.name!r} stopped before it handled "
                    f"{type(item.message).__name__}"))

    def _finalize(self) -> None:
        self._fail_pending()
        if self.instance is not None:
            self.instance._shutdown()
        self.system._forget(self)
