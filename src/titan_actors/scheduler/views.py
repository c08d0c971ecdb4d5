"""Read-only views of jobs and runs, and the Titan-compatible status vocabulary.

Views are plain frozen dataclasses of codec types, so the master can send them as they are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from .model import TERMINAL_STATES, JobKind, JobState, RunState
from .state import Job, Run

__all__ = ["CompatStatus", "JobView", "RunView", "compat_status", "iso", "job_view",
           "run_state", "run_view"]


class CompatStatus(enum.StrEnum):
    """The status words of the original's ``get_job_status`` (COMPAT.md)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"


_COMPAT = {
    JobState.PENDING: CompatStatus.PENDING, JobState.QUEUED: CompatStatus.PENDING,
    JobState.FAILED: CompatStatus.PENDING,
    JobState.RUNNING: CompatStatus.RUNNING, JobState.WAITING: CompatStatus.RUNNING,
    JobState.STARTING: CompatStatus.RUNNING,
    JobState.COMPLETED: CompatStatus.COMPLETED, JobState.APPROVED: CompatStatus.COMPLETED,
    JobState.READY: CompatStatus.COMPLETED, JobState.RESTARTING: CompatStatus.COMPLETED,
    JobState.DEAD: CompatStatus.DEAD, JobState.SKIPPED: CompatStatus.DEAD,
    JobState.REJECTED: CompatStatus.DEAD, JobState.TIMED_OUT: CompatStatus.DEAD,
    JobState.CANCELLED: CompatStatus.CANCELLED, JobState.STOPPED: CompatStatus.CANCELLED,
}
assert set(_COMPAT) == set(JobState), "every JobState needs a compat status"

_FAILING_STATES = frozenset({JobState.DEAD, JobState.SKIPPED, JobState.REJECTED,
                             JobState.TIMED_OUT})
_WAITING = JobState.WAITING


def compat_status(state: JobState) -> CompatStatus:
    """The original's status word for ``state`` (a service out of restarts is DEAD, and is
    already in state DEAD here)."""
    return _COMPAT[state]


def iso(at: float) -> str:
    """Wall-clock epoch seconds as an ISO 8601 UTC time, to the second."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as it stands. Times are epoch seconds (None: not yet); ``parents`` are references
    (``JOB`` in the same run, ``RUN/JOB`` in another); ``waiting`` says why a job that is not
    running yet waits ("" otherwise); ``added_by`` is the job of this run that added it ("" for
    the jobs of the submission and for jobs added from outside)."""

    run_id: str
    job_id: str
    run_name: str
    agent_run_id: str
    kind: JobKind
    state: JobState
    status: CompatStatus
    attempt: int
    attempts_left: int
    epoch: int
    worker: str
    parents: tuple[str, ...]
    priority: int
    requirement: str
    pinned: str
    submitted_at: float
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    not_before: float | None
    exit_code: int | None
    reason: str
    waiting: str
    added_by: str = ""
    port: int = 0              # a service's port
    restarts: int = 0          # a service's restarts in its current attempt
    message: str = ""          # a gate's question
    deadline: float | None = None  # a waiting gate's deadline
    decided_by: str = ""       # a decided gate: who, and their comment
    comment: str = ""


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as it stands: ``counts`` holds the number of jobs in each state (none zero);
    ``finished_at`` is when its last job finished (None while it is active); ``from_run`` and
    ``from_job`` name the run and job that submitted it ("" when submitted from outside)."""

    run_id: str
    name: str
    agent_run_id: str
    source: str
    from_run: str
    state: RunState
    submitted_at: float
    finished_at: float | None
    jobs: tuple[str, ...]
    counts: dict[JobState, int]
    from_job: str = ""


def run_state(run: Run) -> RunState:
    """A run's state, derived from its jobs' states: SERVING when only ready services are
    not finished (a wait is over, and the run is not finished: it is never pruned)."""
    present = {state for state, count in run.counts.items() if count}
    unfinished = present - TERMINAL_STATES
    if unfinished == {JobState.READY}:
        return RunState.SERVING
    if unfinished:
        return RunState.ACTIVE
    if present & _FAILING_STATES:
        return RunState.FAILED
    if JobState.CANCELLED in present:
        return RunState.CANCELLED
    return RunState.COMPLETED


def job_view(job: Job, run: Run, waiting: str) -> JobView:
    spec, run_id, state = job.spec, job.run_id, job.state
    parents = tuple([p if r == run_id else f"{r}/{p}" for r, p in job.parents])
    return JobView(
        run_id=run_id, job_id=spec.id, run_name=run.name, agent_run_id=run.agent_run_id,
        kind=spec.kind, state=state, status=_COMPAT[state], attempt=job.attempt,
        attempts_left=job.attempts_left, epoch=job.epoch, worker=job.worker, parents=parents,
        priority=spec.priority, requirement=spec.requirement, pinned=spec.worker,
        submitted_at=job.submitted_at, queued_at=job.queued_at, started_at=job.started_at,
        finished_at=job.finished_at, not_before=job.not_before or None,
        exit_code=job.exit_code, reason=job.reason, waiting=waiting, added_by=job.added_by,
        port=job.port, restarts=job.restarts, message=spec.message or spec.hitl_message,
        deadline=job.not_before or None if state is _WAITING else None,
        decided_by=job.decided_by, comment=job.comment)


def run_view(run: Run, job_ids: tuple[str, ...] | None = None) -> RunView:
    """The view of ``run``; ``job_ids``: the ids of its jobs, in order, when the caller keeps
    them (they are read from the run otherwise)."""
    state = run_state(run)
    return RunView(
        run_id=run.run_id, name=run.name, agent_run_id=run.agent_run_id, source=run.source,
        from_run=run.from_run, state=state, submitted_at=run.submitted_at,
        finished_at=None if state in (RunState.ACTIVE, RunState.SERVING) else run.changed_at,
        jobs=tuple(run.jobs) if job_ids is None else job_ids,
        counts={s: n for s, n in sorted(run.counts.items()) if n}, from_job=run.from_job)

