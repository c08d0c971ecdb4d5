"""Layer 3: the scaler actor beside an in-process master, on a manual clock.

The scaler's time moves only when the test says so (``ManualClock``), so an idle timeout of 45 s
takes no real time; the master and the workers run on real sockets and real time. The burst
worker is a real ``titanctl worker`` process started by the in-process worker actor.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from support import wait_until
from support.cluster import job, run_spec
from titan_actors.actors.clock import ManualClock
from titan_actors.actors.master_scaling import SpawnBurstOn
from titan_actors.actors.scaler import ScalerActor, ScalerOptions, ScalerStatus
from titan_actors.errors import UsageError
from titan_actors.master.scaling import ScalingPolicy, Spawn
from titan_actors.scheduler import JobState
from titan_actors.wire.messages.master import EventKind


class Scaler:
    """A scaler actor in the master's system, and its manual clock."""

    def __init__(self, cluster, **policy) -> None:
        self.clock = ManualClock()
        options = ScalerOptions(interval=1.0, policy=ScalingPolicy(**policy))
        self.ref = cluster.master.system.spawn(ScalerActor, options, cluster.master.ref,
                                               clock=self.clock, name="scaler")

    def looks(self) -> int:
        return self.ref.ask(ScalerStatus(), timeout=5).looks

    def step(self, seconds: float = 1.0) -> None:
        """Move the scaler's clock on by ``seconds`` and wait until it decided on a look."""
        before = self.looks()
        self.clock.advance(seconds)
        wait_until(lambda: self.looks() > before, 5, what="the scaler's next look")


def hold(go: Path) -> str:
    return f"while [ ! -e {go} ]; do sleep 0.02; done"


def scaler_events(cluster, after: int, worker: str) -> list[str]:
    batch = cluster.client.wait_events(after, 0.0)
    return [e.detail for e in batch.events if e.kind is EventKind.WORKER and e.worker == worker]


def test_an_idle_ephemeral_worker_is_retired_and_a_permanent_one_stays(cluster):
    cluster.add_worker("keeper", slots=1)
    temp = cluster.add_worker("temp", slots=1, ephemeral=True)
    scaler = Scaler(cluster, idle_timeout=45.0, max_per_host=0)
    after = cluster.client.last_seq()
    scaler.step(1.0)   # both idle from here on
    scaler.step(44.0)  # 44 s idle: not yet
    assert temp.ref.is_alive
    scaler.step(1.0)   # 45 s

    assert temp.ref.join(10), "the retired worker did not stop"
    wait_until(lambda: "left" in scaler_events(cluster, after, "temp"), 5,
               what="the retired worker to leave")
    assert "retiring: ephemeral worker idle for 45 s" in scaler_events(cluster, after, "temp")
    workers = {w.name: w for w in cluster.client.workers()}
    assert "temp" not in workers  # it drained and left: gone, not "lost"
    assert workers["keeper"].connected and not workers["keeper"].draining
    assert workers["keeper"].idle_for > 0  # idle, and shown so, but permanent
    scaler.step(100.0)
    assert cluster.workers["keeper"].ref.is_alive


def test_a_saturated_worker_starts_a_burst_worker_that_retires_when_idle(cluster):
    go = cluster.root / "go"
    cluster.add_worker("w1", slots=1)
    scaler = Scaler(cluster, idle_timeout=45.0, cooldown=1.0)
    accepted = cluster.client.submit(run_spec(
        "burst", job("one", hold(go)), job("two", hold(go))))
    run_id = accepted.run_id
    cluster.client.follow(lambda c: sum(j.state is JobState.RUNNING
                                        for j in c.run(run_id).jobs) == 1, what="one running")
    after = cluster.client.last_seq()
    scaler.step()  # w1 is saturated and a job waits: it starts w1-burst-1

    cluster.client.wait_workers("w1-burst-1", timeout=30)
    infos = {w.name: w for w in cluster.client.workers()}
    burst = infos["w1-burst-1"]
    assert (burst.burst_of, burst.ephemeral, burst.slots, burst.tags) == ("w1", True, 1,
                                                                          ("GENERAL",))
    process = psutil.Process(burst.pid)
    assert process.ppid() == psutil.Process().pid  # the in-process worker w1 started it
    assert infos["w1"].scaling.startswith("started burst worker w1-burst-1 (pid ")
    # the waiting job went to the burst worker as soon as it registered
    cluster.client.follow(lambda c: {j.worker for j in c.run(run_id).jobs
                                     if j.state is JobState.RUNNING} == {"w1", "w1-burst-1"},
                          what="a job on each worker")
    details = scaler_events(cluster, after, "w1")
    assert any(d.startswith("starting burst worker w1-burst-1: 1 jobs queued for GENERAL")
               for d in details), details
    assert scaler.ref.ask(ScalerStatus(), timeout=5).in_flight == ("w1-burst-1",)

    go.touch()
    cluster.client.wait_run(run_id, timeout=10)
    scaler.step()      # the burst registered; idle from now
    assert scaler.ref.ask(ScalerStatus(), timeout=5).in_flight == ()
    scaler.step(45.0)  # idle for 45 s: retired

    cluster.client.wait_workers("w1-burst-1", connected=False, timeout=10)
    # its parent reaps it: the pid is gone, not a zombie
    wait_until(lambda: not psutil.pid_exists(burst.pid), 10, what="the burst to be reaped")
    assert cluster.workers["w1"].ref.is_alive
    assert "retiring: burst worker idle for 45 s" in scaler_events(cluster, after,
                                                                   "w1-burst-1")


def test_a_spawn_the_worker_refuses_is_reported_and_the_master_says_why(cluster):
    cluster.add_worker("w1", slots=1)
    after = cluster.client.last_seq()
    master = cluster.master.ref
    with pytest.raises(UsageError, match="not a worker name"):
        master.ask(SpawnBurstOn(Spawn("w1", "../evil", "h", "test")), timeout=10)
    with pytest.raises(UsageError, match="worker ghost cannot start"):
        master.ask(SpawnBurstOn(Spawn("ghost", "ghost-burst-1", "h", "test")), timeout=10)
    details = scaler_events(cluster, after, "w1")
    assert details[0] == "starting burst worker ../evil: test"
    assert details[1].startswith("could not start burst worker ../evil: ")
    [info] = cluster.client.workers()
    assert info.scaling.startswith("could not start burst worker ../evil")
