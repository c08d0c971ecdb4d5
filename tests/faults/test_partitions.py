"""Layer 4: network partitions between a worker and its master, through the fault proxy.

The worker ``cut`` reaches the master through a proxy of its own (``support/fault_proxy.py``);
``spare`` connects directly. Two jobs run on ``cut`` when the fault starts. Each scenario checks
that:

* the master declares ``cut`` lost after the lease (1.5 s) and runs its two jobs again on
  ``spare``, once each; the job after them runs once, and the run completes;
* the first attempts, released during the fault, end on ``cut`` and are reported late: the
  master refuses them (their attempt is no longer current), so the final state is the second
  attempts';
* after the heal, ``cut`` registers again and takes new work.

The default run holds a blackhole for 5 s (``test_silent_master.py`` covers the worker's side of
a one-way loss cheaply); ``make test-long`` holds every fault for 20 s and the harshest for 60 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from support import wait_until
from support.fault_cluster import (
    FaultCluster,
    check_reruns,
    job_event,
    recorded_late,
    worker_event,
)
from support.fault_proxy import Direction, FaultProxy
from support.local_cluster import FAST, write_pipeline
from titan_actors.scheduler import JobState

LEASE = float(FAST["TITAN_LEASE"])

FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "blackhole": FaultProxy.blackhole,
    "drop-worker-to-master": lambda proxy: proxy.drop(Direction.UP),
    "drop-master-to-worker": lambda proxy: proxy.drop(Direction.DOWN),
    "half-open": FaultProxy.half_open,
    "reset": lambda proxy: proxy.reset_after(0),
}


@pytest.fixture
def cluster(tmp_path):
    made = FaultCluster(tmp_path / "cluster")
    try:
        made.up()
        yield made
    finally:
        made.down_and_check()


def partition(cluster: FaultCluster, tmp_path, fault: str, duration: float) -> None:
    ledger, late = cluster.ledger, cluster.new_ledger("late")
    release = tmp_path / "release"
    holds = ("hold-1", "hold-2")
    # attempt 1 waits for `release` (given during the fault), then ends: hold-1 with 0, hold-2
    # with 3, and either result would change the job if the master took it
    jobs = [{"id": job_id, "retries": 2, "command": ledger.command(
        f'if [ "$TITAN_ATTEMPT" = 1 ]; then while [ ! -e {release} ]; do sleep 0.05; done; '
        f'echo "late $TITAN_JOB_ID $TITAN_ATTEMPT" >> {late.path}; exit {code}; fi')}
        for job_id, code in zip(holds, (0, 3), strict=True)]
    jobs.append({"id": "tail", "command": ledger.command(), "depends_on": list(holds)})
    cluster.add_worker("cut", slots=2)
    run_id = cluster.submit(write_pipeline(tmp_path / "p.yaml", "partition", jobs))
    for job_id in holds:
        cluster.wait_started(run_id, job_id)
    cluster.add_worker("spare", slots=2, proxied=False)
    after = cluster.last_seq()

    cut_at, started = time.time(), time.monotonic()
    FAULTS[fault](cluster.proxies["cut"])
    lost = cluster.next_event(worker_event("cut", "lost"), after, timeout=3 * LEASE + 10)
    moved = [cluster.next_event(job_event(JobState.RUNNING, 2, (job_id,)), after, timeout=10)
             for job_id in holds]
    release.touch()  # the first attempts end on `cut`, which cannot report them now
    wait_until(lambda: len(late.entries()) == 2, timeout=10, what="the first attempts to end")
    status = cluster.wait_run(run_id, timeout=30)
    during = cluster.watch_until(started + duration, after)
    assert not [e for e in during if worker_event("cut", "connected")(e)], \
        f"cut got through the {fault} fault"

    healed_seq, healed_at = cluster.last_seq(), time.time()
    cluster.proxies["cut"].heal()
    back = cluster.next_event(worker_event("cut", "connected"), healed_seq, timeout=30)

    for job_id in holds:
        cluster.wait_refused(run_id, job_id, "cut")
    assert check_reruns(cluster, run_id, ledger) == {"hold-1": 1, "hold-2": 1, "tail": 0}
    assert {e.worker for e in moved} == {"spare"}
    assert {j["job_id"]: (j["attempt"], j["exit_code"]) for j in status["jobs"]} == {
        "hold-1": (2, 0), "hold-2": (2, 0), "tail": (1, 0)}
    assert not recorded_late(cluster, after, moved)

    pinned = write_pipeline(tmp_path / "again.yaml", "after-heal", [
        {"id": "on-cut", "command": cluster.new_ledger("again").command(), "worker": "cut"}])
    again = cluster.wait_run(cluster.submit(pinned), timeout=30)
    assert again["run"]["state"] == "completed" and again["jobs"][0]["worker"] == "cut"
    print(f"\nFIGURE {fault} {duration:.0f}s: lost {lost.at - cut_at:.2f} s after the cut, "
          f"re-dispatched {max(e.at for e in moved) - cut_at:.2f} s after it; reconnected "
          f"{back.at - healed_at:.2f} s after the heal; 2 duplicates (both in doubt)")


def test_a_blackhole_of_5_s(cluster, tmp_path):
    partition(cluster, tmp_path, "blackhole", 5.0)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_partition_of_20_s(cluster, tmp_path, fault):
    partition(cluster, tmp_path, fault, 20.0)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", ["blackhole", "half-open", "drop-master-to-worker"])
def test_a_partition_of_60_s(cluster, tmp_path, fault):
    partition(cluster, tmp_path, fault, 60.0)
