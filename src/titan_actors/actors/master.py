"""The master: owns the scheduler, the workers, the event stream and the job logs.

Every decision of the scheduler is a record; the master appends it to its AOF and acts on it
(publishes the event, sends the dispatch or kill, answers the client) only once the record is
durable, so a restarted master replays to exactly what it had acknowledged. Workers dial in and
are served by the same actor; liveness is a lease on the monotonic clock, and the only timers are
the lease check and one timer for the scheduler's next due time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aof import AppendOnlyFile
from ..errors import PersistenceError, StaleReportError, UsageError
from ..master import records as rec
from ..master import views
from ..master.events import EventStream
from ..master.logs import LogStore
from ..master.workers import WorkerEntry, WorkerRegistry
from ..scheduler import Scheduler
from ..scheduler.model import RunState
from ..wire.auth import KeyRing
from ..wire.messages import master as m
from ..wire.messages import worker as w
from ..wire.messages.control import Ping, Pong
from ..wire.messages.handshake import JobTokenClaims
from ..wire.roles import Role
from .base import Actor, Ref, Sender, handles
from .future import Future

log = logging.getLogger("titan.master")


@dataclass(frozen=True, slots=True)
class MasterOptions:
    """The master's settings (the composition root fills them from the config)."""

    data_dir: Path
    identity: str = "master"
    address: tuple[str, int] = ("127.0.0.1", 9090)
    aof_fsync: str = "always"
    heartbeat_interval: float = 1.0
    lease: float = 10.0
    log_cap: int = 64 * 1024 * 1024
    token_lifetime: float = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class PeerGone:
    """A connection closed (sent by the server's callback)."""

    ref: Ref


@dataclass(frozen=True, slots=True)
class _CheckLeases:
    pass


@dataclass(frozen=True, slots=True)
class _Due:
    pass


@dataclass(frozen=True, slots=True)
class _Committed:
    """Records that became durable, and what to do now that they are."""

    records: tuple[Any, ...]
    reply: Future | None = None
    value: Any = None
    dispatches: tuple[Any, ...] = field(default_factory=tuple)
    failure: BaseException | None = None


