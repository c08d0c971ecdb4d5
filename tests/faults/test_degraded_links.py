"""Layer 4: links that are slow or flap, but never stay down for a lease (``make test-long``).

The worker ``w`` reaches the master through the fault proxy. A DAG runs on it, and on ``spare``
(connected directly) in the slow-link test. A slow link (each chunk delayed) must lose nothing
and re-run nothing; a flapping link (every connection reset after 1.5 kB) makes ``w`` register
again and again: its running jobs are re-attached each time, so the run completes and any job
that runs twice was in doubt (its attempt was declared lost) when it did.
"""

from __future__ import annotations

import pytest

from support.fault_cluster import FaultCluster, check_reruns
from support.local_cluster import dag_jobs, write_pipeline
from titan_actors.wire.messages.master import EventKind

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def cluster(tmp_path):
    made = FaultCluster(tmp_path / "cluster")
    try:
        made.up()
        made.add_worker("w", slots=2)
        yield made
    finally:
        made.down_and_check()


def run_dag(cluster: FaultCluster, tmp_path, body: str) -> tuple[str, dict[str, int], list]:
    jobs, parents = dag_jobs(cluster.ledger, width=4, depth=5, body=body)
    after = cluster.last_seq()
    run_id = cluster.submit(write_pipeline(tmp_path / "dag.yaml", "degraded", jobs))
    status = cluster.wait_run(run_id, timeout=120)
    assert status["run"]["state"] == "completed", status
    cluster.ledger.check_dag(parents)
    return run_id, check_reruns(cluster, run_id, cluster.ledger), cluster.events(after)


def test_a_slow_link_loses_nothing_and_runs_nothing_twice(cluster, tmp_path):
    cluster.add_worker("spare", slots=2, proxied=False)
    cluster.proxies["w"].delay(300)  # 0.3 s each way per chunk, under the lease of 1.5 s
    run_id, duplicates, events = run_dag(cluster, tmp_path, "sleep 0.3")

    assert not any(duplicates.values()), duplicates
    assert not [e for e in events if e.kind is EventKind.WORKER and e.worker == "w"], events
    assert {j["worker"] for j in cluster.json("status", run_id)["jobs"]} == {"w", "spare"}


def test_a_flapping_link_re_attaches_running_jobs(cluster, tmp_path):
    cluster.proxies["w"].reset_after(1500)  # every connection: reset after 1.5 kB
    run_id, duplicates, events = run_dag(cluster, tmp_path, "sleep 0.5")

    resets = cluster.proxies["w"].stats().resets
    registrations = [e for e in events if e.kind is EventKind.WORKER and e.worker == "w"
                     and e.detail == "connected"]
    assert resets >= 2 and len(registrations) >= 2, (resets, registrations)
    print(f"\nFIGURE flapping: {resets} resets, {len(registrations)} registrations of w, "
          f"duplicates {sum(duplicates.values())} (each in doubt)")
