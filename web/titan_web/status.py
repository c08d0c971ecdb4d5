"""What the status line, the gate banner and ``/metrics`` show: one snapshot of the cluster,
read from the master in four asks (workers, runs with their job counts, waiting gates, and a
ping that says whether persistence is degraded)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from titan_actors.scheduler.model import JobState, RunState
from titan_actors.wire.messages.master import JobInfo, WorkerInfo

RUN_LIMIT = 1000  # runs read for the job counts (the master keeps 1000 finished runs by default)
_SERVICE_STATES = (JobState.STARTING, JobState.READY, JobState.RESTARTING)


@dataclass(frozen=True)
class Status:
    """The cluster at ``at`` (epoch seconds), or why the master could not be read."""

    reachable: bool
    error: str = ""
    at: float = 0.0
    workers: tuple[WorkerInfo, ...] = ()
    gates: tuple[JobInfo, ...] = ()
    jobs: dict[str, int] = field(default_factory=dict)   # job state -> count, over kept runs
    runs: dict[str, int] = field(default_factory=dict)   # run state -> count
    degraded: str = ""  # what the master reports degraded (its or its store's persistence)

    @property
    def workers_connected(self) -> int:
        return sum(1 for w in self.workers if w.connected)

    @property
    def slots(self) -> int:
        return sum(w.slots for w in self.workers if w.connected)

    @property
    def busy(self) -> int:
        return sum(w.running for w in self.workers if w.connected)

    @property
    def queued(self) -> int:
        return self.jobs.get(JobState.QUEUED.value, 0)

    @property
    def running(self) -> int:
        return self.jobs.get(JobState.RUNNING.value, 0)

    @property
    def services(self) -> int:
        return sum(self.jobs.get(s.value, 0) for s in _SERVICE_STATES)

    @property
    def active_runs(self) -> int:
        return self.runs.get(RunState.ACTIVE.value, 0) + self.runs.get(RunState.SERVING.value, 0)


def read_status(client, run_limit: int = RUN_LIMIT) -> Status:
    """A snapshot through ``client`` (a MasterClient). Raises what the client raises."""
    workers = client.workers()
    runs = client.runs(run_limit)
    gates = client.gates()
    degraded = getattr(client.ping(), "degraded", "")
    jobs: dict[str, int] = {}
    run_states: dict[str, int] = {}
    for run in runs:
        run_states[run.state.value] = run_states.get(run.state.value, 0) + 1
        for state, count in run.counts.items():
            jobs[state] = jobs.get(state, 0) + count
    return Status(True, at=time.time(), workers=tuple(workers), gates=tuple(gates), jobs=jobs,
                  runs=run_states, degraded=degraded)


def unreachable(error: str) -> Status:
    return Status(False, error=error, at=time.time())
