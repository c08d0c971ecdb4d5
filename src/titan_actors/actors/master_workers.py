"""The master's side of its workers: registration, heartbeats, reports, leases.

A mixin of :class:`~titan_actors.actors.master.MasterActor` (see ``master_clients``).
"""

from __future__ import annotations

import logging

from .. import failpoints
from ..errors import StaleReportError, UsageError
from ..master import views
from ..master.workers import WorkerEntry
from ..wire.messages import master as m
from ..wire.messages import worker as w
from ..wire.roles import Role
from .base import Ref, Sender, handles
from .future import Future

log = logging.getLogger("titan.master")


class _CheckLeases:
    """Timer message: declare lost the workers and attempts whose lease ran out."""

    __slots__ = ()


class PeerGone:
    """A connection closed (sent by the server's callback)."""

    __slots__ = ("ref",)

    def __init__(self, ref: Ref) -> None:
        self.ref = ref


class WorkerRequests:
    """Handlers for the workers' messages, and the lease bookkeeping."""

    @handles(w.RegisterWorker)
    def _register(self, msg: w.RegisterWorker, sender: Sender) -> Future:
        if sender.peer.role is Role.WORKER and msg.name != sender.peer.identity:
            raise UsageError(f"worker {sender.peer.identity!r} cannot register as {msg.name!r}")
        tags = frozenset(msg.tags)
        old = self.workers.register(WorkerEntry(
            msg.name, tags, msg.slots, msg.host, msg.pid, msg.ephemeral, sender.ref,
            self.clock.monotonic(), burst_of=msg.burst_of))
        if old is not None and old.ref is not None and old.ref is not sender.ref:
            log.info("worker %s reconnected", msg.name)
        entry = self.workers.get(msg.name)
        self.scheduler.set_worker(msg.name, tags, msg.slots)
        records: list = []
        for result in msg.finished:
            records += self._finish(result)
        for ref in msg.running:
            self._claim(entry, ref)
        records += self._disowned(msg.name, {*msg.running, *(r.ref for r in msg.finished)},
                                  set(msg.lost))
        self.events.publish(kind=m.EventKind.WORKER, worker=msg.name, detail="connected")
        log.info("worker %s registered: tags %s, %d slots", msg.name, sorted(tags), msg.slots)
        registered = w.Registered(self.options.identity, self.options.heartbeat_interval,
                                  self.options.lease)
        return self._advance(records, reply_value=registered, want_reply=True)

    def _claim(self, entry: WorkerEntry, ref: w.AttemptRef) -> None:
        """A worker says it runs ``ref``: re-attach it, or kill it when it is not current."""
        if views.is_current(self.scheduler, ref, entry.name):
            entry.running.add(ref)
            self._unclaimed.pop((ref.run_id, ref.job_id), None)
        else:
            self._kill(entry.name, ref, "this attempt is no longer current")

    def _disowned(self, worker: str, reported: set[w.AttemptRef],
                  lost: set[w.AttemptRef]) -> list:
        """The attempts recorded as running on ``worker`` that it did not report when it
        registered (otherwise nothing would ever end them: its new entry does not hold them).
        One that a previous life of the worker started (``lost``) may have run: a failed
        attempt. Any other never reached the worker (the dispatch was recorded but not sent,
        or lost with a broken link): queued again, and the attempt does not count."""
        records: list = []
        for run_id, job_id, name, attempt, epoch in self.scheduler.running_attempts():
            ref = w.AttemptRef(run_id, job_id, attempt, epoch)
            if name == worker and ref not in reported:
                self._unclaimed.pop((run_id, job_id), None)
                if ref in lost:
                    records += self._lost(ref, f"worker {worker} restarted while running it")
                else:
                    records += self._undelivered(ref, worker)
        return records

    def _undelivered(self, ref: w.AttemptRef, worker: str) -> list:
        try:
            return self.scheduler.handed_back(
                ref.run_id, ref.job_id, ref.attempt, ref.epoch, self.clock.time(),
                f"its dispatch never reached worker {worker} (queued again; the attempt does "
                f"not count)")
        except StaleReportError:
            return []

    @handles(w.Heartbeat)
    def _heartbeat(self, msg: w.Heartbeat, sender: Sender) -> None:
        entry = self.workers.by_ref(sender.ref)
        if entry is None:
            return
        entry.last_seen = self.clock.monotonic()
        if msg.draining:
            self._draining(entry)
        for ref in msg.running:
            if (ref.run_id, ref.job_id) in self._unclaimed:
                self._claim(entry, ref)

    def _from_its_worker(self, sender: Sender, ref: w.AttemptRef, what: str,
                         level: int = logging.WARNING) -> bool:
        """Whether ``sender`` is the registered worker the attempt's job was dispatched to.
        Every worker holds the same worker key, so the key alone does not say which attempts
        a connection may report on; nor may a connection that never registered."""
        entry = self.workers.by_ref(sender.ref)
        if entry is not None and self._holds(entry.name, ref, unknown=False):
            return True
        log.log(level, "refused %s of %s/%s from %s: not its worker", what, ref.run_id,
                ref.job_id, entry.name if entry else sender.peer.identity)
        return False

    @handles(w.JobStarted)
    def _started(self, msg: w.JobStarted, sender: Sender) -> None:
        if not self._from_its_worker(sender, msg.ref, "a start"):
            return
        self.events.publish(kind=m.EventKind.JOB, run_id=msg.ref.run_id, job_id=msg.ref.job_id,
                            attempt=msg.ref.attempt, detail=f"process {msg.pid} started")

    @handles(w.JobOutput)
    def _output(self, msg: w.JobOutput, sender: Sender) -> None:
        ref = msg.ref
        if not self._from_its_worker(sender, ref, "output", logging.DEBUG):
            return
        key = (ref.run_id, ref.job_id, ref.attempt, ref.epoch)
        self._output_received[key] = self._output_received.get(key, 0) + len(msg.data)
        try:
            kept = self.logs.append(ref.run_id, ref.job_id, msg.data)
        except OSError as error:  # a full disk loses output, never the master
            log.error("cannot write the log of %s/%s: %s", ref.run_id, ref.job_id, error)
            return
        if kept:
            self.events.publish(kind=m.EventKind.LOG, run_id=ref.run_id, job_id=ref.job_id,
                                attempt=ref.attempt)

    @handles(w.JobFinished)
    def _finished(self, msg: w.JobFinished, sender: Sender) -> Future:
        failpoints.hit("master.finish.before_record")
        entry = self.workers.by_ref(sender.ref)
        ref = msg.result.ref
        if entry is None or not self._holds(entry.name, ref):
            # only the worker the attempt was dispatched to may end it
            log.warning("refused a report of %s/%s from %s: not its worker", ref.run_id,
                        ref.job_id, entry.name if entry else sender.peer.identity)
            return self._commit([], want_reply=True)
        entry.running.discard(ref)
        return self._advance(self._finish(msg.result), want_reply=True,
                             failpoint="master.finish.before_ack")

    def _holds(self, worker: str, ref: w.AttemptRef, unknown: bool = True) -> bool:
        """Whether ``worker`` is the one the job's latest attempt was dispatched to (a stale
        attempt number or epoch is refused later, by the scheduler). A job the scheduler does
        not know (pruned, or never there) gives ``unknown``: a result of it is refused as stale
        later; a start or output of it is refused here (its ids name nothing of ours)."""
        try:
            return self.scheduler.attempt(ref.run_id, ref.job_id)[3] == worker
        except UsageError:
            return unknown

    def _finish(self, result: w.AttemptResult) -> list:
        ref = result.ref
        self._unclaimed.pop((ref.run_id, ref.job_id), None)
        self._output_expected[(ref.run_id, ref.job_id, ref.attempt, ref.epoch)] = \
            result.output_bytes
        try:
            return self.scheduler.finished(ref.run_id, ref.job_id, ref.attempt, ref.epoch,
                                           result.exit_code, self.clock.time(), result.reason)
        except StaleReportError as error:
            log.info("refused a stale report: %s", error)
            return []

    @handles(w.HandBack)
    def _hand_back(self, msg: w.HandBack, sender: Sender) -> Future:
        ref = msg.ref
        if not self._from_its_worker(sender, ref, "a hand-back"):
            return self._commit([], want_reply=True)
        entry = self.workers.by_ref(sender.ref)
        entry.running.discard(ref)
        self._draining(entry)  # only a draining worker hands work back
        try:
            records = self.scheduler.handed_back(ref.run_id, ref.job_id, ref.attempt, ref.epoch,
                                                 self.clock.time())
        except StaleReportError:
            records = []
        return self._advance(records, want_reply=True)

    def _draining(self, entry: WorkerEntry) -> None:
        """A draining worker takes no new work: without this its free slots would be offered
        every job it then hands straight back, over and over until it stops."""
        if not entry.draining:
            entry.draining = True
            self.scheduler.remove_worker(entry.name)
            self.events.publish(kind=m.EventKind.WORKER, worker=entry.name, detail="draining")

    @handles(PeerGone)
    def _peer_gone(self, msg: PeerGone) -> None:
        self._files_peer_gone(msg.ref)
        entry = self.workers.by_ref(msg.ref)
        if entry is not None and entry.draining and not entry.running:
            # a drained worker that left (retired, or stopped on SIGTERM): gone, not lost
            self.workers.remove(entry.name)
            self.scheduler.remove_worker(entry.name)
            log.info("worker %s left after draining", entry.name)
            self.events.publish(kind=m.EventKind.WORKER, worker=entry.name, detail="left")
        elif entry is not None:
            log.info("worker %s disconnected; its lease runs for %.1f s", entry.name,
                     self.options.lease)
            self.events.publish(kind=m.EventKind.WORKER, worker=entry.name,
                                detail="disconnected")
            self.scheduler.remove_worker(entry.name)

    @handles(_CheckLeases)
    def _check_leases(self, msg: _CheckLeases) -> None:
        if self.degraded is not None:
            return
        now_mono = self.clock.monotonic()
        gap, self._last_lease_check = now_mono - self._last_lease_check, now_mono
        if gap > max(3 * self.options.heartbeat_interval, self.options.lease / 2):
            # this master did not run for a while (a long compaction, a CPU-bound request, a
            # SIGSTOP): its workers' heartbeats wait unread in their sockets, they are not
            # missing. Each connected worker gets a lease from now, not a loss.
            for entry in self.workers:
                if entry.connected:
                    entry.last_seen = max(entry.last_seen, now_mono)
            log.warning("the master did not run for %.1f s; its workers' leases start again",
                        gap)
            return
        records: list = []
        for entry in self.workers.expired(now_mono):
            self.workers.remove(entry.name)
            if entry.ref is not None and entry.ref.is_alive:
                entry.ref.close()  # a hung peer: drop its link so it must register again
            self.scheduler.remove_worker(entry.name)
            self.events.publish(kind=m.EventKind.WORKER, worker=entry.name, detail="lost")
            log.warning("worker %s lost (silent for more than %.1f s)", entry.name,
                        self.options.lease)
            for ref in entry.running:
                records += self._lost(ref, f"worker {entry.name} was lost")
        known = {entry.name for entry in self.workers}
        for run_id, job_id, worker, attempt, epoch in self.scheduler.running_attempts():
            if worker not in known and (run_id, job_id) not in self._unclaimed:
                # dispatched to a worker whose lease ran out before the dispatch left
                ref = w.AttemptRef(run_id, job_id, attempt, epoch)
                records += self._lost(ref, f"worker {worker} is gone")
        for key, deadline in list(self._unclaimed.items()):
            if now_mono > deadline:
                del self._unclaimed[key]
                for attempt in self.scheduler.running_attempts():
                    if attempt[:2] == key:
                        ref = w.AttemptRef(attempt[0], attempt[1], attempt[3], attempt[4])
                        records += self._lost(ref, "no worker claimed it after a restart")
        if records:
            self._advance(records)

    def _lost(self, ref: w.AttemptRef, reason: str) -> list:
        try:
            return self.scheduler.lost(ref.run_id, ref.job_id, ref.attempt, ref.epoch,
                                       self.clock.time(), reason)
        except StaleReportError:
            return []

    def _kill(self, worker: str, ref: w.AttemptRef, reason: str) -> None:
        entry = self.workers.get(worker)
        if entry is not None and entry.connected:
            try:
                entry.ref.tell(w.KillAttempt(ref, reason), timeout=1.0)
            except Exception as error:
                # a kill must not vanish: break the link; the worker registers again, and its
                # report of an attempt that is no longer current gets it killed then
                log.warning("could not ask %s to kill %s (%s); dropping its link", worker, ref,
                            error)
                entry.ref.close()
