"""The master: owns the scheduler, the workers, the event stream and the job logs.

Every decision of the scheduler is a record; the master appends it to its AOF and acts on it
(publishes the event, sends the dispatch or kill, answers the client) only once the record is
durable, so a restarted master replays to exactly what it had acknowledged. Workers dial in and
are served by the same actor; liveness is a lease on the monotonic clock, and the only timers are
the lease check, one timer for the scheduler's next due time, retention, and the attempt to
restore persistence after a write failure (``master_persistence``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import failpoints
from ..aof import AppendOnlyFile
from ..errors import PersistenceError, UsageError
from ..master import records as rec
from ..master import views
from ..master.events import EventStream
from ..master.files import FileStore
from ..master.logs import LogStore
from ..master.workers import WorkerRegistry
from ..scheduler import Backoff, Scheduler
from ..scheduler.model import ON_WORKER_STATES, RunState
from ..wire.auth import KeyRing
from ..wire.messages import master as m
from ..wire.messages import worker as w
from ..wire.messages.handshake import JobTokenClaims
from .base import Actor, Ref, handles
from .future import Future
from .master_clients import ClientRequests
from .master_files import FileRequests
from .master_lifecycle import LifecycleRequests
from .master_persistence import PersistenceRecovery, Restore
from .master_scaling import ScalerRequests
from .master_workers import PeerGone, WorkerRequests, _CheckLeases

__all__ = ["CheckToken", "MasterActor", "MasterOptions", "PeerGone"]

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
    # the pause before an automatic retry (tests shorten it)
    retry_backoff: Backoff = Backoff(base=1.0, cap=60.0, jitter=0.1)
    retention_age: float = 7 * 86400.0
    retention_runs: int = 1000
    retention_interval: float = 60.0
    # after a job ended, how long its last output may still be on its way
    output_grace: float = 10.0
    max_upload_size: int = 4 << 30
    # the AOF's compaction thresholds, and how often a degraded AOF is written anew
    aof_rewrite_min_size: int = 64 * 1024 * 1024
    aof_rewrite_percentage: int = 100
    persistence_retry: float = 1.0
    # os.write / os.fsync for the AOF (tests fail or watch them)
    write: Callable[[int, bytes], int] = os.write
    fsync: Callable[[int], None] = os.fsync


@dataclass(frozen=True, slots=True)
class CheckToken:
    """Is this job token still good? (asked by the server during a job's handshake)"""

    claims: JobTokenClaims


@dataclass(frozen=True, slots=True)
class _Retention:
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
    kills: tuple[Any, ...] = field(default_factory=tuple)
    failpoint: str = ""  # reached after the records are durable, before the reply is set


class MasterActor(PersistenceRecovery, ClientRequests, FileRequests, LifecycleRequests,
                  ScalerRequests, WorkerRequests, Actor):
    """The master actor. See the module docstring."""

    def __init__(self, options: MasterOptions, *, keys: KeyRing | None = None,
                 clock=None, store: Ref | None = None) -> None:
        super().__init__(clock=clock)
        self.options = options
        self.keys = keys
        self.store = store  # the store actor, embedded or across a connection
        self.scheduler = Scheduler(backoff=options.retry_backoff)
        self.workers = WorkerRegistry(options.lease)
        self.aof: AppendOnlyFile | None = None
        self.events: EventStream | None = None
        self.logs = LogStore(options.data_dir / "logs", options.log_cap)
        self.files: FileStore | None = None
        self._unclaimed: dict[tuple[str, str], float] = {}
        self._due_timer = None
        self._due_at: float | None = None
        self._announced: dict[str, RunState] = {}  # runs whose end (or serving) was published
        self._output_expected: dict[tuple[str, str, int, int], int] = {}
        self._output_received: dict[tuple[str, str, int, int], int] = {}
        self._last_barrier = None
        self._init_persistence()

    # -- life ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        self.aof = AppendOnlyFile.open(self.options.data_dir / "master.aof",
                                       self.options.aof_fsync,
                                       rewrite_min_size=self.options.aof_rewrite_min_size,
                                       rewrite_percentage=self.options.aof_rewrite_percentage,
                                       write=self.options.write,
                                       fsync=self.options.fsync)
        count = 0
        for payload in self.aof.take_replayed():
            self.scheduler.apply(rec.decode(payload))
            count += 1
        self.events = EventStream(self.clock, last_seq=count)
        self.files = FileStore(self.options.data_dir / "files",
                               max_size=self.options.max_upload_size, clock=self.clock.time)
        self._collect_files()
        now = self.clock.monotonic()
        for run_id, job_id, _worker, _attempt, _epoch in self.scheduler.running_attempts():
            self._unclaimed[(run_id, job_id)] = now + self.options.lease
        log.info("master replayed %d records; %d running attempts await their workers",
                 count, len(self._unclaimed))
        self._last_lease_check = self.clock.monotonic()
        self.send_every(self.options.heartbeat_interval, _CheckLeases())
        self.send_every(self.options.retention_interval, _Retention())
        self.send_every(self.options.persistence_retry, Restore())
        self._arm_due()

    def on_stop(self) -> None:
        if self.events is not None:
            self.events.close()
        if self.aof is not None:
            self.aof.close()

    # -- committing ---------------------------------------------------------------------------

    def _commit(self, records: list, *, reply_value: Any = None, want_reply: bool = False,
                dispatches: tuple = (), failpoint: str = "") -> Future | None:
        """Append ``records``; once durable, publish them, send ``dispatches`` and the kills
        they imply, and answer.

        Returns the Future of the reply when ``want_reply``: the reply leaves only after the
        fsync that covers the records, and after every earlier record too (an empty commit
        waits for the last append), or fails with the persistence error (the records stay
        applied in memory: see ``master_persistence``).
        """
        if self.degraded is not None:
            if records:  # a handler not refused up front already changed the scheduler
                raise self._not_durable(PersistenceError(self.degraded_reason()))
            raise PersistenceError(f"the master cannot persist: {self.degraded_reason()}")
        reply = Future("durable reply") if want_reply else None
        kills = tuple(kill for kill in map(views.kill_of, records) if kill is not None)
        try:
            for record in records:
                self._last_barrier = self.aof.append(rec.encode(record))
        except Exception as error:
            # The scheduler already holds these records: without them on disk its state can no
            # longer be trusted to match the file, so nothing more is accepted until the whole
            # state is written anew.
            self._persistence_failed(error)
            raise self._not_durable(error) from error
        committed = (tuple(records), reply, reply_value, dispatches)
        barrier = self._last_barrier
        if barrier is None or barrier.ready() and barrier.successful():
            self.notify(_Committed(*committed, kills=kills, failpoint=failpoint))
            return reply

        def durable(done) -> None:
            failure = None if done.successful() else done.exception
            self.notify(_Committed(*committed, failure=failure, kills=kills,
                                   failpoint=failpoint))
        barrier.add_done_callback(durable)
        return reply

    @handles(_Committed)
    def _on_committed(self, msg: _Committed) -> None:
        # Failed records stay applied in memory (published and acted on, except dispatches)
        # and are written with the whole state once persistence is restored.
        failed = msg.failure is not None
        if failed:
            self._persistence_failed(msg.failure)
        before = self.events.last_seq
        for record in msg.records:
            for event in views.events_of(record):
                self.events.publish(**event)
        self._announce_finished_runs(views.runs_touched(msg.records))
        for worker, ref in msg.kills:
            self._kill(worker, ref, "cancelled")
        for assignment in msg.dispatches:
            if failed:  # not sent: its worker registers again after the restore, and the
                continue  # attempt it never got is declared lost then
            failpoints.hit("master.dispatch.before_send")
            self._send_dispatch(assignment)
        if msg.reply is not None and failed:
            msg.reply.set_exception(self._not_durable(msg.failure))
        elif msg.reply is not None:
            if msg.failpoint:
                failpoints.hit(msg.failpoint)
            value = msg.value
            if isinstance(value, m.RunAccepted):  # a client follows the run from its start
                value = dataclasses.replace(value, last_seq=before)
            msg.reply.set(value)
        self._arm_due()
        if not failed and self.aof.needs_rewrite():
            self._compact()

    def _announce_finished_runs(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            try:
                run = self.scheduler.run(run_id)
            except UsageError:
                continue  # pruned
            if run.state is RunState.ACTIVE:
                self._announced.pop(run_id, None)
            elif self._announced.get(run_id) is not run.state:  # serving, then finished
                self._announced[run_id] = run.state
                self.events.publish(kind=m.EventKind.RUN, run_id=run_id, run_state=run.state,
                                    detail=f"{run.name} {run.state.value}")

    def _advance(self, records: list, **kwargs: Any) -> Future | None:
        """Commit ``records`` plus every dispatch that becomes possible now."""
        assignments, more = self._assign()
        return self._commit(records + more, dispatches=assignments, **kwargs)

    def _assign(self) -> tuple[tuple, list]:
        assignments = self.scheduler.assign(self.clock.time())
        return tuple(assignments), [a.record for a in assignments]

    def _send_dispatch(self, assignment) -> None:
        entry = self.workers.get(assignment.worker)
        if entry is None:
            return  # gone since the assignment: the lease check declares the attempt lost
        ref = w.AttemptRef(assignment.run_id, assignment.job_id, assignment.attempt,
                           assignment.epoch)
        if not views.is_current(self.scheduler, ref, entry.name):
            return  # cancelled (or otherwise ended) while its record was on its way to disk
        entry.running.add(ref)  # even unsent: the lease check must see it to declare it lost
        if not entry.connected:
            return
        host, port = self.options.address
        spec = self._with_service_addresses(assignment.run_id, assignment.spec, entry.host)
        try:
            entry.ref.tell(w.Dispatch(ref, spec, self._token(ref), host, port), timeout=1.0)
        except Exception as error:
            # A dispatch must not vanish on a live link: break it, so the worker registers
            # again and the attempt it never got is declared lost and runs again.
            log.warning("could not dispatch %s to %s (%s); dropping its link", ref,
                        entry.name, error)
            entry.ref.close()

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

    # -- retention and compaction ---------------------------------------------------------------

    def _prune_runs(self, older_than: float, keep: int) -> tuple[int, Future | None]:
        """Forget finished runs past retention (with their logs), then compact the AOF."""
        run_ids = views.expired_runs(self.scheduler, self.clock.time(), older_than, keep)
        if not run_ids:
            return 0, self._commit([], reply_value=m.Done("pruned 0 runs"), want_reply=True)
        records = self.scheduler.forget_runs(run_ids, self.clock.time())
        dropped = set(run_ids)
        for run_id in run_ids:
            self.logs.drop_run(run_id)
            self._announced.pop(run_id, None)
        for table in (self._output_expected, self._output_received):
            for key in [k for k in table if k[0] in dropped]:
                del table[key]
        reply = self._commit(records, reply_value=m.Done(f"pruned {len(run_ids)} runs"),
                             want_reply=True)
        self._compact()
        return len(run_ids), reply

    def _compact(self) -> None:
        """Rewrite the AOF as the scheduler's live state (the snapshot covers every record
        appended so far; records appended meanwhile follow it in the new file)."""
        try:
            self.aof.rewrite(rec.encode(record) for record in self.scheduler.snapshot())
        except PersistenceError as error:
            log.error("AOF compaction failed: %s", error)
            if self.aof.degraded:  # it failed after its rename: refuse changes from now on
                self._persistence_failed(self.aof.failure)

    @handles(_Retention)
    def _retention(self, msg: _Retention) -> None:
        self.files.drop_idle()
        if self.degraded is not None:
            return
        count, _ = self._prune_runs(self.options.retention_age, self.options.retention_runs)
        if count:
            log.info("retention pruned %d finished runs", count)
            self._collect_files()

    # -- tokens and output -------------------------------------------------------------------

    @handles(CheckToken)
    def _check_token(self, msg: CheckToken) -> bool:
        """A job token is good while its attempt (number and lease epoch, the epoch being the
        token's nonce) is the job's running one."""
        claims = msg.claims
        try:
            job = self.scheduler.job(claims.run_id, claims.job_id)
        except UsageError:
            return False
        return (job.state in ON_WORKER_STATES and job.attempt == claims.attempt
                and job.epoch == int.from_bytes(claims.nonce, "big"))

    def _output_complete(self, run_id: str, job_id: str) -> bool:
        """The job ended and all the output its worker sent has arrived (or the wait for a
        straggler ran out)."""
        job = self.scheduler.job(run_id, job_id)
        if not views.is_terminal(job.state):
            return False
        key = (run_id, job_id, job.attempt, job.epoch)
        expected = self._output_expected.get(key)
        if expected is None or self.logs.truncated(run_id, job_id):
            return True
        if self._output_received.get(key, 0) >= expected:
            return True
        return self.clock.time() - (job.finished_at or 0.0) > self.options.output_grace

    @handles(_Due)
    def _on_due(self, msg: _Due) -> None:
        self._due_timer, self._due_at = None, None
        if self.degraded is not None:
            return
        self._advance(self.scheduler.due(self.clock.time()))
