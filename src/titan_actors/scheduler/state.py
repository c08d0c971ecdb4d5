"""The scheduler's state, changed only by applying records (see ``records.py``).

Everything here is derived from the records applied so far, in their order: the runs and jobs,
the counters (run id clock, job submission order, lease epoch), and the indexes the decisions
need (children of each job, unmet-parent counts, the ready queue, the due times, the running
jobs of each worker). Applying the same records to a fresh State gives the same state.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter
from collections.abc import Callable

from ..errors import InconsistentRecordError
from .model import (
    ON_WORKER_STATES,
    SATISFYING_STATES,
    TERMINAL_STATES,
    JobKind,
    JobSpec,
    JobState,
)
from .ready import ReadyQueue
from .records import (
    GateDecided,
    JobReset,
    JobsAdded,
    JobTransition,
    Record,
    RunsForgotten,
    RunSubmitted,
)
from .routing import lane_of

__all__ = ["RETRYABLE_STATES", "Job", "JobKey", "Run", "State", "clock_of", "run_id_at"]

JobKey = tuple[str, str]
RETRYABLE_STATES = frozenset({JobState.DEAD, JobState.CANCELLED, JobState.SKIPPED,
                              JobState.FAILED})
_PENDING, _QUEUED, _RUNNING = JobState.PENDING, JobState.QUEUED, JobState.RUNNING
# states that may carry a not_before: a delay, a retry's backoff, a gate's deadline
_WAITING_STATES = frozenset({_PENDING, JobState.FAILED, JobState.WAITING})
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_RUN_ID_WIDTH = 9  # base-36 milliseconds: fixed width (sortable) until the year 5138


class Job:
    """One job of one run, as the records left it (mutable: owned by State)."""

    __slots__ = ("run_id", "spec", "key", "seq", "state", "attempt", "floor", "epoch", "worker",
                 "not_before", "exit_code", "reason", "parents", "unmet", "blocked",
                 "submitted_at", "queued_at", "started_at", "finished_at", "added_by",
                 "port", "restarts", "decided_by", "comment")

    def __init__(self, run_id: str, spec: JobSpec, seq: int, at: float,
                 added_by: str = "") -> None:
        self.run_id = run_id
        self.spec = spec
        self.key: JobKey = (run_id, spec.id)
        self.seq = seq                  # global submission order
        self.state = _PENDING
        self.attempt = 0                # the latest attempt's number (counts up for ever)
        self.floor = 0                  # attempts before the last manual retry
        self.epoch = 0
        self.worker = ""
        self.not_before = 0.0
        self.exit_code: int | None = None
        self.reason = ""
        self.parents: tuple[JobKey, ...] = ()
        self.unmet = 0                  # parents not (yet) in a satisfying state
        self.blocked = ""               # a forgotten parent that never satisfied it
        self.submitted_at = at
        self.queued_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.added_by = added_by        # the job of this run that added it ("" if none did)
        self.port = 0                   # a service's port, as its worker reported it
        self.restarts = 0               # a service's restarts in its current attempt
        self.decided_by = ""            # a gate's decider ("" until decided)
        self.comment = ""               # and the comment they gave

    @property
    def attempts_left(self) -> int:
        return max(0, 1 + self.spec.retries - (self.attempt - self.floor))


class Run:
    """One run: its jobs in submission order and how many are in each state."""

    __slots__ = ("run_id", "seq", "name", "agent_run_id", "source", "from_run", "from_job",
                 "submitted_at", "changed_at", "jobs", "counts")

    def __init__(self, record: RunSubmitted, seq: int) -> None:
        self.run_id = record.run_id
        self.seq = seq
        self.name = record.spec.name
        self.agent_run_id = record.spec.agent_run_id
        self.source = record.spec.source
        self.from_run = record.from_run
        self.from_job = record.from_job
        self.submitted_at = record.at
        self.changed_at = record.at
        self.jobs: dict[str, Job] = {}
        self.counts: Counter[JobState] = Counter()

    @property
    def active(self) -> bool:
        return any(n and s not in TERMINAL_STATES for s, n in self.counts.items())


def run_id_at(clock_ms: int) -> str:
    """The run id for a run clock value (base-36 milliseconds, fixed width, so ids sort)."""
    digits = []
    while clock_ms:
        clock_ms, digit = divmod(clock_ms, 36)
        digits.append(_DIGITS[digit])
    return "r" + "".join(reversed(digits)).rjust(_RUN_ID_WIDTH, "0")


def clock_of(run_id: str) -> int:
    """The run clock value of a run id (0 for an id that is not one ``run_id_at`` makes)."""
    body = run_id[1:]
    if run_id[:1] != "r" or len(body) != _RUN_ID_WIDTH or body.strip(_DIGITS):
        return 0
    return int(body, 36)


class State:
    """Runs, jobs, counters and indexes, changed only through :meth:`apply`."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.run_seq = 0
        self.job_seq = 0
        self.epoch = 0                  # the highest lease epoch handed out
        self.run_clock = 0              # the clock value of the newest run id
        # job id -> the run holding it, or the runs (oldest first) when several do (a str: no
        # list for the many ids that one run holds)
        self.holders: dict[str, str | list[str]] = {}
        self.children: dict[JobKey, list[JobKey]] = {}
        self.ready = ReadyQueue()
        self.running: dict[str, set[JobKey]] = {}  # worker -> its RUNNING jobs
        self._due: list[tuple[float, int, JobKey]] = []
        self._handlers: dict[type, Callable[[object], None]] = {
            RunSubmitted: self._submitted, JobsAdded: self._jobs_added,
            JobTransition: self._transition, JobReset: self._reset,
            RunsForgotten: self._forgotten, GateDecided: self._gate_decided,
        }
        from .snapshot import Restorer  # here: snapshot.py builds on this module
        self._handlers.update(Restorer(self).handlers())

    # -- queries ------------------------------------------------------------------------------

    def lookup(self, key: JobKey) -> Job | None:
        run = self.runs.get(key[0])
        return run.jobs.get(key[1]) if run is not None else None

    def load(self, worker: str) -> int:
        """The slots ``worker`` has taken: its dispatched attempts and its services."""
        return len(self.running.get(worker, ()))

    def latest_holder(self, job_id: str) -> str | None:
        runs = self.holders.get(job_id)
        return runs if runs is None or type(runs) is str else runs[-1]

    def next_due(self) -> float | None:
        self._drop_stale_due()
        return self._due[0][0] if self._due else None

    def take_due(self, now: float) -> list[JobKey]:
        """The waiting jobs whose not_before is at or before ``now``, earliest first.

        They leave the due index: the caller must move each of them on (to QUEUED).
        """
        out = []
        while self._drop_stale_due() and self._due[0][0] <= now:
            out.append(heapq.heappop(self._due)[2])
        return out

    def _drop_stale_due(self) -> bool:
        while self._due:
            not_before, _seq, key = self._due[0]
            job = self.lookup(key)
            if job is not None and job.state in _WAITING_STATES and job.not_before == not_before:
                return True
            heapq.heappop(self._due)
        return False

    # -- applying -----------------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """Apply one record. Raises InconsistentRecordError when it does not fit this state."""
        handler = self._handlers.get(type(record))
        if handler is None:
            raise InconsistentRecordError(f"not a scheduler record: {record!r}")
        handler(record)

    def _submitted(self, record: RunSubmitted) -> None:
        if record.run_id in self.runs:
            raise InconsistentRecordError(f"run {record.run_id} is submitted twice")
        run = Run(record, self.run_seq)
        self._check_new(run, record.spec.jobs, record.parents)
        self.run_seq += 1
        self.run_clock = max(self.run_clock, clock_of(record.run_id))
        self.runs[record.run_id] = run
        self._add_jobs(run, record.spec.jobs, record.parents, record.at, "")

    def _jobs_added(self, record: JobsAdded) -> None:
        run = self.runs.get(record.run_id)
        if run is None:
            raise InconsistentRecordError(f"jobs added to unknown run {record.run_id}")
        self._add_jobs(run, record.jobs, record.parents, record.at, record.from_job)

    def _add_jobs(self, run: Run, specs: tuple[JobSpec, ...], parents: dict[str, str],
                  at: float, added_by: str) -> None:
        self._check_new(run, specs, parents)
        new = []
        run_id, jobs, holders, seq = run.run_id, run.jobs, self.holders, self.job_seq
        for spec in specs:
            job = Job(run_id, spec, seq, at, added_by)
            seq += 1
            jobs[spec.id] = job
            new.append(job)
            if spec.id in holders:
                self._hold(spec.id, run)
            else:
                holders[spec.id] = run_id
        self.job_seq = seq
        run.counts[_PENDING] += len(new)
        run.changed_at = at
        children, lookup = self.children, self.lookup
        for job in new:
            keys, unmet = [], 0
            for p in job.spec.parents:
                parent = jobs.get(p) or lookup((parents[p], p))
                # a job's key tuple is shared by its children (memory), when it still exists
                key = parent.key if parent is not None else (parents[p], p)
                keys.append(key)
                siblings = children.get(key)
                if siblings is None:
                    children[key] = [job.key]
                else:
                    siblings.append(job.key)
                # a parent forgotten since (a compacted history) was finished: it satisfied
                if parent is not None and parent.state not in SATISFYING_STATES:
                    unmet += 1
            job.parents = tuple(keys)
            job.unmet = unmet

    @staticmethod
    def _check_new(run: Run, specs: tuple[JobSpec, ...], parents: dict[str, str]) -> None:
        """Refuse a record that would not fit before anything of it is applied."""
        ids = {spec.id for spec in specs}
        if len(ids) != len(specs) or not ids.isdisjoint(run.jobs):
            raise InconsistentRecordError(f"run {run.run_id}: a job id is added twice")
        for spec in specs:
            for parent in spec.parents:
                if parent not in ids and parent not in run.jobs and parent not in parents:
                    raise InconsistentRecordError(
                        f"job {run.run_id}/{spec.id}: parent {parent!r} has no resolution")

    def _hold(self, job_id: str, run: Run) -> None:
        holders = self.holders.get(job_id)
        if holders is None:
            self.holders[job_id] = run.run_id
            return
        if type(holders) is str:
            holders = self.holders[job_id] = [holders]
        if self.runs[holders[-1]].seq < run.seq:
            holders.append(run.run_id)
        else:
            bisect.insort(holders, run.run_id, key=lambda r: self.runs[r].seq)

    def _job(self, run_id: str, job_id: str) -> Job:
        run = self.runs.get(run_id)
        job = run.jobs.get(job_id) if run is not None else None
        if job is None:
            raise InconsistentRecordError(f"record for unknown job {run_id}/{job_id}")
        return job

    def _transition(self, record: JobTransition) -> None:
        self.move(self._job(record.run_id, record.job_id), record)

    def move(self, job: Job, record: JobTransition) -> None:
        """Apply ``record``, a transition of ``job`` (a job of this state: the decisions, which
        hold it already, skip the lookup that applying a replayed record needs)."""
        old, new, key, at = job.state, record.state, job.key, record.at
        if old is not record.prior:
            raise InconsistentRecordError(
                f"job {record.run_id}/{record.job_id} is {old}, the record expects {record.prior}")
        if old is _QUEUED:
            self.ready.discard(key)
        elif old in ON_WORKER_STATES:
            self._stop_running(job)
        run = self.runs[job.run_id]
        counts = run.counts
        counts[old] -= 1
        counts[new] += 1
        run.changed_at = at
        job.state = new
        job.attempt, job.epoch, job.worker = record.attempt, record.epoch, record.worker
        job.not_before, job.exit_code, job.reason = (record.not_before, record.exit_code,
                                                     record.reason)
        job.port, job.restarts = record.port, record.restarts
        if record.epoch > self.epoch:
            self.epoch = record.epoch
        if new is _QUEUED:
            job.queued_at = at
            self.ready.push(key, lane_of(job.spec), job.spec.priority, at, job.seq)
        elif new in ON_WORKER_STATES:
            if new is _RUNNING:
                job.started_at = at
            running = self.running.get(record.worker)
            if running is None:
                self.running[record.worker] = {key}
            else:
                running.add(key)
        if record.not_before and new in _WAITING_STATES:
            heapq.heappush(self._due, (record.not_before, job.seq, key))
        job.finished_at = at if new in TERMINAL_STATES else None
        satisfied = new in SATISFYING_STATES
        if satisfied is not (old in SATISFYING_STATES):
            self._satisfy_children(key, -1 if satisfied else 1)

    def _gate_decided(self, record: GateDecided) -> None:
        job = self._job(record.run_id, record.job_id)
        if job.spec.kind is not JobKind.GATE or job.state is not JobState.WAITING:
            raise InconsistentRecordError(
                f"job {record.run_id}/{record.job_id} is a {job.spec.kind} in state "
                f"{job.state}: only a waiting gate is decided")
        job.decided_by, job.comment = record.by, record.comment

    def _satisfy_children(self, key: JobKey, step: int) -> None:
        children = self.children.get(key)
        if not children:
            return
        runs = self.runs
        run_id, run = key[0], runs.get(key[0])
        for child_run, job_id in children:
            if child_run != run_id:  # most children are in their parent's run
                run_id, run = child_run, runs.get(child_run)
            child = run.jobs.get(job_id) if run is not None else None
            if child is not None:
                child.unmet += step

    def _stop_running(self, job: Job) -> None:
        running = self.running.get(job.worker)
        if running is not None:
            running.discard(job.key)
            if not running:
                del self.running[job.worker]

    def _reset(self, record: JobReset) -> None:
        job = self._job(record.run_id, record.job_id)
        if job.state not in RETRYABLE_STATES:
            raise InconsistentRecordError(
                f"job {record.run_id}/{record.job_id} is {job.state}: it cannot be reset")
        run = self.runs[job.run_id]
        run.counts[job.state] -= 1
        run.counts[_PENDING] += 1
        run.changed_at = record.at
        job.state = _PENDING
        job.floor = job.attempt
        job.not_before, job.exit_code, job.reason = 0.0, None, record.reason
        job.port = job.restarts = 0
        job.finished_at = None
        job.blocked = ""

    def _forgotten(self, record: RunsForgotten) -> None:
        gone = set(record.run_ids)
        missing = [run_id for run_id in record.run_ids if run_id not in self.runs]
        if missing:
            raise InconsistentRecordError(f"forgetting unknown runs {missing}")
        touched: set[JobKey] = set()
        for run_id in record.run_ids:
            run = self.runs[run_id]
            for job in run.jobs.values():
                self._forget_job(job, gone, touched)
        for key in touched:
            kept = [child for child in self.children.get(key, ()) if child[0] not in gone]
            if kept:
                self.children[key] = kept
            else:
                self.children.pop(key, None)
        for run_id in record.run_ids:
            del self.runs[run_id]

    def _forget_job(self, job: Job, gone: set[str], touched: set[JobKey]) -> None:
        for child_key in self.children.pop(job.key, ()):
            child = self.lookup(child_key) if child_key[0] not in gone else None
            if child is not None and job.state not in SATISFYING_STATES:
                child.blocked = f"{job.run_id}/{job.spec.id}"
        touched.update(key for key in job.parents if key[0] not in gone)
        holders = self.holders.get(job.spec.id)
        if type(holders) is str:
            if holders == job.run_id:
                del self.holders[job.spec.id]
        elif holders is not None:
            holders.remove(job.run_id)
            if len(holders) == 1:
                self.holders[job.spec.id] = holders[0]
        self.ready.discard(job.key)
        if job.state in ON_WORKER_STATES:
            self._stop_running(job)
