"""Services: what their workers report, stopping them, and how they end.

A service is dispatched like any job (QUEUED -> RUNNING, attempt n, epoch e). Its worker then
supervises the process and reports each change: STARTING (started, not ready yet), READY (its
port accepts connections or its health command succeeded: its children go ahead), RESTARTING
(it exited; the worker starts it again after a backoff), each with the port and the restart
count. The process keeps the worker slot in all of these states. A stop on request moves it to
STOPPED (its process is killed, never restarted); when it runs out of restarts its worker
reports the exit and it is DEAD. Either way only the descendants that have not started yet are
skipped: jobs that already used the service are left alone. A lost worker is a failed attempt as
for any job (the service runs again elsewhere while attempts remain).
"""

from __future__ import annotations

from ..errors import InvalidTransitionError, UnknownJobError, UnknownRunError
from .model import ON_WORKER_STATES, SERVICE_STATES, JobKind, JobState
from .records import Record
from .state import Job

__all__ = ["ServiceReports"]

_NOT_STARTED = frozenset({JobState.PENDING, JobState.QUEUED, JobState.FAILED})


class ServiceReports:
    """Service reports and stops (a mixin of the Scheduler)."""

    def service_state(self, run_id: str, job_id: str, attempt: int, epoch: int,
                      state: JobState, now: float, *, port: int, restarts: int,
                      reason: str = "") -> list[Record]:
        """A service's worker reports ``state`` (STARTING, READY or RESTARTING) for the
        current attempt. READY lets its children go ahead. Raises StaleReportError unless
        (attempt, epoch) is current, and InvalidTransitionError for a job that is not a
        service or a state a worker does not report."""
        job = self._current(run_id, job_id, attempt, epoch)
        if job.spec.kind is not JobKind.SERVICE:
            raise InvalidTransitionError(f"{run_id}/{job_id} is a {job.spec.kind} job, not a "
                                         "service")
        if state not in SERVICE_STATES:
            raise InvalidTransitionError(f"a worker reports a service as starting, ready or "
                                         f"restarting, not {state}")
        out: list[Record] = []
        if state is job.state and (port, restarts) == (job.port, job.restarts):
            return out
        self._move(out, job, state, now, port=port, restarts=restarts, reason=reason)
        if state is JobState.READY:
            for child_key in self._state.children.get(job.key, ()):
                child = self._state.lookup(child_key)
                if child is not None:
                    self._settle(out, child, now)
        return out

    def stop_service(self, run_id: str, job_id: str, now: float) -> list[Record]:
        """Stop a service on request: STOPPED (its process is killed and not restarted); its
        descendants that have not started are skipped. A service not dispatched yet is stopped
        too. Raises UnknownRunError / UnknownJobError, InvalidTransitionError for a job that is
        not a service or one that has finished."""
        run = self._state.runs.get(run_id)
        if run is None:
            raise UnknownRunError(f"no run {run_id!r} (it never existed or was forgotten)")
        job = run.jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no service {job_id!r} in run {run_id!r}")
        if job.spec.kind is not JobKind.SERVICE:
            raise InvalidTransitionError(f"{run_id}/{job_id} is a {job.spec.kind} job, not a "
                                         "service")
        if job.state not in ON_WORKER_STATES | _NOT_STARTED:
            raise InvalidTransitionError(f"service {run_id}/{job_id} is {job.state} already")
        out: list[Record] = []
        self._move(out, job, JobState.STOPPED, now, reason="stopped on request")
        self._skip_waiting(out, job, now, f"service {self._ref(job)} was stopped")
        return out

    def _service_ended(self, out: list[Record], job: Job, now: float, exit_code: int,
                       reason: str) -> None:
        """The worker gave up on the service (out of restarts): DEAD."""
        self._move(out, job, JobState.DEAD, now, exit_code=exit_code,
                   reason=reason or f"the service exited (exit code {exit_code})")
        self._skip_waiting(out, job, now, f"service {self._ref(job)} is dead")

    def _skip_waiting(self, out: list[Record], job: Job, now: float, reason: str) -> None:
        """Skip the descendants that have not started, through jobs that have not either
        (a job that already ran, and what follows it, is left alone)."""
        for child in list(self._descendants([job], _NOT_STARTED)):
            self._move(out, child, JobState.SKIPPED, now, reason=reason)
