"""Dispatch: the live workers, and handing QUEUED jobs to their free slots.

A mixin of :class:`~titan_actors.scheduler.engine.Scheduler` (it uses the State and the
recording of :class:`~titan_actors.scheduler.cascade.Cascades`). The master calls
:meth:`Dispatcher.assign` after every change that may free a slot or queue a job, so it is on
the path of every job: it returns at once when no live worker has a free slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .model import JobSpec, JobState
from .ready import Entry
from .records import JobTransition, Record
from .routing import Lane, WorkerInfo, Workers, choose
from .state import Job

__all__ = ["Assignment", "Dispatcher"]

_RUNNING, _COMPLETED = JobState.RUNNING, JobState.COMPLETED


@dataclass(frozen=True, slots=True)
class Assignment:
    """A dispatch decision: run ``spec`` on ``worker`` as (``attempt``, ``epoch``).

    ``record`` is the RUNNING transition that :meth:`Scheduler.assign` already applied (append
    it to the AOF with the other records).
    """

    run_id: str
    job_id: str
    worker: str
    attempt: int
    epoch: int
    spec: JobSpec
    record: JobTransition


class Dispatcher:
    """The live workers (``self._workers``) and the dispatch decisions."""

    _workers: Workers

    def set_worker(self, name: str, tags: Iterable[str], slots: int) -> None:
        """Add or update a live worker: its exact capability tags and its slots."""
        self._workers.set(name, tags, slots)

    def remove_worker(self, name: str) -> None:
        """Forget a live worker (its running jobs stay RUNNING until reported or lost)."""
        self._workers.remove(name)

    def assign(self, now: float) -> list[Assignment]:
        """Dispatch QUEUED jobs into every free slot of the live workers.

        Each assignment moves its job to RUNNING with the next attempt and a new lease epoch.
        Order: the ready queue's (priority, then FIFO); a job that no free worker can take is
        passed over without blocking the others.
        """
        state = self._state
        ready = state.ready
        if not ready:
            return []
        running = state.running
        loads: dict[str, int] = {}
        free = 0  # free slots of all live workers: each assignment takes one
        for w in self._workers.all():
            load = loads[w.name] = len(running[w.name]) if w.name in running else 0
            if load < w.slots:
                free += w.slots - load
        if not free:
            return []
        lanes = ready.lanes()
        single = lanes[0] if len(lanes) == 1 else None  # (the usual case: one lane)
        capable = {lane: self._workers.capable(lane) for lane in lanes}
        load_of = loads.__getitem__
        out: list[Record] = []
        assignments = []
        while free:
            if single is not None:
                head = ready.head(single)
                best = (head, single) if head is not None else None
            else:
                best = self._best_head(lanes, capable, loads)
            if best is None:
                break
            job = state.lookup(best[0][3])
            spec = job.spec
            worker = choose(capable[best[1]], load_of,
                            self._affinity(job) if spec.affinity else ())
            if worker is None:  # no capable worker of the lane has a free slot
                break
            loads[worker] += 1
            free -= 1
            record = self._move(out, job, _RUNNING, now, attempt=job.attempt + 1,
                                epoch=state.epoch + 1, worker=worker, exit_code=None)
            assignments.append(Assignment(job.run_id, spec.id, worker, record.attempt,
                                          record.epoch, spec, record))
        return assignments

    def _best_head(self, lanes: list[Lane], capable: dict[Lane, tuple[WorkerInfo, ...]],
                   loads: dict[str, int]) -> tuple[Entry, Lane] | None:
        """The first queued job, in dispatch order, among the lanes with a capable worker that
        has a free slot, and its lane; None when there is none."""
        best = None
        for lane in lanes:
            head = self._state.ready.head(lane)
            if head is None or (best is not None and head > best[0]):
                continue
            for w in capable[lane]:
                if loads[w.name] < w.slots:
                    best = (head, lane)
                    break
        return best

    def _affinity(self, job: Job) -> list[str]:
        if not job.spec.affinity:
            return []
        parents = (self._state.lookup(key) for key in job.parents)
        return [p.worker for p in parents
                if p is not None and p.state is _COMPLETED and p.worker]
