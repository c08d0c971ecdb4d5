"""Snapshots for AOF compaction: the live state as a short list of records, and applying them.

:func:`take` turns a State into records (``Counters`` first, then one ``RunRestored`` per live run
in submission order, with ``JobsRestored`` for the rest of a big run's jobs) that, applied in
order to a fresh State, rebuild it exactly: the same runs and jobs with every field, the same
counters (which never move backwards: the run clock, the lease epoch and the submission numbers
stay past everything ever issued, forgotten runs included), and the same indexes (children in
the same order, holders, ready queue, due times, running jobs), so every later decision is the
same, and every record the original scheduler returns afterwards applies to the restored one.
Forgotten runs leave nothing but the counters.

:class:`Restorer` is the part of State that applies those records.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from typing import Any

from ..errors import InconsistentRecordError
from .model import ON_WORKER_STATES, JobSpec, JobState, RunSpec
from .records import Counters, JobRestored, JobsRestored, Record, RunRestored, RunSubmitted
from .routing import lane_of
from .state import Job, JobKey, Run, State, clock_of, run_id_at

__all__ = ["DEFAULT_BUDGET", "Restorer", "take"]

DEFAULT_BUDGET = 4 << 20  # estimated bytes of jobs per record (the AOF takes 16 MiB a record)
_WAITING_STATES = frozenset({JobState.PENDING, JobState.FAILED, JobState.WAITING})


# -- taking -------------------------------------------------------------------------------------

def take(state: State, budget: int = DEFAULT_BUDGET) -> list[Record]:
    """The records that rebuild ``state``; a run whose jobs weigh more than ``budget`` (an
    estimate of their encoded size) is split over several records."""
    out: list[Record] = [Counters(run_id_at(state.run_clock) if state.run_clock else "",
                                  state.epoch, state.run_seq, state.job_seq)]
    for run in state.runs.values():
        chunks = _chunks(state, run, budget)
        out.append(RunRestored(run.run_id, run.name, run.seq, run.submitted_at, run.changed_at,
                               chunks[0], run.agent_run_id, run.source, run.from_run,
                               run.from_job))
        out.extend(JobsRestored(run.run_id, chunk) for chunk in chunks[1:])
    return out


def _chunks(state: State, run: Run, budget: int) -> list[tuple[JobRestored, ...]]:
    """The records of ``run``'s jobs in submission order, split so that no chunk but a
    one-job chunk weighs more than ``budget``. (The master's actor takes the snapshot without
    yielding: this loop is the stall a compaction causes, so it is kept tight.)"""
    chunks: list[tuple[JobRestored, ...]] = []
    chunk: list[JobRestored] = []
    used = 0
    for job in run.jobs.values():
        weight = _weight(job.spec, job.comment, job.reason)
        if chunk and used + weight > budget:
            chunks.append(tuple(chunk))
            chunk, used = [], 0
        chunk.append(_job_record(state, job))
        used += weight
    chunks.append(tuple(chunk))
    return chunks


def _job_record(state: State, job: Job) -> JobRestored:
    parents: dict[str, str] = {}
    forgotten: tuple[str, ...] = ()
    if job.parents:
        run_id, lookup = job.run_id, state.lookup
        parents = {job_id: other for other, job_id in job.parents if other != run_id}
        forgotten = tuple(key[1] for key in job.parents if lookup(key) is None)
    return JobRestored(
        job.spec, job.seq, job.state, job.attempt, job.floor, job.epoch, job.worker,
        job.not_before, job.exit_code, job.reason, parents, forgotten, job.unmet, job.blocked,
        job.submitted_at, job.queued_at, job.started_at, job.finished_at, job.added_by,
        job.port, job.restarts, job.decided_by, job.comment)


def _weight(spec: JobSpec, comment: str, reason: str) -> int:
    """The estimated encoded size of a job's record: 512 bytes for its fixed part, its texts
    at 4 bytes a character (the most UTF-8 takes) and its script."""
    strings = (len(spec.script_name) + len(spec.message) + len(spec.hitl_message)
               + len(comment) + len(reason))
    if spec.command:
        strings += sum(map(len, spec.command))
    if spec.args:
        strings += sum(map(len, spec.args))
    if spec.parents:
        strings += sum(map(len, spec.parents))
    if spec.health:
        strings += sum(map(len, spec.health))
    if spec.env:
        strings += sum(map(len, spec.env)) + sum(map(len, spec.env.values()))
    return 512 + len(spec.script) + 4 * strings


# -- applying -----------------------------------------------------------------------------------

class Restorer:
    """Applies Counters, RunRestored and JobsRestored to a State."""

    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {Counters: self.counters, RunRestored: self.run_restored,
                JobsRestored: self.jobs_restored}

    def counters(self, record: Counters) -> None:
        state = self._state
        state.run_clock = max(state.run_clock, clock_of(record.last_run_id))
        state.epoch = max(state.epoch, record.epoch)
        state.run_seq = max(state.run_seq, record.run_seq)
        state.job_seq = max(state.job_seq, record.job_seq)

    def run_restored(self, record: RunRestored) -> None:
        state = self._state
        if record.run_id in state.runs:
            raise InconsistentRecordError(f"run {record.run_id} is restored twice")
        last = next(reversed(state.runs.values()), None)
        if last is not None and last.seq >= record.seq:
            raise InconsistentRecordError(
                f"run {record.run_id} (number {record.seq}) is restored after run {last.run_id} "
                f"(number {last.seq})")
        head = RunSpec(record.name, (), record.agent_run_id, record.source)
        run = Run(RunSubmitted(record.run_id, head, record.submitted_at, {}, record.from_run,
                               record.from_job), record.seq)
        self._check(run, record.jobs)
        state.runs[record.run_id] = run
        state.run_seq = max(state.run_seq, record.seq + 1)
        state.run_clock = max(state.run_clock, clock_of(record.run_id))
        self._add(run, record.jobs)
        run.changed_at = record.changed_at

    def jobs_restored(self, record: JobsRestored) -> None:
        run = self._state.runs.get(record.run_id)
        if run is None:
            raise InconsistentRecordError(f"jobs restored to unknown run {record.run_id}")
        self._check(run, record.jobs)
        self._add(run, record.jobs)

    @staticmethod
    def _check(run: Run, jobs: tuple[JobRestored, ...]) -> None:
        """Refuse a record that would not fit before anything of it is applied."""
        ids = {job.spec.id for job in jobs}
        if len(ids) != len(jobs) or not ids.isdisjoint(run.jobs):
            raise InconsistentRecordError(f"run {run.run_id}: a job id is restored twice")
        seq = next(reversed(run.jobs.values())).seq if run.jobs else -1
        for job in jobs:
            where = f"job {run.run_id}/{job.spec.id}"
            if job.seq <= seq:
                raise InconsistentRecordError(f"{where} is restored out of order")
            seq = job.seq
            if (job.parents or job.forgotten) and (
                    not set(job.spec.parents).issuperset(job.parents)
                    or not set(job.parents).issuperset(job.forgotten)):
                raise InconsistentRecordError(f"{where}: its parents do not fit its spec")
            if job.state is JobState.QUEUED and job.queued_at is None:
                raise InconsistentRecordError(f"{where} is queued without a queued time")

    def _add(self, run: Run, records: tuple[JobRestored, ...]) -> None:
        # Replay of a compacted file spends its apply time here: locals, no call per job but
        # Job() and _hold, and the counters raised once per record (its jobs come in
        # submission order, checked by _check).
        state, run_id, jobs, counts = self._state, run.run_id, run.jobs, run.counts
        hold = state._hold
        for record in records:
            spec = record.spec
            job = Job(run_id, spec, record.seq, record.submitted_at, record.added_by)
            (job.state, job.attempt, job.floor, job.epoch, job.worker, job.not_before,
             job.exit_code, job.reason, job.unmet, job.blocked, job.queued_at, job.started_at,
             job.finished_at, job.port, job.restarts, job.decided_by, job.comment) = (
                record.state, record.attempt, record.floor, record.epoch, record.worker,
                record.not_before, record.exit_code, record.reason, record.unmet,
                record.blocked, record.queued_at, record.started_at, record.finished_at,
                record.port, record.restarts, record.decided_by, record.comment)
            jobs[spec.id] = job
            counts[job.state] += 1
            hold(spec.id, run)
        if not records:
            return
        state.job_seq = max(state.job_seq, records[-1].seq + 1)
        state.epoch = max(state.epoch, *(record.epoch for record in records))
        children, lookup = state.children, state.lookup
        for record in records:  # every job of the record exists now: parents may come later
            job = jobs[record.spec.id]
            if record.spec.parents:
                job.parents = self._parents(job, record, children, lookup)
            self._index(job)

    def _parents(self, job: Job, record: JobRestored, children: dict[JobKey, list[JobKey]],
                 lookup: Callable[[JobKey], Job | None]) -> tuple[JobKey, ...]:
        """Link ``job`` under its parents that were not forgotten; return its parents' keys
        (a parent's own key where the parent exists, as applying a submission does)."""
        keys = []
        for parent_id in record.spec.parents:
            other = record.parents.get(parent_id)
            parent = lookup((other or job.run_id, parent_id))
            key = parent.key if parent is not None else (other or job.run_id, parent_id)
            keys.append(key)
            if parent_id in record.forgotten:
                continue
            siblings = children.get(key)
            if siblings is None:
                children[key] = [job.key]
            else:
                self._link(siblings, job)
        return tuple(keys)

    def _link(self, children: list[JobKey], child: Job) -> None:
        """Add ``child`` to a parent's ``children``, keeping them in submission order."""
        lookup = self._state.lookup
        last = lookup(children[-1])
        if last is None or last.seq < child.seq:
            children.append(child.key)
        else:
            bisect.insort(children, child.key,
                          key=lambda key: (job.seq if (job := lookup(key)) else -1))

    def _index(self, job: Job) -> None:
        state = self._state
        if job.state is JobState.QUEUED:
            state.ready.push(job.key, lane_of(job.spec), job.spec.priority,
                             job.queued_at, job.seq)  # type: ignore[arg-type]
        elif job.state in ON_WORKER_STATES:
            state.running.setdefault(job.worker, set()).add(job.key)
        elif job.not_before and job.state in _WAITING_STATES:
            heapq.heappush(state._due, (job.not_before, job.seq, job.key))

