"""A local cluster whose workers the test starts itself, each behind a fault proxy of its own.

:class:`FaultCluster` is a :class:`~support.local_cluster.LocalCluster` brought up with no
workers (``titanctl up --workers 0``); :meth:`FaultCluster.add_worker` starts ``titanctl
worker --master 127.0.0.1:PROXYPORT`` (or the master's own address, ``proxied=False``) and
waits until it registered. The end of the test heals every proxy, continues every process a
test stopped (SIGSTOP), runs ``titanctl down`` and checks that nothing is left.

:func:`check_reruns` is the rule every fault scenario ends with: each job completed once, and
each attempt before its last was started at most once and ended by a loss (its dispatch really
was in doubt), never by a second report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from support import wait_until
from support.fault_proxy import FaultProxy
from support.local_cluster import LocalCluster
from support.processes import wait_for_file
from titan_actors.scheduler import JobState
from titan_actors.wire.messages.master import Event, EventKind

# the reasons the master gives when it declares an attempt lost (actors/master_workers.py)
LOSSES = ("was lost", "restarted while running it", "is gone",
          "no worker claimed it after a restart")


class ClusterEvents:
    """Waits on the master's event stream and reads of its log, for any cluster with a
    ``client`` (a MasterClient) and a ``root`` holding ``logs/<component>.log``."""

    def connected(self, name: str) -> bool:
        return any(w.name == name and w.connected for w in self.client.workers())

    def log(self, name: str = "master") -> str:
        return (self.root / "logs" / f"{name}.log").read_text(errors="replace")

    def wait_refused(self, run_id: str, job_id: str, worker: str, timeout: float = 10) -> None:
        """Wait until the master's log says it refused the report of attempt 1 of the job from
        ``worker``: in its registration ("report for RUN/JOB attempt 1 ... refused") or sent
        after it ("refused a report of RUN/JOB from WORKER")."""
        def said() -> bool:
            return any("refused" in line and (f"{run_id}/{job_id} attempt 1 " in line
                                              or f"{run_id}/{job_id} from {worker}:" in line)
                       for line in self.log().splitlines())
        wait_until(said, timeout=timeout, what=f"the master to refuse {job_id}'s late report")

    def last_seq(self) -> int:
        return self.client.wait_events(1 << 60, 0.0).last_seq

    def next_event(self, predicate: Callable[[Event], bool], after: int, timeout: float = 30,
                   what: str = "") -> Event:
        """The first event after stream position ``after`` that ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for the event: "
                                     f"{what or predicate}")
            batch = self.client.wait_events(after, min(remaining, 5.0))
            assert not batch.reset, "the master's event window moved past the test"
            for event in batch.events:
                if predicate(event):
                    return event
            after = batch.last_seq

    def events(self, after: int) -> list[Event]:
        """Every event after ``after`` so far."""
        found: list[Event] = []
        while True:
            batch = self.client.wait_events(after, 0.0)
            if not batch.events:
                return found
            found += batch.events
            after = batch.last_seq

    def watch_until(self, deadline: float, after: int) -> list[Event]:
        """Follow the event stream until ``deadline`` (``time.monotonic()``): the way a fault
        is held for its duration; returns what happened meanwhile."""
        seen: list[Event] = []
        while (remaining := deadline - time.monotonic()) > 0:
            batch = self.client.wait_events(after, min(remaining, 5.0))
            seen += batch.events
            after = batch.last_seq
        return seen


class FaultCluster(ClusterEvents, LocalCluster):
    """See the module docstring."""

    def __init__(self, root, env: dict[str, str] | None = None) -> None:
        super().__init__(root, env)
        self.proxies: dict[str, FaultProxy] = {}
        self.workers: dict[str, subprocess.Popen] = {}

    def up(self, workers: int = 0, slots: int = 2, *more: str) -> subprocess.CompletedProcess:
        return super().up(workers, slots, *more)

    def add_worker(self, name: str, *, slots: int = 2, tags: tuple[str, ...] = ("GENERAL",),
                   proxied: bool = True) -> subprocess.Popen:
        """Start worker ``name`` (through a proxy of its own unless ``proxied`` is False) and
        wait until the master lists it as connected."""
        address = self.address
        if proxied:
            proxy = FaultProxy(("127.0.0.1", self.port)).start()
            self.proxies[name] = proxy
            address = proxy.address
        ready = self.root / f"{name}.ready"
        process = self.spawn(["worker", "--master", address, "--name", name, "--tags",
                              ",".join(tags), "--slots", str(slots), "--data-dir",
                              str(self.root), "--ready-file", str(ready)], f"logs/{name}.log")
        self.workers[name] = process
        wait_for_file(ready, process)
        self.wait_for(lambda: self.connected(name), what=f"worker {name} to register")
        self.remember()
        return process

    def down_and_check(self) -> None:
        for process in self.started:  # a stopped process would never take its SIGTERM
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
        try:
            for proxy in self.proxies.values():
                proxy.heal()
            super().down_and_check()
        finally:
            for proxy in self.proxies.values():
                proxy.stop()


def worker_event(name: str, detail: str) -> Callable[[Event], bool]:
    return lambda e: e.kind is EventKind.WORKER and e.worker == name and e.detail == detail


def job_event(state, attempt: int | None = None, jobs: tuple[str, ...] = ()) \
        -> Callable[[Event], bool]:
    return lambda e: (e.kind is EventKind.JOB and e.job_state is state
                      and (attempt is None or e.attempt == attempt)
                      and (not jobs or e.job_id in jobs))


def recorded_late(cluster: FaultCluster, after: int, moved: list[Event]) -> list[Event]:
    """Events of an earlier attempt of a job after the event ``moved`` said its next attempt
    runs: a late report the master took (empty when it refused them all)."""
    since = {e.job_id: (e.seq, e.attempt) for e in moved}
    return [e for e in cluster.events(after) if e.kind is EventKind.JOB and e.job_id in since
            and e.seq > since[e.job_id][0] and e.attempt < since[e.job_id][1]]


def check_reruns(cluster: LocalCluster, run_id: str, ledger) -> dict[str, int]:
    """Every job of the run completed; in the ledger, no attempt started twice, and every
    attempt before a job's last one ended by a loss (it was running, or dispatched, on a worker
    the master lost), never by an exit. Returns each job's extra starts (the duplicates)."""
    status = cluster.json("status", run_id)
    assert status["run"]["state"] == "completed", status
    duplicates, problems = {}, []
    for job in status["jobs"]:
        job_id, last = job["job_id"], job["attempt"]
        assert job["state"] == "completed", job
        started = [attempt for attempt, _pid in ledger.starts(job_id)]
        if len(set(started)) != len(started) or last not in started:
            problems.append(f"{job_id}: attempts started {started}, completed at {last}")
        history = cluster.client.job(f"{run_id}/{job_id}").history
        failed = [e for e in history if e.kind is EventKind.JOB
                  and e.job_state is JobState.FAILED]
        for event in failed:
            if not any(loss in event.detail for loss in LOSSES):
                problems.append(f"{job_id}: attempt {event.attempt} failed: {event.detail}")
        if len(failed) != last - 1:
            problems.append(f"{job_id}: {last} attempts, {len(failed)} failures")
        duplicates[job_id] = len(started) - 1
    assert not problems, "\n".join(problems)
    return duplicates
