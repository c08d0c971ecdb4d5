"""Retention: repeated runs leave the master's memory, AOF and logs flat, and workers' run
directories are swept."""

from __future__ import annotations

from support import wait_until
from support.cluster import job, run_spec
from titan_actors.execution import workspace
from titan_actors.wire.roles import Role


def test_repeated_runs_keep_the_master_flat(make_cluster):
    cluster = make_cluster(master_options=dict(retention_runs=3, retention_age=3600.0,
                                               retention_interval=3600.0))
    cluster.start_master()
    cluster.add_worker("w1", slots=2)
    aof = cluster.root / "master" / "master.aof"
    admin = cluster.new_client(role=Role.ADMIN)
    sizes = []
    for round_ in range(4):
        for n in range(5):
            accepted = cluster.client.submit(run_spec(f"r{round_}-{n}", job("a", "echo hi"),
                                                      job("b", "echo there", parents=("a",))))
            cluster.client.wait_run(accepted.run_id)
        assert admin.prune(3600.0, 3).startswith("pruned")
        sizes.append(aof.stat().st_size)
        assert len(cluster.client.runs(100)) == 3
    # compaction keeps the file at the size of the 3 live runs, round after round
    assert max(sizes[1:]) <= sizes[0] * 1.5, sizes
    logs = cluster.root / "master" / "logs"
    assert len([p for p in logs.iterdir() if p.is_dir()]) == 3
    kept = [r.run_id for r in cluster.client.runs(100)]
    port = cluster.stop_master()[1]
    cluster.start_master(port=port)  # replays the compacted file
    assert [r.run_id for r in cluster.client.runs(100)] == kept
    accepted = cluster.client.submit(run_spec("after", job("a", "echo again")))
    assert accepted.run_id > max(kept)  # run ids never go back, even after compaction
    cluster.client.wait_run(accepted.run_id)


def test_worker_sweeps_old_run_directories(cluster):
    worker = cluster.add_worker("w1", slots=1, workspace_retention=0.0, workspace_sweep=0.05)
    accepted = cluster.client.submit(run_spec("one", job("a", "echo hi > out.txt")))
    cluster.client.wait_run(accepted.run_id)
    wait_until(lambda: not workspace.run_dir(worker.options.data_dir,
                                             accepted.run_id).exists(),
               timeout=5, what="the run directory to be swept")
