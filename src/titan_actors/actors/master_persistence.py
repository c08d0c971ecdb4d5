"""The master when its append-only file cannot be written (a full disk): degraded, then restored.

A mixin of :class:`~titan_actors.actors.master.MasterActor`. The commit that meets the failure
is already applied in memory (the scheduler decided before the record was written); its reply
fails with an error that says so: not acknowledged, kept and written to disk if persistence
comes back before the master stops, lost otherwise. From then on the master is **degraded**:

* requests that would change the scheduler are refused before they touch it (the error says
  nothing was changed): submissions, cancels, retries, gate decisions, registrations and the
  workers' reports (a worker keeps a refused report and sends it again when it registers);
  service states, which workers repeat every heartbeat, are dropped meanwhile. Dispatches of
  the failed commit are not sent. Reads go on.
* every ``persistence_retry`` seconds the master tries to write its live state as a new AOF
  (temp file, fsync, rename, fsync the directory: as a compaction does). Once that succeeds it
  is healthy again: it logs it, timers resume, and it drops the link of every connected worker
  so that each registers again. Registration is the reconciliation path a master restart uses:
  the worker reports what it runs and what finished meanwhile, and an attempt it never got is
  declared lost and queued again.
* ``Ping`` answers with what is degraded (``titanctl ping`` prints it and exits 1), for the
  master and for its store.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..aof import restore_from_snapshot
from ..errors import AofWriteError, PersistenceError
from ..master import records as rec
from ..wire.messages import lifecycle as lc
from ..wire.messages import master as m
from ..wire.messages import worker as w
from ..wire.messages.control import Ping, Pong
from .base import handles
from .future import Future

log = logging.getLogger("titan.master")

# Requests refused while degraded, before they change anything.
_REFUSED = frozenset({m.SubmitRun, m.AddJobs, m.Cancel, m.Retry, m.Prune, lc.DecideGate,
                      lc.StopService, w.RegisterWorker, w.JobFinished, w.HandBack})
# Reports (tells) dropped while degraded: their sender repeats them.
_DROPPED = frozenset({w.ServiceState})


class Restore:
    """Timer message: while degraded, try to write the live state as a new AOF."""

    __slots__ = ()


class PersistenceRecovery:
    """Degraded persistence and its recovery (see the module docstring)."""

    degraded: BaseException | None

    def _init_persistence(self) -> None:
        self.degraded = None
        self._degraded_since = 0.0

    def _handler_for(self, message: Any):
        found = super()._handler_for(message)
        if self.degraded is None:
            aof = self.aof
            if aof is None or not aof.degraded or found is None:
                return found
            # failed on its own (a background fsync, a compaction after its rename)
            self._persistence_failed(aof.failure)
        if found is None:
            return found
        if type(message) in _REFUSED:
            return self._refuse_while_degraded, False  # a failed Future: a tell stays harmless
        if type(message) in _DROPPED:
            return _ignore, False
        return found

    def _refuse_while_degraded(self, msg: Any) -> Future:
        refused = Future("refused while degraded")
        try:
            self._refuse_if_degraded(type(msg).__name__)
        except PersistenceError as error:
            refused.set_exception(error)
        return refused

    def _refuse_if_degraded(self, what: str) -> None:
        """Raise PersistenceError (nothing changed) while degraded; for a change that a
        handler not refused up front is about to make."""
        if self.degraded is None:
            return
        log.info("refused a %s: persistence is degraded", what)
        raise PersistenceError(f"the master cannot persist, so it refused this {what} and "
                               f"changed nothing: {self.degraded_reason()}")

    def _persistence_failed(self, error: BaseException) -> None:
        """The AOF refused or failed a record: refuse changes until it is restored."""
        if self.degraded is not None:
            return
        self.degraded = error
        self._degraded_since = self.clock.monotonic()
        log.critical("the master's append-only file failed; refusing changes until its state "
                     "is written again (tried every %g s): %s",
                     self.options.persistence_retry, error)

    def _not_durable(self, error: BaseException) -> AofWriteError:
        """The error of a reply whose records were applied in memory but not made durable."""
        failure = AofWriteError(
            f"the master applied this change in memory but could not make it durable "
            f"({error}); it is not acknowledged: it is kept, and written to disk, if the "
            f"master restores its append-only file before it stops (it tries every "
            f"{self.options.persistence_retry:g} s), and lost if it stops first")
        failure.__cause__ = error
        return failure

    def degraded_reason(self) -> str:
        """Why the master cannot persist now, or "" when it can."""
        if self.degraded is None:
            return ""
        cause = self.degraded.__cause__ or self.degraded
        since = self.clock.monotonic() - self._degraded_since
        return (f"its append-only file {self.aof.path} cannot be written ({cause!r}) since "
                f"{since:.0f} s ago; it refuses changes and tries to write its state anew "
                f"every {self.options.persistence_retry:g} s")

    @handles(Restore)
    def _restore(self, msg: Restore) -> None:
        if self.degraded is None:
            return
        try:
            self.aof = restore_from_snapshot(
                self.aof, (rec.encode(record) for record in self.scheduler.snapshot()))
        except PersistenceError as error:
            log.debug("the master's persistence is still degraded: %s", error)
            return
        cause, self.degraded, self._last_barrier = self.degraded, None, None
        log.warning("master persistence restored after %.1f s: %s rewritten from memory; it "
                    "had failed with: %s", self.clock.monotonic() - self._degraded_since,
                    self.aof.path, cause)
        for entry in list(self.workers):
            if entry.connected:  # it registers again: what it ran and finished is reconciled
                entry.ref.close()
        self._arm_due()

    def _pong(self, msg: Ping, ask_store: bool = True) -> Pong | Future:
        """The answer to a ping: who, which version, and what is degraded (here and, with
        ``ask_store``, in the store, asked with a short timeout)."""
        from .. import __version__
        pong = Pong(msg.payload, self.options.identity, __version__, self.degraded_reason())
        if self.store is None or not ask_store:
            return pong
        try:
            asked = self.store.ask_async(Ping(b"master"), timeout=2.0)
        except Exception as error:
            return _with_problem(pong, f"the store did not answer: {error}")
        reply = Future("pong")

        def answered(done: Future) -> None:
            if not done.successful():
                reply.set(_with_problem(pong, f"the store did not answer: {done.exception}"))
            else:
                problem = getattr(done.value, "degraded", "")
                reply.set(_with_problem(pong, f"the store: {problem}" if problem else ""))
        asked.add_done_callback(answered)
        return reply


def _with_problem(pong: Pong, problem: str) -> Pong:
    if not problem:
        return pong
    text = f"{pong.degraded}; {problem}" if pong.degraded else problem
    return dataclasses.replace(pong, degraded=text)


def _ignore(msg: Any) -> None:
    log.debug("dropped %s while persistence is degraded (its sender repeats it)",
              type(msg).__name__)
