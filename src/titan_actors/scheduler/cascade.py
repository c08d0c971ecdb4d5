"""The decisions that move one job and then whole subgraphs: settling a job whose parents are
done, skipping and cancelling descendants, cancelling, and retrying by hand.

The base of :class:`~titan_actors.scheduler.engine.Scheduler`; every change goes through
:meth:`Cascades._emit` (apply a record, then keep it for the caller), or for a job's
transition :meth:`Cascades._move` (the same, applied to the job in hand without looking it up).
"""

from __future__ import annotations

from collections import deque

from ..errors import InvalidTransitionError, UnknownJobError, UnknownRunError
from .model import SATISFYING_STATES, TERMINAL_STATES, JobKind, JobState
from .records import JobReset, JobTransition, Record
from .state import RETRYABLE_STATES, Job, JobKey, State

__all__ = ["Cascades"]

_KEEP = object()  # "keep the job's current value"
_BLOCKING_STATES = TERMINAL_STATES - SATISFYING_STATES  # a parent here never lets a child go
# the members used on the hot paths, looked up once (an Enum class attribute is slow to read)
_PENDING, _QUEUED, _WAITING = JobState.PENDING, JobState.QUEUED, JobState.WAITING
_GATE = JobKind.GATE


class Cascades:
    """Moves of jobs and of the subgraphs below them, recorded."""

    def __init__(self, state: State) -> None:
        self._state = state

    # -- recording ------------------------------------------------------------------------------

    def _emit(self, out: list[Record], record: Record) -> None:
        self._state.apply(record)
        out.append(record)

    def _move(self, out: list[Record], job: Job, state: JobState, now: float, *,
              attempt: int | None = None, epoch: int | None = None, worker: str | None = None,
              not_before: float = 0.0, exit_code: object = _KEEP,
              reason: str = "", port: int | None = None,
              restarts: int | None = None) -> JobTransition:
        """Record ``job`` moving to ``state``; unnamed values stay as they are (not_before and
        reason are cleared)."""
        record = JobTransition(
            job.run_id, job.spec.id, state, job.state, now,
            job.attempt if attempt is None else attempt,
            job.epoch if epoch is None else epoch,
            job.worker if worker is None else worker,
            not_before,
            job.exit_code if exit_code is _KEEP else exit_code,  # type: ignore[arg-type]
            reason,
            job.port if port is None else port,
            job.restarts if restarts is None else restarts)
        self._state.move(job, record)
        out.append(record)
        return record

    # -- one job --------------------------------------------------------------------------------

    def _settle(self, out: list[Record], job: Job, now: float) -> None:
        """A PENDING job whose parents are all satisfied: QUEUED, or delayed first; a gate
        WAITING for its decision."""
        if job.state is not _PENDING or job.unmet or job.not_before or job.blocked:
            return
        spec = job.spec
        if spec.kind is _GATE:  # no process: it waits for a person, until a deadline
            self._move(out, job, _WAITING, now, not_before=now + spec.max_wait_seconds,
                       reason=f"waiting for a decision: {spec.message}".rstrip(": "))
        elif spec.delay > 0:
            self._move(out, job, _PENDING, now, not_before=now + spec.delay,
                       reason=f"delay of {spec.delay:g} s")
        else:
            self._move(out, job, _QUEUED, now)

    def _blocker(self, job: Job) -> str:
        """Why ``job`` can never run as things stand ("" when it can)."""
        if job.blocked:
            return f"parent {job.blocked} was forgotten before it completed"
        lookup = self._state.lookup
        for key in job.parents:
            parent = lookup(key)
            if parent is not None and parent.state in _BLOCKING_STATES:
                return f"parent {self._ref(key, job.run_id)} is {parent.state}"
        return ""

    def _unsatisfied(self, job: Job) -> list[JobKey]:
        out = []
        for key in job.parents:
            parent = self._state.lookup(key)
            if parent is not None and parent.state not in SATISFYING_STATES:
                out.append(key)
        return out

    @staticmethod
    def _ref(target: Job | JobKey, run_id: str = "") -> str:
        """``JOB`` when ``target`` is in run ``run_id``, else ``RUN/JOB``."""
        run, job = target if isinstance(target, tuple) else target.key
        return job if run == run_id else f"{run}/{job}"

    # -- subgraphs ------------------------------------------------------------------------------

    def _descendants(self, roots: list[Job], through: frozenset[JobState] | None = None):
        """Descendants of ``roots`` (breadth first, each once); with ``through``, only those
        reached through jobs in those states (and in them themselves)."""
        seen = {job.key for job in roots}
        queue = deque(job.key for job in roots)
        while queue:
            for child_key in self._state.children.get(queue.popleft(), ()):
                child = self._state.lookup(child_key)
                if child is None or child_key in seen:
                    continue
                if through is not None and child.state not in through:
                    continue
                seen.add(child_key)
                queue.append(child_key)
                yield child

    def _cascade(self, out: list[Record], roots: list[Job], state: JobState, now: float,
                 reason: str) -> None:
        """Move every unfinished descendant of ``roots`` to ``state`` (SKIPPED or CANCELLED)."""
        for child in list(self._descendants(roots)):
            if child.state not in TERMINAL_STATES:
                self._move(out, child, state, now, reason=reason)

    # -- cancel and retry -----------------------------------------------------------------------

    def cancel(self, run_id: str, job_id: str | None, now: float) -> list[Record]:
        """Cancel a job (or, with ``job_id`` None, every unfinished job of the run) and every
        unfinished descendant, in any run.

        A record whose ``prior`` is RUNNING tells the master to stop that process (its worker,
        attempt and epoch are in the record). Raises UnknownRunError / UnknownJobError, and
        InvalidTransitionError when the job is already finished (a finished run: no records).
        """
        run = self._state.runs.get(run_id)
        if run is None:
            raise UnknownRunError(f"no run {run_id!r} (it never existed or was forgotten)")
        if job_id is None:
            targets = [job for job in run.jobs.values() if job.state not in TERMINAL_STATES]
            reason = "run cancelled"
        else:
            job = run.jobs.get(job_id)
            if job is None:
                raise UnknownJobError(f"no job {job_id!r} in run {run_id!r}")
            if job.state in TERMINAL_STATES:
                raise InvalidTransitionError(f"job {run_id}/{job_id} is {job.state}: only "
                                             "unfinished jobs can be cancelled")
            targets, reason = [job], "cancelled"
        out: list[Record] = []
        for job in targets:
            self._move(out, job, JobState.CANCELLED, now, reason=reason)
        origin = f"run {run_id}" if job_id is None else f"{run_id}/{job_id}"
        self._cascade(out, targets, JobState.CANCELLED, now, f"upstream {origin} cancelled")
        return out

    def retry(self, run_id: str, job_id: str, now: float) -> list[Record]:
        """Retry a DEAD, CANCELLED, SKIPPED or FAILED job by hand, with fresh attempts; its
        skipped and cancelled descendants go back to PENDING (those that another finished
        parent still holds back stay as they are).

        Raises UnknownRunError / UnknownJobError, and InvalidTransitionError when the job is in
        another state or a parent of it can no longer complete (retry that one first).
        """
        job = self._state.lookup((run_id, job_id))
        if job is None:
            if run_id not in self._state.runs:
                raise UnknownRunError(f"no run {run_id!r} (it never existed or was forgotten)")
            raise UnknownJobError(f"no job {job_id!r} in run {run_id!r}")
        if job.state not in RETRYABLE_STATES:
            raise InvalidTransitionError(f"job {run_id}/{job_id} is {job.state}: only dead, "
                                         "cancelled, skipped or failed jobs can be retried")
        blocker = self._blocker(job)
        if blocker:
            raise InvalidTransitionError(f"job {run_id}/{job_id} cannot be retried: {blocker} "
                                         "(retry that one first)")
        out: list[Record] = []
        reason = f"retry of {run_id}/{job_id}"
        for target in [job, *self._revivable(job)]:
            self._emit(out, JobReset(target.run_id, target.spec.id, now, reason))
        self._settle(out, job, now)
        return out

    def _revivable(self, job: Job) -> list[Job]:
        """The skipped/cancelled descendants of ``job`` that no other finished parent holds
        back."""
        below = list(self._descendants([job], frozenset({JobState.SKIPPED,
                                                         JobState.CANCELLED})))
        reset = {d.key for d in below} | {job.key}
        held = [d for d in below if d.blocked or any(
            key not in reset and (p := self._state.lookup(key)) is not None
            and p.state in _BLOCKING_STATES for key in d.parents)]
        held_keys = {d.key for d in held} | {d.key for d in self._descendants(held)}
        return [d for d in below if d.key not in held_keys]
