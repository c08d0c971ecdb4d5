"""Shared helpers of the scheduler tests: short job specs, and a harness that drives a
Scheduler, keeps every record it returned, and checks that replaying them gives the same state."""

from __future__ import annotations

import random
from typing import Any

from titan_actors.scheduler import Backoff, JobSpec, JobState, RunSpec, Scheduler

T0 = 1_700_000_000.0  # a wall-clock epoch time to start from


def job(job_id: str, *parents: str, **fields: Any) -> JobSpec:
    """A command job with ``parents``; other fields by keyword."""
    fields.setdefault("command", ("true",))
    return JobSpec(job_id, parents=parents, **fields)


def dag(*jobs: JobSpec, name: str = "dag", **fields: Any) -> RunSpec:
    return RunSpec(name, tuple(jobs), **fields)


def snapshot(s: Scheduler) -> dict[str, Any]:
    """Everything observable about a scheduler's state."""
    runs = s.runs()
    return {
        "runs": runs,
        "jobs": {r.run_id: s.jobs(r.run_id) for r in runs},
        "next_due": s.next_due(),
        "running": s.running_attempts(),
    }


class Harness:
    """A Scheduler (no jitter, seeded rng) whose records are all kept in ``log``."""

    def __init__(self, *, jitter: float = 0.0, seed: int = 7) -> None:
        self.backoff = Backoff(base=1.0, cap=60.0, jitter=jitter)
        self.s = Scheduler(backoff=self.backoff, rng=random.Random(seed))
        self.log: list = []
        self.workers: list[tuple[str, frozenset[str], int]] = []

    def worker(self, name: str, *tags: str, slots: int = 1) -> None:
        tags_set = frozenset(tags or ("GENERAL",))
        self.s.set_worker(name, tags_set, slots)
        self.workers.append((name, tags_set, slots))

    def remove_worker(self, name: str) -> None:
        self.s.remove_worker(name)
        self.workers.append((name, frozenset(), -1))

    def submit(self, *jobs: JobSpec, now: float = T0, from_run: str = "", from_job: str = "",
               **fields: Any) -> str:
        run_id, records = self.s.submit(dag(*jobs, **fields), now, from_run=from_run,
                                        from_job=from_job)
        self.log.extend(records)
        return run_id

    def add(self, run_id: str, *jobs: JobSpec, now: float = T0, from_run: str = "",
            from_job: str = "") -> list:
        return self._keep(self.s.add_jobs(run_id, jobs, now, from_run=from_run,
                                          from_job=from_job))

    def assign(self, now: float = T0) -> list:
        assignments = self.s.assign(now)
        self.log.extend(a.record for a in assignments)
        return assignments

    def placed(self, now: float = T0) -> dict[str, str]:
        """assign(), as {job id: worker}."""
        return {a.job_id: a.worker for a in self.assign(now)}

    def finish(self, run_id: str, job_id: str, code: int = 0, now: float = T0,
               reason: str = "") -> list:
        view = self.s.job(run_id, job_id)
        return self._keep(self.s.finished(run_id, job_id, view.attempt, view.epoch, code, now,
                                          reason))

    def lose(self, run_id: str, job_id: str, now: float = T0, reason: str = "lease lost"):
        view = self.s.job(run_id, job_id)
        return self._keep(self.s.lost(run_id, job_id, view.attempt, view.epoch, now, reason))

    def hand_back(self, run_id: str, job_id: str, now: float = T0) -> list:
        view = self.s.job(run_id, job_id)
        return self._keep(self.s.handed_back(run_id, job_id, view.attempt, view.epoch, now))

    def cancel(self, run_id: str, job_id: str | None = None, now: float = T0) -> list:
        return self._keep(self.s.cancel(run_id, job_id, now))

    def retry(self, run_id: str, job_id: str, now: float = T0) -> list:
        return self._keep(self.s.retry(run_id, job_id, now))

    def due(self, now: float) -> list:
        return self._keep(self.s.due(now))

    def forget(self, *run_ids: str, now: float = T0) -> list:
        return self._keep(self.s.forget_runs(run_ids, now))

    def state(self, run_id: str, job_id: str) -> JobState:
        return self.s.job(run_id, job_id).state

    def states(self, run_id: str) -> dict[str, JobState]:
        return {v.job_id: v.state for v in self.s.jobs(run_id)}

    def _keep(self, records: list) -> list:
        self.log.extend(records)
        return records

    def replayed(self) -> Scheduler:
        """A fresh Scheduler fed every record, with the same live workers and rng state."""
        fresh = Scheduler(backoff=self.backoff, rng=random.Random())
        fresh._rng.setstate(self.s._rng.getstate())
        for record in self.log:
            fresh.apply(record)
        for name, tags, slots in self.workers:
            if slots < 0:
                fresh.remove_worker(name)
            else:
                fresh.set_worker(name, tags, slots)
        return fresh

    def check_replay(self) -> None:
        assert snapshot(self.replayed()) == snapshot(self.s)
