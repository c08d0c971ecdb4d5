"""Layer 4: a master that stops running for longer than a lease (SIGSTOP here; a long
compaction or a CPU-bound request in real life) loses no worker and re-runs no job: its workers'
heartbeats were waiting unread in their sockets, not missing."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from support.local_cluster import FAST, module_cluster, write_pipeline

LEASE = float(FAST["TITAN_LEASE"])


@pytest.fixture
def cluster(tmp_path):
    yield from module_cluster(tmp_path / "cluster", workers=1, slots=1)


@pytest.mark.timeout(60)
def test_a_master_stopped_past_the_lease_keeps_its_workers_and_runs_nothing_twice(cluster,
                                                                                 tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    ledger = cluster.ledger
    run_id = cluster.submit(write_pipeline(tmp_path / "p.yaml", "stall", [
        {"id": "held", "command": ledger.command(f"cat {gate} > /dev/null"), "retries": 2}]))
    cluster.wait_started(run_id, "held")
    master = cluster.state["master"]["pid"]
    os.kill(master, signal.SIGSTOP)
    try:
        threading.Event().wait(LEASE * 2)  # the fault lasts this long: a stall, not a wait
    finally:
        os.kill(master, signal.SIGCONT)
    with open(gate, "w") as release:  # the job ends now (it blocks on the FIFO until then)
        release.write("go\n")
    status = cluster.wait_run(run_id, timeout=30)
    [job] = status["jobs"]
    assert (job["state"], job["attempt"]) == ("completed", 1), job
    assert [a for a, _ in ledger.starts("held")] == [1]
    log = (cluster.root / "logs" / "master.log").read_text()
    assert "worker worker-1 lost" not in log
    assert "the master did not run for" in log
