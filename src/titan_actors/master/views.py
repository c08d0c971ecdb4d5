"""Translations between the scheduler's views and records and what the master sends out."""

from __future__ import annotations

from ..errors import UsageError
from ..scheduler import JobReset, JobsAdded, JobTransition, RunsForgotten, RunSubmitted
from ..scheduler.model import ON_WORKER_STATES, TERMINAL_STATES, JobState, RunState
from ..scheduler.views import JobView, RunView
from ..wire.messages.master import (
    AgentRunSummary,
    EventKind,
    JobDetail,
    JobInfo,
    RunDetail,
    RunSummary,
)
from ..wire.messages.worker import AttemptRef

_REPORTED_ENDS = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.DEAD})
# a serving run (its services ready) is not finished: never pruned
_FINISHED_RUNS = frozenset({RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED})


def is_terminal(state: JobState) -> bool:
    return state in TERMINAL_STATES


def events_of(record) -> list[dict]:
    """The event-stream entries a record produces (kwargs of ``EventStream.publish``)."""
    if isinstance(record, JobTransition):
        return [dict(kind=EventKind.JOB, run_id=record.run_id, job_id=record.job_id,
                     job_state=record.state, attempt=record.attempt, worker=record.worker,
                     detail=record.reason)]
    if isinstance(record, RunSubmitted):
        return [dict(kind=EventKind.RUN, run_id=record.run_id, run_state=RunState.ACTIVE,
                     detail=f"submitted {record.spec.name} ({len(record.spec.jobs)} jobs)")]
    if isinstance(record, JobsAdded):
        return [dict(kind=EventKind.RUN, run_id=record.run_id, run_state=RunState.ACTIVE,
                     detail=f"{len(record.jobs)} jobs added")]
    if isinstance(record, JobReset):
        return [dict(kind=EventKind.JOB, run_id=record.run_id, job_id=record.job_id,
                     job_state=JobState.PENDING, detail=record.reason or "reset for a retry")]
    if isinstance(record, RunsForgotten):
        return [dict(kind=EventKind.RUN, run_id=run_id, detail="pruned")
                for run_id in record.run_ids]
    return []


def runs_touched(records) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        run_id = getattr(record, "run_id", None)
        if run_id:
            seen[run_id] = None
    return list(seen)


def kill_of(record) -> tuple[str, AttemptRef] | None:
    """(worker, attempt) whose process must be stopped because of ``record``, if any."""
    if (isinstance(record, JobTransition) and record.prior in ON_WORKER_STATES
            and record.state not in _REPORTED_ENDS and record.state not in ON_WORKER_STATES
            and record.worker):
        return record.worker, AttemptRef(record.run_id, record.job_id, record.attempt,
                                         record.epoch)
    return None


def latest_run(scheduler, run_ref: str) -> RunView:
    if run_ref in ("", "latest"):
        runs = scheduler.runs()
        if not runs:
            raise UsageError("there are no runs yet: submit one with `titanctl submit`")
        return runs[0]
    return scheduler.run(run_ref)


def run_summary(run: RunView) -> RunSummary:
    return RunSummary(run.run_id, run.name, run.state, run.agent_run_id, run.submitted_at,
                      run.finished_at or 0.0, {state.value: n for state, n in run.counts.items()},
                      run.from_run, run.from_job)


def job_info(job: JobView) -> JobInfo:
    return JobInfo(job.run_id, job.job_id, job.state, job.status.value, job.attempt,
                   job.attempt + job.attempts_left, job.worker, job.priority, job.requirement,
                   job.parents, job.waiting or job.reason, job.exit_code, job.submitted_at,
                   job.started_at or 0.0, job.finished_at or 0.0, job.added_by, job.kind,
                   job.port, job.restarts, job.message, job.deadline or 0.0, job.decided_by,
                   job.comment)


def agent_runs(runs: list[RunView]) -> list[AgentRunSummary]:
    """``runs`` (newest first) grouped by agent run id, newest agent run first (by its first
    run); runs without one are left out."""
    groups: dict[str, list[RunView]] = {}
    for run in reversed(runs):
        if run.agent_run_id:
            groups.setdefault(run.agent_run_id, []).append(run)
    out = [_agent_run(agent_run_id, members) for agent_run_id, members in groups.items()]
    out.sort(key=lambda a: a.created_at, reverse=True)
    return out


def _agent_run(agent_run_id: str, runs: list[RunView]) -> AgentRunSummary:
    states = {run.state for run in runs}
    for state in (RunState.ACTIVE, RunState.SERVING, RunState.FAILED, RunState.CANCELLED,
                  RunState.COMPLETED):
        if state in states:
            break
    counts: dict[str, int] = {}
    for run in runs:
        for job_state, count in run.counts.items():
            counts[job_state.value] = counts.get(job_state.value, 0) + count
    finished = 0.0 if state not in _FINISHED_RUNS else max(r.finished_at or 0.0 for r in runs)
    return AgentRunSummary(agent_run_id, tuple(r.run_id for r in runs),
                           tuple(r.name for r in runs), state,
                           min(r.submitted_at for r in runs), finished, counts)


def run_detail(scheduler, run_ref: str, last_seq: int, with_jobs: bool = True) -> RunDetail:
    run = latest_run(scheduler, run_ref)
    jobs = tuple(job_info(job) for job in scheduler.jobs(run.run_id)) if with_jobs else ()
    return RunDetail(run_summary(run), jobs, last_seq)


def job_detail(scheduler, run_id: str, job_id: str, history) -> JobDetail:
    spec = scheduler.job_spec(run_id, job_id)
    return JobDetail(job_info(scheduler.job(run_id, job_id)), spec.command, spec.script_name,
                     spec.args, tuple(history))


def expired_runs(scheduler, now: float, older_than: float, keep: int) -> list[str]:
    """Finished runs past the retention age, or beyond the newest ``keep`` finished ones."""
    finished = [r for r in scheduler.runs() if r.state in _FINISHED_RUNS]
    expired = []
    for index, run in enumerate(finished):  # newest first
        if index >= keep or (run.finished_at or now) < now - older_than:
            expired.append(run.run_id)
    return expired


def is_current(scheduler, ref: AttemptRef, worker: str) -> bool:
    """Whether ``ref`` is the running attempt of its job, on ``worker``."""
    try:
        state, attempt, epoch, holder = scheduler.attempt(ref.run_id, ref.job_id)
    except UsageError:
        return False
    return (state in ON_WORKER_STATES and attempt == ref.attempt and epoch == ref.epoch
            and holder == worker)
