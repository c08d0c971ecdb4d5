"""Layer 4 across hosts: a master and two workers, each in a network namespace of its own
(``support/netns.py``), with a cluster key (the master listens off loopback).

A DAG runs across both workers (tags place a job on each; two more follow their parent onto
``b`` by affinity); then ``b``'s cable is pulled (its veth set down, for several seconds past the
lease of 1.5 s): its two running jobs move to ``a``, once each, and the late results of their
first attempts are refused once ``b`` is back. ``b`` then registers again and runs a job pinned
to it. Needs root and iproute2; skipped with the reason otherwise.
"""

from __future__ import annotations

import time

import pytest

from support import wait_until
from support.fault_cluster import check_reruns, job_event, recorded_late, worker_event
from support.local_cluster import FAST, write_pipeline
from support.netns import NetnsCluster, unavailable
from titan_actors.scheduler import JobState

LEASE = float(FAST["TITAN_LEASE"])


@pytest.fixture
def cluster(tmp_path):
    why = unavailable()
    if why:
        pytest.skip(why)
    made = NetnsCluster(tmp_path / "cluster", ("a", "b"))
    try:
        made.up({"a": ("GENERAL", "A"), "b": ("GENERAL", "B")})
        yield made
    finally:
        made.down_and_check()


def cut_a_host(cluster: NetnsCluster, tmp_path, duration: float) -> None:
    ledger, late = cluster.ledger, cluster.new_ledger("late")
    release = tmp_path / "release"
    hold = ledger.command(
        f'if [ "$TITAN_ATTEMPT" = 1 ]; then while [ ! -e {release} ]; do sleep 0.05; done; '
        f'echo "late $TITAN_JOB_ID $TITAN_ATTEMPT" >> {late.path}; fi')
    holds = ("hold-1", "hold-2")
    run_id = cluster.submit(write_pipeline(tmp_path / "p.yaml", "hosts", [
        {"id": "on-a", "command": ledger.command(), "requirement": "A"},
        {"id": "on-b", "command": ledger.command(), "requirement": "B"},
        *({"id": job_id, "command": hold, "retries": 2, "affinity": True,
           "depends_on": ["on-b"]} for job_id in holds),
        {"id": "tail", "command": ledger.command(), "depends_on": ["on-a", *holds]}]))
    for job_id in holds:
        cluster.wait_started(run_id, job_id)
        assert cluster.client.job(f"{run_id}/{job_id}").job.worker == "b"
    after = cluster.last_seq()

    cut_at, started = time.time(), time.monotonic()
    cluster.hosts.cut("b")
    lost = cluster.next_event(worker_event("b", "lost"), after, timeout=LEASE + 10)
    moved = [cluster.next_event(job_event(JobState.RUNNING, 2, (job_id,)), after, timeout=10)
             for job_id in holds]
    release.touch()
    wait_until(lambda: len(late.entries()) == 2, timeout=10, what="the first attempts to end")
    status = cluster.wait_run(run_id, timeout=30)
    during = cluster.watch_until(started + duration, after)
    assert not [e for e in during if worker_event("b", "connected")(e)]

    healed_seq, healed_at = cluster.last_seq(), time.time()
    cluster.hosts.heal("b")
    back = cluster.next_event(worker_event("b", "connected"), healed_seq, timeout=30)

    for job_id in holds:
        cluster.wait_refused(run_id, job_id, "b")
    assert check_reruns(cluster, run_id, ledger) == {
        "on-a": 0, "on-b": 0, "hold-1": 1, "hold-2": 1, "tail": 0}
    assert not recorded_late(cluster, after, moved)
    workers = {j["job_id"]: (j["worker"], j["attempt"]) for j in status["jobs"]}
    assert workers == {"on-a": ("a", 1), "on-b": ("b", 1), "hold-1": ("a", 2),
                       "hold-2": ("a", 2), "tail": ("a", 1)}

    pinned = write_pipeline(tmp_path / "again.yaml", "after-heal", [
        {"id": "on-b-again", "command": cluster.new_ledger("again").command(), "worker": "b"}])
    again = cluster.wait_run(cluster.submit(pinned), timeout=30)
    assert again["run"]["state"] == "completed" and again["jobs"][0]["worker"] == "b"
    print(f"\nFIGURE netns cut {duration:.0f}s: lost {lost.at - cut_at:.2f} s after the cut, "
          f"re-dispatched {max(e.at for e in moved) - cut_at:.2f} s after it; reconnected "
          f"{back.at - healed_at:.2f} s after the heal")


def test_a_host_cut_off_for_5_s(cluster, tmp_path):
    cut_a_host(cluster, tmp_path, 5.0)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_host_cut_off_for_60_s(cluster, tmp_path):
    cut_a_host(cluster, tmp_path, 60.0)