class MasterActor(Actor):
    """The master actor. See the module docstring."""

    def __init__(self, options: MasterOptions, *, keys: KeyRing | None = None,
                 clock=None) -> None:
        super().__init__(clock=clock)
        self.options = options
        self.keys = keys
        self.scheduler = Scheduler()
        self.workers = WorkerRegistry(options.lease)
        self.aof: AppendOnlyFile | None = None
        self.events: EventStream | None = None
        self.logs = LogStore(options.data_dir / "logs", options.log_cap)
        self._unclaimed: dict[tuple[str, str], float] = {}
        self._due_timer = None
        self._due_at: float | None = None
        self._announced: set[str] = set()
        self.degraded: BaseException | None = None

    # -- life ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        self.aof = AppendOnlyFile.open(self.options.data_dir / "master.aof",
                                       self.options.aof_fsync)
        count = 0
        for payload in self.aof.take_replayed():
            self.scheduler.apply(rec.decode(payload))
            count += 1
        self.events = EventStream(self.clock, last_seq=count)
        now = self.clock.monotonic()
        for run_id, job_id, _worker, _attempt, _epoch in self.scheduler.running_attempts():
            self._unclaimed[(run_id, job_id)] = now + self.options.lease
        log.info("master replayed %d records; %d running attempts await their workers",
                 count, len(self._unclaimed))
        self.send_every(self.options.heartbeat_interval, _CheckLeases())
        self._arm_due()

    def on_stop(self) -> None:
        if self.events is not None:
            self.events.close()
        if self.aof is not None:
            self.aof.close()

    # -- committing ---------------------------------------------------------------------------

    def _commit(self, records: list, *, reply_value: Any = None, want_reply: bool = False,
                dispatches: tuple = ()) -> Future | None:
        """Append ``records``; once durable, publish them, send ``dispatches`` and answer.

        Returns the Future of the reply when ``want_reply``: the reply leaves only after the
        fsync that covers the records (or fails with the persistence error).
        """
        if self.degraded is not None:
            raise PersistenceError(f"the master cannot persist: {self.degraded}")
        reply = Future("durable reply") if want_reply else None
        if not records:
            self.notify(_Committed((), reply, reply_value, dispatches))
            return reply
        barrier = None
        for record in records:
            barrier = self.aof.append(rec.encode(record))

        def durable(done) -> None:
            failure = None if done.successful() else done.exception
            self.notify(_Committed(tuple(records), reply, reply_value, dispatches, failure))
        barrier.add_done_callback(durable)
        return reply

    @handles(_Committed)
    def _on_committed(self, msg: _Committed) -> None:
        if msg.failure is not None:
            self.degraded = msg.failure
            log.critical("the master's AOF failed; refusing further changes: %s", msg.failure)
            if msg.reply is not None:
                msg.reply.set_exception(msg.failure)
            return
        for record in msg.records:
            for event in views.events_of(record):
                self.events.publish(**event)
        self._announce_finished_runs(views.runs_touched(msg.records))
        for assignment in msg.dispatches:
            self._send_dispatch(assignment)
        if msg.reply is not None:
            msg.reply.set(msg.value)
        self._arm_due()

    def _announce_finished_runs(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            try:
                run = self.scheduler.run(run_id)
            except UsageError:
                continue  # pruned
            if run.state is not RunState.ACTIVE and run_id not in self._announced:
                self._announced.add(run_id)
                self.events.publish(kind=m.EventKind.RUN, run_id=run_id, run_state=run.state,
                                    detail=f"{run.name} {run.state.value}")
            elif run.state is RunState.ACTIVE:
                self._announced.discard(run_id)

    def _advance(self, records: list, **kwargs: Any) -> Future | None:
        """Commit ``records`` plus every dispatch that becomes possible now."""
        assignments, more = self._assign()
        return self._commit(records + more, dispatches=assignments, **kwargs)

    def _assign(self) -> tuple[tuple, list]:
        assignments = self.scheduler.assign(self.clock.time())
        return tuple(assignments), [a.record for a in assignments]

    def _send_dispatch(self, assignment) -> None:
        entry = self.workers.get(assignment.worker)
        if entry is None or not entry.connected:
            return  # the lease check will declare the attempt lost
        ref = w.AttemptRef(assignment.run_id, assignment.job_id, assignment.attempt,
                           assignment.epoch)
        entry.running.add(ref)
        host, port = self.options.address
        try:
            entry.ref.tell(w.Dispatch(ref, assignment.spec, self._token(ref), host, port),
                           timeout=1.0)
        except Exception as error:  # a broken link: the lease will catch the attempt
            log.warning("could not dispatch %s to %s: %s", ref, entry.name, error)

    def _token(self, ref: w.AttemptRef) -> str:
        if self.keys is None:
            return ""
        claims = JobTokenClaims(ref.run_id, ref.job_id, ref.attempt,
                                self.clock.time() + self.options.token_lifetime,
                                ref.epoch.to_bytes(8, "big"))
        return self.keys.mint_job_token(claims)

    def _arm_due(self) -> None:
        due = self.scheduler.next_due()
        if due == self._due_at:
            return
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        self._due_at = due
        if due is not None:
            self._due_timer = self.send_after(max(due - self.clock.time(), 0.0), _Due())

    @handles(_Due)
    def _on_due(self, msg: _Due) -> None:
        self._due_timer, self._due_at = None, None
        self._advance(self.scheduler.due(self.clock.time()))

    # -- clients ------------------------------------------------------------------------------

    @handles(Ping)
    def _ping(self, msg: Ping) -> Pong:
        from .. import __version__
        return Pong(msg.payload, self.options.identity, __version__)

    @handles(m.SubmitRun)
    def _submit(self, msg: m.SubmitRun, sender: Sender) -> Future:
        from_run = msg.from_run or sender.peer.run_id
        run_id, records = self.scheduler.submit(msg.spec, self.clock.time(), from_run=from_run)
        accepted = m.RunAccepted(run_id, msg.spec.name, tuple(j.id for j in msg.spec.jobs))
        return self._advance(records, reply_value=accepted, want_reply=True)

    @handles(m.AddJobs)
    def _add_jobs(self, msg: m.AddJobs, sender: Sender) -> Future:
        records = self.scheduler.add_jobs(msg.run_id, msg.jobs, self.clock.time(),
                                          from_run=sender.peer.run_id)
        run = self.scheduler.run(msg.run_id)
        accepted = m.RunAccepted(msg.run_id, run.name, tuple(j.id for j in msg.jobs))
        return self._advance(records, reply_value=accepted, want_reply=True)

    @handles(m.Cancel)
    def _cancel(self, msg: m.Cancel) -> Future:
        run_id, job_id = views.resolve_target(self.scheduler, msg.ref)
        records = self.scheduler.cancel(run_id, job_id, self.clock.time())
        for record in records:
            kill = views.kill_of(record)
            if kill is not None:
                self._kill(*kill, reason="cancelled")
        what = f"job {run_id}/{job_id}" if job_id else f"run {run_id}"
        text = f"cancelled {what} ({len(records)} jobs changed)"
        return self._advance(records, reply_value=m.Done(text), want_reply=True)

    @handles(m.Retry)
    def _retry(self, msg: m.Retry) -> Future:
        run_id, job_id = self.scheduler.resolve(msg.ref)
        records = self.scheduler.retry(run_id, job_id, self.clock.time())
        text = f"retrying {run_id}/{job_id} ({len(records)} jobs changed)"
        return self._advance(records, reply_value=m.Done(text), want_reply=True)

    @handles(m.Prune)
    def _prune(self, msg: m.Prune) -> Future:
        run_ids = views.expired_runs(self.scheduler, self.clock.time(), msg.older_than, msg.keep)
        records = self.scheduler.forget_runs(run_ids) if run_ids else []
        for run_id in run_ids:
            self.logs.drop_run(run_id)
        reply = self._commit(records, reply_value=m.Done(f"pruned {len(run_ids)} runs"),
                             want_reply=True)
        if self.aof.needs_rewrite() or run_ids:
            self.aof.rewrite(rec.encode(r) for r in self.scheduler.snapshot())
        return reply

    @handles(m.GetRun)
    def _get_run(self, msg: m.GetRun) -> m.RunDetail:
        return views.run_detail(self.scheduler, msg.run_ref, self.events.last_seq)

    @handles(m.ListRuns)
    def _list_runs(self, msg: m.ListRuns) -> m.RunList:
        return m.RunList(tuple(views.run_summary(r)
                               for r in self.scheduler.runs()[:max(msg.limit, 0)]))

    @handles(m.GetJob)
    def _get_job(self, msg: m.GetJob) -> m.JobDetail:
        run_id, job_id = self.scheduler.resolve(msg.job_ref)
        history = [e for e in self.events.since(0, run_id, limit=100_000).events
                   if e.job_id == job_id]
        return views.job_detail(self.scheduler, run_id, job_id, history)

    @handles(m.GetLogs)
    def _get_logs(self, msg: m.GetLogs) -> m.LogChunk:
        run_id, job_id = self.scheduler.resolve(msg.job_ref)
        data = self.logs.read(run_id, job_id, msg.offset, msg.limit)
        finished = views.is_terminal(self.scheduler.job(run_id, job_id).state)
        return m.LogChunk(run_id, job_id, data, msg.offset, msg.offset + len(data), finished,
                          self.logs.truncated(run_id, job_id), self.events.last_seq)

    @handles(m.WaitEvents)
    def _wait_events(self, msg: m.WaitEvents):
        return self.events.wait(msg.after_seq, msg.run_id, min(max(msg.timeout, 0.0), 60.0))

    @handles(m.ListWorkers)
    def _list_workers(self, msg: m.ListWorkers) -> m.WorkerList:
        now = self.clock.monotonic()
        return m.WorkerList(tuple(entry.info(now) for entry in self.workers))

    # -- workers ------------------------------------------------------------------------------

    @handles(w.RegisterWorker)
    def _register(self, msg: w.RegisterWorker, sender: Sender) -> Future:
        if sender.peer.role is Role.WORKER and msg.name != sender.peer.identity:
            raise UsageError(f"worker {sender.peer.identity!r} cannot register as {msg.name!r}")
        tags = frozenset(msg.tags)
        old = self.workers.register(WorkerEntry(
            msg.name, tags, msg.slots, msg.host, msg.pid, msg.ephemeral, sender.ref,
            self.clock.monotonic()))
        if old is not None and old.ref is not None and old.ref is not sender.ref:
            log.info("worker %s reconnected", msg.name)
        entry = self.workers.get(msg.name)
        self.scheduler.set_worker(msg.name, tags, msg.slots)
        records: list = []
        for result in msg.finished:
            records += self._finish(result)
        for ref in msg.running:
            self._claim(entry, ref)
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
            entry.ref.tell(w.KillAttempt(ref, "this attempt is no longer current"), timeout=1.0)

    @handles(w.Heartbeat)
    def _heartbeat(self, msg: w.Heartbeat, sender: Sender) -> None:
        entry = self.workers.by_ref(sender.ref)
        if entry is None:
            return
        entry.last_seen = self.clock.monotonic()
        entry.draining = msg.draining
        for ref in msg.running:
            if (ref.run_id, ref.job_id) in self._unclaimed:
                self._claim(entry, ref)

    @handles(w.JobStarted)
    def _started(self, msg: w.JobStarted, sender: Sender) -> None:
        self.events.publish(kind=m.EventKind.JOB, run_id=msg.ref.run_id, job_id=msg.ref.job_id,
                            attempt=msg.ref.attempt, detail=f"process {msg.pid} started")

    @handles(w.JobOutput)
    def _output(self, msg: w.JobOutput) -> None:
        if self.logs.append(msg.ref.run_id, msg.ref.job_id, msg.data):
            self.events.publish(kind=m.EventKind.LOG, run_id=msg.ref.run_id,
                                job_id=msg.ref.job_id, attempt=msg.ref.attempt)

    @handles(w.JobFinished)
    def _finished(self, msg: w.JobFinished, sender: Sender) -> Future:
        entry = self.workers.by_ref(sender.ref)
        if entry is not None:
            entry.running.discard(msg.result.ref)
        return self._advance(self._finish(msg.result), want_reply=True)

    def _finish(self, result: w.AttemptResult) -> list:
        ref = result.ref
        self._unclaimed.pop((ref.run_id, ref.job_id), None)
        try:
            return self.scheduler.finished(ref.run_id, ref.job_id, ref.attempt, ref.epoch,
                                           result.exit_code, self.clock.time(), result.reason)
        except StaleReportError as error:
            log.info("refused a stale report: %s", error)
            return []

    @handles(w.HandBack)
    def _hand_back(self, msg: w.HandBack, sender: Sender) -> Future:
        entry = self.workers.by_ref(sender.ref)
        if entry is not None:
            entry.running.discard(msg.ref)
        ref = msg.ref
        try:
            records = self.scheduler.handed_back(ref.run_id, ref.job_id, ref.attempt, ref.epoch,
                                                 self.clock.time())
        except StaleReportError:
            records = []
        return self._advance(records, want_reply=True)

    @handles(PeerGone)
    def _peer_gone(self, msg: PeerGone) -> None:
        entry = self.workers.by_ref(msg.ref)
        if entry is not None:
            log.info("worker %s disconnected; its lease runs for %.1f s", entry.name,
                     self.options.lease)
            self.events.publish(kind=m.EventKind.WORKER, worker=entry.name,
                                detail="disconnected")
            self.scheduler.remove_worker(entry.name)

    @handles(_CheckLeases)
    def _check_leases(self, msg: _CheckLeases) -> None:
        now_mono = self.clock.monotonic()
        records: list = []
        for entry in self.workers.expired(now_mono):
            self.workers.remove(entry.name)
            self.scheduler.remove_worker(entry.name)
            self.events.publish(kind=m.EventKind.WORKER, worker=entry.name, detail="lost")
            log.warning("worker %s lost (silent for more than %.1f s)", entry.name,
                        self.options.lease)
            for ref in entry.running:
                records += self._lost(ref, f"worker {entry.name} was lost")
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
                log.warning("could not ask %s to kill %s: %s", worker, ref, error)
