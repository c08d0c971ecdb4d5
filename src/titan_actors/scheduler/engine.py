"""The Scheduler: owns all runs and jobs, decides, and records every decision.

Event-sourced: each decision method computes records (``records.py``), applies them to its state
and returns them; the master appends them to its AOF and publishes them, and on restart applies
every replayed record (:meth:`Scheduler.apply`) to a fresh Scheduler to get the same state.
Records carry every decided value, so replay never draws a random number or reads a clock.

Pure: no I/O, no gevent, no clock. ``now`` (wall-clock epoch seconds) is passed into every
call; randomness (backoff jitter) comes from the injected ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace

from ..errors import (
    InvalidTransitionError,
    StaleReportError,
    SubmissionError,
    UnknownJobError,
    UnknownRunError,
)
from .backoff import Backoff
from .cascade import Cascades
from .dag import check_jobs, collector_held
from .dispatch import Assignment, Dispatcher
from .gates import GateDecisions, expand_hitl
from .model import ON_WORKER_STATES, JobKind, JobSpec, JobState, RunSpec, RunState
from .records import JobsAdded, Record, RunsForgotten, RunSubmitted
from .resubmit import submitted_spec
from .routing import Workers, lane_of
from .services import ServiceReports
from .snapshot import DEFAULT_BUDGET, take
from .state import Job, Run, State, run_id_at
from .views import JobView, RunView, iso, job_view, run_state, run_view

__all__ = ["Assignment", "Scheduler"]

_DEFAULT_BACKOFF = Backoff(base=1.0, cap=60.0, jitter=0.1)
# the states a report about the current attempt leaves a job in
_REPORTED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.DEAD})
_COMPLETED, _SERVICE = JobState.COMPLETED, JobKind.SERVICE
_QUEUED, _FAILED = JobState.QUEUED, JobState.FAILED
_WAITS = frozenset({JobState.PENDING, _QUEUED, _FAILED})  # the states a job waits in


class Scheduler(Dispatcher, GateDecisions, ServiceReports, Cascades):
    """All runs and jobs, the live workers, and the decisions about them.

    Decision methods return the records they applied, in order; a method that raises has
    applied nothing. Reports about attempts (``finished``, ``lost``, ``handed_back``) are only
    accepted for the current (attempt, epoch) of a RUNNING job: anything else raises
    StaleReportError and changes nothing.
    """

    def __init__(self, *, backoff: Backoff = _DEFAULT_BACKOFF,
                 rng: random.Random | None = None) -> None:
        """``backoff``: the pause before an automatic retry; ``rng``: the source of its jitter
        (a fresh ``random.Random()`` when None; pass a seeded one in tests)."""
        super().__init__(State())
        self._workers = Workers()
        self._backoff = backoff
        self._rng = rng if rng is not None else random.Random()
        self._ids: dict[str, tuple[str, ...]] = {}  # run id -> its job ids, for its view

    # -- replay -------------------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """Apply one replayed record. Raises InconsistentRecordError when it does not fit."""
        self._state.apply(record)
        if type(record) is RunsForgotten:
            self._forget_ids(record.run_ids)

    def snapshot(self, *, budget: int = DEFAULT_BUDGET) -> list[Record]:
        """The live state as a short list of records (AOF compaction): applied in order to a
        fresh Scheduler they rebuild exactly this state, counters included (run ids and lease
        epochs go on after every one ever issued), without the forgotten runs; records this
        scheduler returns afterwards apply on top. A run whose jobs weigh more than ``budget``
        (estimated encoded bytes) spreads over several records. Workers and the rng are not
        state: set them again as after any replay."""
        return take(self._state, budget)

    # -- submissions ----------------------------------------------------------------------------

    def new_run_id(self, now: float) -> str:
        """The id the next run submitted at ``now`` gets (reserves nothing).

        ``"r"`` and 9 base-36 digits of milliseconds, strictly after every run id recorded so
        far: unique, sortable by submission, and derived from the records, so it survives
        replay.
        """
        return run_id_at(max(int(now * 1000), self._state.run_clock + 1))

    def submit(self, spec: RunSpec, now: float, *, from_run: str = "",
               from_job: str = "") -> tuple[str, list[Record]]:
        """Accept a run, or raise SubmissionError listing every problem (nothing is kept).

        ``from_run``: the run of the submitting job; a parent id that is not in the submission
        resolves to that run's job first, then to the latest run holding that id. The new run
        inherits that run's ``agent_run_id`` unless it gives one. Parents in other runs that
        already completed count as satisfied; active ones are waited on. ``from_job``: the job
        of ``from_run`` that submits (recorded on the run: who added what).
        Returns the run id and the records.
        """
        what = f"run '{spec.name}'" + (f" ({spec.source})" if spec.source else "")
        self._check_submitter(what, from_run, from_job)
        with collector_held():
            jobs = self._through_gates(expand_hitl(spec.jobs), self._resolver(from_run))
            plan = check_jobs(jobs, resolve=self._resolver(from_run), what=what)
            agent = spec.agent_run_id or (self._state.runs[from_run].agent_run_id
                                          if from_run else "")
            spec = replace(spec, jobs=jobs, agent_run_id=agent)
            run_id = self.new_run_id(now)
            out: list[Record] = []
            self._emit(out, RunSubmitted(run_id, spec, now, plan.parents, from_run, from_job))
            self._start(out, run_id, plan.order, now)
        return run_id, out

    def add_jobs(self, run_id: str, jobs: Iterable[JobSpec], now: float, *,
                 from_run: str = "", from_job: str = "") -> list[Record]:
        """Add jobs to an existing run (dynamic DAGs), validated as :meth:`submit` does; their
        ids must not clash with the run's jobs, and the run's own jobs come first when
        resolving parents. ``from_run`` / ``from_job``: the adding job, if a job adds them
        (each added job records it as ``added_by``). Raises UnknownRunError or SubmissionError
        (nothing is kept)."""
        run = self._run(run_id)
        what = f"jobs for run {run_id} ('{run.name}')"
        self._check_submitter(what, from_run, from_job)
        with collector_held():
            jobs = self._through_gates(expand_hitl(jobs), self._resolver(from_run), run_id)
            plan = check_jobs(jobs, resolve=self._resolver(from_run), existing=run.jobs,
                              what=what)
            out: list[Record] = []
            self._emit(out, JobsAdded(run_id, jobs, now, plan.parents, from_run, from_job))
            self._start(out, run_id, plan.order, now)
        return out

    def _check_submitter(self, what: str, from_run: str, from_job: str) -> None:
        run = self._state.runs.get(from_run) if from_run else None
        if from_run and run is None:
            raise SubmissionError(f"{what} refused: the submitting run {from_run} is unknown")
        if from_job and (run is None or from_job not in run.jobs):
            raise SubmissionError(f"{what} refused: the submitting job {from_job!r} is not a "
                                  f"job of run {from_run or '(none given)'}")

    def _resolver(self, from_run: str) -> Callable[[str], str | None]:
        def resolve(parent: str) -> str | None:
            run = self._state.runs.get(from_run) if from_run else None
            if run is not None and parent in run.jobs:
                return from_run
            return self._state.latest_holder(parent)
        return resolve

    def _start(self, out: list[Record], run_id: str, order: tuple[str, ...], now: float) -> None:
        """Settle new jobs, parents first: skipped under a parent that can no longer satisfy
        them, queued or delayed when every parent is satisfied, pending otherwise."""
        jobs = self._state.runs[run_id].jobs
        for job_id in order:
            job = jobs[job_id]
            blocker = self._blocker(job) if job.parents or job.blocked else ""
            if blocker:
                self._move(out, job, JobState.SKIPPED, now, reason=blocker)
            elif not job.unmet:  # (else it waits for its parents)
                self._settle(out, job, now)

    # -- reports about attempts -------------------------------------------------------------

    def finished(self, run_id: str, job_id: str, attempt: int, epoch: int, exit_code: int,
                 now: float, reason: str = "") -> list[Record]:
        """An attempt exited. 0: COMPLETED, and its children are re-evaluated; otherwise a
        failed attempt (FAILED with a backoff while attempts remain, else DEAD and every
        descendant SKIPPED). Raises StaleReportError unless (attempt, epoch) is current."""
        job = self._current(run_id, job_id, attempt, epoch)
        out: list[Record] = []
        if job.spec.kind is _SERVICE:  # its worker restarts it; an exit is the end
            self._service_ended(out, job, now, exit_code, reason)
        elif exit_code == 0:
            self._move(out, job, _COMPLETED, now, exit_code=0, reason=reason)
            lookup = self._state.lookup
            for child_key in self._state.children.get(job.key, ()):
                child = lookup(child_key)
                if child is not None and not child.unmet:  # (else it waits for others)
                    self._settle(out, child, now)
        else:
            self._fail(out, job, now, reason or f"exit code {exit_code}", exit_code)
        return out

    def lost(self, run_id: str, job_id: str, attempt: int, epoch: int, now: float,
             reason: str) -> list[Record]:
        """An attempt timed out, lost its lease or its worker died: a failed attempt (the same
        retry rule as a non-zero exit). Raises StaleReportError unless it is current."""
        job = self._current(run_id, job_id, attempt, epoch)
        out: list[Record] = []
        self._fail(out, job, now, reason, None)
        return out

    def handed_back(self, run_id: str, job_id: str, attempt: int, epoch: int,
                    now: float, reason: str = "") -> list[Record]:
        """A worker returned the attempt unrun (a draining worker), or it never reached the
        worker: QUEUED again, and the attempt does not count (the next dispatch reuses its
        number, with a new epoch)."""
        job = self._current(run_id, job_id, attempt, epoch)
        out: list[Record] = []
        self._move(out, job, JobState.QUEUED, now, attempt=job.attempt - 1, exit_code=None,
                   reason=reason or f"handed back by worker {job.worker}")
        return out

    def _current(self, run_id: str, job_id: str, attempt: int, epoch: int) -> Job:
        job = self._state.lookup((run_id, job_id))
        if (job is not None and job.attempt == attempt and job.epoch == epoch
                and job.state in ON_WORKER_STATES):
            return job
        what = f"report for {run_id}/{job_id} attempt {attempt} (epoch {epoch})"
        if job is None:
            raise StaleReportError(f"{what} refused: no such job")
        if (job.attempt, job.epoch) == (attempt, epoch) and job.state in _REPORTED:
            raise StaleReportError(f"{what} refused: already recorded (the job is {job.state})")
        raise StaleReportError(f"{what} refused: stale, the job is {job.state} at attempt "
                               f"{job.attempt} (epoch {job.epoch})")

    def _fail(self, out: list[Record], job: Job, now: float, reason: str,
              exit_code: int | None) -> None:
        used = job.attempt - job.floor
        if used < 1 + job.spec.retries:
            wait = self._backoff.delay(used, self._rng)
            self._move(out, job, JobState.FAILED, now, not_before=now + wait,
                       exit_code=exit_code, reason=reason)
            return
        self._move(out, job, JobState.DEAD, now, exit_code=exit_code,
                   reason=f"{reason} (no attempts left after {used})")
        if job.spec.kind is JobKind.SERVICE:  # its users may already run: leave them be
            self._skip_waiting(out, job, now, f"service {self._ref(job)} is dead")
        else:
            self._cascade(out, [job], JobState.SKIPPED, now, f"upstream {self._ref(job)} is dead")

    # -- time ---------------------------------------------------------------------------------

    def due(self, now: float) -> list[Record]:
        """Move the delays and backoffs that are due at ``now`` to QUEUED, and time out the
        gates whose deadline passed."""
        out: list[Record] = []
        for key in self._state.take_due(now):
            job = self._state.lookup(key)
            if job is None or not job.not_before or job.not_before > now:
                continue
            if job.state in (JobState.PENDING, JobState.FAILED):
                self._move(out, job, JobState.QUEUED, now)
            elif job.state is JobState.WAITING:
                self._time_out(out, job, now)
        return out

    def next_due(self) -> float | None:
        """The earliest not-before time still pending (one timer for the master), or None."""
        return self._state.next_due()

    def running_attempts(self) -> list[tuple[str, str, str, int, int]]:
        """``(run_id, job_id, worker, attempt, epoch)`` of every job holding a worker slot
        (running, or a service's life), sorted (for the lease checks after a restart)."""
        out = []
        for keys in self._state.running.values():
            for key in keys:
                job = self._state.lookup(key)
                out.append((job.run_id, job.spec.id, job.worker, job.attempt, job.epoch))
        return sorted(out)

    # -- retention ------------------------------------------------------------------------------

    def forget_runs(self, run_ids: Iterable[str], now: float = 0.0) -> list[Record]:
        """Drop finished runs and all their jobs. Raises UnknownRunError for an unknown run and
        InvalidTransitionError for an active one (nothing is dropped then)."""
        ids = tuple(dict.fromkeys(run_ids))
        for run_id in ids:
            if self._run(run_id).active:
                raise InvalidTransitionError(f"run {run_id} is still active: only finished "
                                             "runs can be forgotten")
        out: list[Record] = []
        if ids:
            self._emit(out, RunsForgotten(ids, now))
            self._forget_ids(ids)
        return out

    def _forget_ids(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            self._ids.pop(run_id, None)

    # -- queries --------------------------------------------------------------------------------

    def resolve(self, ref: str) -> tuple[str, str]:
        """``RUN/JOB``, ``JOB`` or ``DAG-JOB`` (a bare id: its latest run) -> (run, job).

        Raises UnknownJobError naming the reference."""
        if "/" in ref:
            run_id, _, job_id = ref.partition("/")
            if self._state.lookup((run_id, job_id)) is not None:
                return run_id, job_id
            raise UnknownJobError(f"no job {job_id!r} in run {run_id!r}")
        for job_id in (ref, ref[4:] if ref.startswith("DAG-") else ""):
            run_id = self._state.latest_holder(job_id) if job_id else None
            if run_id is not None:
                return run_id, job_id
        raise UnknownJobError(f"no job matches {ref!r} (give RUN/JOB, JOB or DAG-JOB)")

    def job(self, run_id: str, job_id: str) -> JobView:
        """The view of one job. Raises UnknownRunError or UnknownJobError."""
        job = self._job(run_id, job_id)
        return job_view(job, self._state.runs[run_id], self._waiting(job))

    def attempt(self, run_id: str, job_id: str) -> tuple[JobState, int, int, str]:
        """``(state, attempt, epoch, worker)`` of one job: what the master checks on every
        dispatch and report, without building the job's view (:meth:`job`, several µs).
        Raises UnknownRunError or UnknownJobError."""
        job = self._job(run_id, job_id)
        return job.state, job.attempt, job.epoch, job.worker

    def jobs(self, run_id: str) -> list[JobView]:
        """The views of a run's jobs, in submission order. Raises UnknownRunError."""
        run = self._run(run_id)
        return [job_view(job, run, self._waiting(job)) for job in run.jobs.values()]

    def job_spec(self, run_id: str, job_id: str) -> JobSpec:
        """The spec a job was submitted with. Raises UnknownRunError or UnknownJobError."""
        return self._job(run_id, job_id).spec

    def run_spec(self, run_id: str) -> RunSpec:
        """The spec to submit the run again (a re-run): its jobs as submitted, without the
        gates ``hitl_message`` made and the jobs its jobs added (``resubmit.py``). Raises
        UnknownRunError."""
        return submitted_spec(self._run(run_id))

    def run(self, run_id: str) -> RunView:
        """The view of one run. Raises UnknownRunError."""
        run = self._run(run_id)
        return run_view(run, self._job_ids(run))

    def run_state(self, run_id: str) -> RunState:
        """The state of one run, without building its view. Raises UnknownRunError."""
        return run_state(self._run(run_id))

    def runs(self) -> list[RunView]:
        """Every run, newest first."""
        return [run_view(run, self._job_ids(run)) for run in reversed(self._state.runs.values())]

    def _job_ids(self, run: Run) -> tuple[str, ...]:
        """The ids of ``run``'s jobs, kept between calls: the master reads the view of a run
        after each change of it, and a big run's tuple costs as much as its jobs. A run's jobs
        are only ever added (a run is forgotten whole), so the count tells a stale tuple."""
        ids = self._ids.get(run.run_id)
        if ids is None or len(ids) != len(run.jobs):
            ids = self._ids[run.run_id] = tuple(run.jobs)
        return ids

    def waiting_reason(self, run_id: str, job_id: str) -> str:
        """Why a job that is not running yet waits ("" for a running or finished job)."""
        return self._waiting(self._job(run_id, job_id))

    def _waiting(self, job: Job) -> str:
        state = job.state
        if state not in _WAITS:
            return ""
        if state is _QUEUED:
            return self._workers.waiting_reason(lane_of(job.spec), self._state.load)
        if state is _FAILED:
            return (f"backoff until {iso(job.not_before)} after attempt {job.attempt} "
                    f"failed: {job.reason}")
        if job.blocked:
            return f"parent {job.blocked} was forgotten before it completed"
        if job.unmet:
            waiting = [self._ref(p, job.run_id) for p in self._unsatisfied(job)]
            return "waiting for parents " + ", ".join(waiting)
        if job.not_before:
            return f"delayed until {iso(job.not_before)}"
        return "ready to be queued"

    def _run(self, run_id: str) -> Run:
        run = self._state.runs.get(run_id)
        if run is None:
            raise UnknownRunError(f"no run {run_id!r} (it never existed or was forgotten)")
        return run

    def _job(self, run_id: str, job_id: str) -> Job:
        job = self._run(run_id).jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no job {job_id!r} in run {run_id!r}")
        return job
