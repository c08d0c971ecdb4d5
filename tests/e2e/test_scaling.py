"""Layer 4: a burst worker appears under load and retires when idle (real processes).

``titanctl up`` with one permanent worker of one slot and a short idle timeout (1 s). Two jobs
that hold until the test creates a file: the second one queues, the scaler asks worker-1 to
start a burst worker process, which registers and takes it. Once both jobs end the burst worker
is idle; after 1 s it is retired, drains, exits, and worker-1 reaps it. worker-1 (permanent)
stays. Waits follow the master's event stream and the processes themselves; nothing sleeps.
"""

from __future__ import annotations

import psutil
import pytest

from support.local_cluster import LocalCluster, gone, write_pipeline

SCALING = {"TITAN_BURST_MAX_PER_HOST": "4", "TITAN_IDLE_TIMEOUT": "1",
           "TITAN_BURST_COOLDOWN": "0.1"}


@pytest.fixture
def cluster(tmp_path):
    made = LocalCluster(tmp_path / "cluster", env=SCALING)
    try:
        yield made
    finally:
        made.down_and_check()


def test_a_burst_worker_appears_under_load_and_retires_when_idle(cluster, tmp_path):
    cluster.up(1, 1)
    go = tmp_path / "go"
    hold = f"while [ ! -e {go} ]; do sleep 0.05; done"
    pipeline = write_pipeline(tmp_path / "load.yaml", "load", [
        {"id": job_id, "command": cluster.ledger.command(hold), "retries": 0}
        for job_id in ("one", "two")])
    run_id = cluster.submit(pipeline)

    def burst_worker():
        return next((w for w in cluster.client.workers()
                     if w.burst_of == "worker-1" and w.connected), None)
    burst = cluster.wait_for(burst_worker, 30, what="a burst worker to register")
    assert (burst.name, burst.ephemeral, burst.slots) == ("worker-1-burst-1", True, 1)
    process = psutil.Process(burst.pid)
    assert process.ppid() == cluster.worker_pid("worker-1")
    cluster.remember()  # checked for at the end like the cluster's own processes
    cluster.wait_started(run_id, "one")
    cluster.wait_started(run_id, "two")
    table = cluster.ctl("workers").stdout
    assert "burst of worker-1" in table and "permanent" in table, table

    go.touch()
    status = cluster.wait_run(run_id, timeout=30)
    assert status["run"]["state"] == "completed"
    assert {j["worker"] for j in status["jobs"]} == {"worker-1", "worker-1-burst-1"}

    # idle for 1 s: retired; it drains, exits, and its parent reaps it (no zombie left)
    process.wait(timeout=20)
    cluster.wait_for(lambda: all(w.name != burst.name for w in cluster.client.workers()), 10,
                     what="the master to forget the retired burst worker")
    events = cluster.client.wait_events(0, 0.0).events
    details = [(e.worker, e.detail) for e in events if e.worker]
    assert any(worker == "worker-1" and detail.startswith("starting burst worker "
                                                           "worker-1-burst-1")
               for worker, detail in details), details
    assert ("worker-1-burst-1", "retiring: burst worker idle for 1 s") in details, details
    assert not any(w == "worker-1" and d.startswith("retiring") for w, d in details)
    [permanent] = cluster.json("workers")
    assert (permanent["name"], permanent["connected"], permanent["draining"]) == \
        ("worker-1", True, False)
    assert permanent["idle_for"] >= 1.0  # idle as long as the burst was, and kept
    assert psutil.Process(cluster.worker_pid("worker-1")).is_running()


def test_down_stops_burst_workers_too(cluster, tmp_path):
    cluster.up(1, 1)
    hold = f"while [ ! -e {tmp_path / 'never'} ]; do sleep 0.05; done"
    run_id = cluster.submit(write_pipeline(tmp_path / "busy.yaml", "busy", [
        {"id": job_id, "command": cluster.ledger.command(hold), "retries": 0}
        for job_id in ("one", "two")]))
    cluster.wait_started(run_id, "one")
    cluster.wait_started(run_id, "two")  # on the burst worker: worker-1 has one slot
    [burst] = [w for w in cluster.client.workers() if w.burst_of]
    process = psutil.Process(burst.pid)
    cluster.remember()

    result = cluster.down()

    assert result.returncode == 0, result.stderr
    assert gone(process), "titanctl down left the burst worker running"
