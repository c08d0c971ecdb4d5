"""Human approval gates: the ``hitl_message`` shorthand, decisions, and deadlines.

A gate is a job of kind GATE: it runs no process and holds no worker slot. When its parents are
done it is WAITING (``not_before`` = its deadline, wall-clock, persisted); a person approves it
(APPROVED: its children go ahead) or rejects it (REJECTED: its unfinished descendants are
skipped); at the deadline it is TIMED_OUT (descendants skipped). A decision is recorded with who
made it and their comment (``GateDecided``, then the transition), so it survives a restart; a
second decision is refused.

``hitl_message`` on a job (Titan's way) becomes a gate ``hitl-gate-<job>`` right after it, and
the jobs of the same submission that named the job as a parent wait for the gate instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..errors import InvalidTransitionError, UnknownJobError, UnknownRunError
from .model import JobKind, JobSpec, JobState
from .records import GateDecided, Record
from .state import Job

__all__ = ["GATE_PREFIX", "GateDecisions", "expand_hitl"]

GATE_PREFIX = "hitl-gate-"


def expand_hitl(jobs: Iterable[JobSpec]) -> tuple[JobSpec, ...]:
    """The jobs with a gate after each job that has a ``hitl_message`` (placed right after
    it); children in ``jobs`` that named that job as a parent name the gate instead."""
    jobs = tuple(jobs)
    gated = {job.id: GATE_PREFIX + job.id for job in jobs if job.hitl_message}
    if not gated:
        return jobs
    out: list[JobSpec] = []
    for job in jobs:
        parents = tuple(gated.get(p, p) for p in job.parents)
        out.append(replace(job, parents=parents) if parents != job.parents else job)
        if job.hitl_message:
            out.append(JobSpec(id=gated[job.id], kind=JobKind.GATE, parents=(job.id,),
                               message=job.hitl_message,
                               max_wait_seconds=job.max_wait_seconds, retries=0))
    return tuple(out)


class GateDecisions:
    """Decisions on gates and their deadlines (a mixin of the Scheduler)."""

    def _through_gates(self, jobs: tuple[JobSpec, ...], resolve,
                       own_run: str = "") -> tuple[JobSpec, ...]:
        """Parents outside ``jobs`` that have a ``hitl_message`` gate: the jobs wait for the
        gate instead (COMPAT: every job that lists such a job waits for its gate), whether
        they come later in a new run or are added to the run. ``resolve`` maps a parent id
        to its run; ``own_run``'s jobs come first (jobs added to a run)."""
        ids = {job.id for job in jobs}
        out = []
        for job in jobs:
            if ids.issuperset(job.parents):  # (most jobs: no parent from elsewhere)
                out.append(job)
                continue
            parents = tuple(self._gate_for(p, resolve, own_run) if p not in ids else p
                            for p in job.parents)
            out.append(replace(job, parents=parents) if parents != job.parents else job)
        return tuple(out)

    def _gate_for(self, parent: str, resolve, own_run: str) -> str:
        run = self._state.runs.get(own_run)
        run_id = own_run if run is not None and parent in run.jobs else resolve(parent)
        holder = self._state.lookup((run_id, parent)) if run_id else None
        gate_id = GATE_PREFIX + parent
        if (holder is not None and holder.spec.hitl_message
                and self._state.lookup((run_id, gate_id)) is not None
                and (own_run == run_id or resolve(gate_id) == run_id)):
            return gate_id
        return parent

    def decide_gate(self, run_id: str, job_id: str, approve: bool, by: str, comment: str,
                    now: float) -> list[Record]:
        """Approve or reject a WAITING gate. Raises UnknownRunError / UnknownJobError, and
        InvalidTransitionError for a job that is not a gate, or a gate that is not waiting
        (not reached yet, or decided already: the message says which, and by whom)."""
        job = self._gate(run_id, job_id)
        out: list[Record] = []
        self._emit(out, GateDecided(run_id, job_id, approve, by, comment, now))
        said = f" ({comment})" if comment else ""
        if approve:
            self._move(out, job, JobState.APPROVED, now, reason=f"approved by {by}{said}")
            for child_key in self._state.children.get(job.key, ()):
                child = self._state.lookup(child_key)
                if child is not None:
                    self._settle(out, child, now)
        else:
            self._move(out, job, JobState.REJECTED, now, reason=f"rejected by {by}{said}")
            self._cascade(out, [job], JobState.SKIPPED, now,
                          f"gate {self._ref(job)} was rejected")
        return out

    def _gate(self, run_id: str, job_id: str) -> Job:
        run = self._state.runs.get(run_id)
        if run is None:
            raise UnknownRunError(f"no run {run_id!r} (it never existed or was forgotten)")
        job = run.jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no gate {job_id!r} in run {run_id!r}")
        where = f"{run_id}/{job_id}"
        if job.spec.kind is not JobKind.GATE:
            raise InvalidTransitionError(f"{where} is a {job.spec.kind} job, not a gate")
        if job.state is JobState.WAITING:
            return job
        if job.state is JobState.PENDING:
            raise InvalidTransitionError(f"gate {where} is not reached yet (its parents have "
                                         "not finished); decide it once it waits")
        if job.decided_by:
            raise InvalidTransitionError(f"gate {where} was decided already: {job.reason}")
        raise InvalidTransitionError(f"gate {where} is {job.state}: only a waiting gate can "
                                     "be decided")

    def _time_out(self, out: list[Record], job: Job, now: float) -> None:
        """A WAITING gate reached its deadline: TIMED_OUT, its descendants skipped."""
        self._move(out, job, JobState.TIMED_OUT, now,
                   reason=f"no decision within {job.spec.max_wait_seconds:g} s")
        self._cascade(out, [job], JobState.SKIPPED, now, f"gate {self._ref(job)} timed out")

    def waiting_gates(self) -> list[tuple[str, str]]:
        """(run, gate) of every WAITING gate, oldest first."""
        return [job.key for job in sorted(
            (job for run in self._state.runs.values() for job in run.jobs.values()
             if job.spec.kind is JobKind.GATE and job.state is JobState.WAITING),
            key=lambda job: job.seq)]
