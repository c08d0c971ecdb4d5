"""Layer 4: a local cluster of real processes (``titanctl up``), as users run it.

Every test ends with ``titanctl down`` and a psutil check that no process of the cluster (master,
workers, launchers, jobs) is left (see ``support/local_cluster.py``). The crash tests SIGKILL a
master or a worker in the middle of a run and check from the ledger the jobs write that every job
completed, in dependency order, and that no job that had completed ran again.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import psutil
import pytest

from support import wait_until
from support.daemons import Daemon, write_daemon_script
from support.local_cluster import (
    LocalCluster,
    cluster_factory,
    dag_jobs,
    gone,
    wait_gone,
    write_pipeline,
)
from support.processes import titanctl, wait_for_file


@pytest.fixture
def local_cluster(tmp_path):
    """A factory of :class:`LocalCluster` over ``tmp_path``; each is brought down and checked."""
    yield from cluster_factory(tmp_path)


def test_up_records_the_cluster_refuses_twice_and_down_stops_exactly_it(local_cluster,
                                                                         tmp_path):
    cluster = local_cluster()
    started = cluster.up(workers=2, slots=1)
    state = cluster.state
    assert state["master"]["host"] == "127.0.0.1" and state["master"]["port"] > 0
    assert [w["name"] for w in state["workers"]] == ["worker-1", "worker-2"]
    for pid in [state["master"]["pid"], *(w["pid"] for w in state["workers"])]:
        assert psutil.pid_exists(pid)
    assert "worker-2 connected" in started.stdout and cluster.address in started.stdout
    workers = cluster.json("workers")
    assert {(w["name"], w["connected"], w["slots"]) for w in workers} == {
        ("worker-1", True, 1), ("worker-2", True, 1)}

    again = titanctl("up", "--data-dir", str(cluster.root), "--port", "0", env=cluster.env)
    assert again.returncode == 1
    assert "already running" in again.stderr and cluster.address in again.stderr
    assert json.loads((cluster.root / "cluster.json").read_text()) == state

    # a second master on the same data directory is refused, naming the holder
    second = titanctl("master", "--data-dir", str(cluster.root), "--port", "0",
                      env=cluster.env)
    assert second.returncode == 2
    assert "in use" in second.stderr and f"pid {state['master']['pid']}" in second.stderr

    # the port is taken: a clear error naming the port and --port, and nothing left running
    other = tmp_path / "other"
    for command in ("master", "up"):
        taken = titanctl(command, "--data-dir", str(other), "--port", str(cluster.port),
                         env=cluster.env)
        assert taken.returncode == 2, taken.stderr
        assert f":{cluster.port}" in taken.stderr and "--port" in taken.stderr
        assert "Traceback" not in taken.stderr
    assert not (other / "cluster.json").exists()
    assert not [p for p in psutil.process_iter(["cmdline"])
                if str(other) in " ".join(p.info["cmdline"] or ())]

    processes = [psutil.Process(state["master"]["pid"])]
    for worker in state["workers"]:
        processes += [psutil.Process(worker["pid"]),
                      *psutil.Process(worker["pid"]).children(recursive=True)]
    assert len(processes) == 5  # a launcher under each worker
    down = cluster.down()
    assert down.returncode == 0, down.stderr
    assert not wait_gone(processes, 15)
    assert not (cluster.root / "cluster.json").exists()
    nothing = titanctl("down", "--data-dir", str(cluster.root), env=cluster.env)
    assert nothing.returncode == 1 and "no cluster is running" in nothing.stdout


def test_down_never_signals_a_pid_that_now_belongs_to_another_process(tmp_path):
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        fake = {"pid": bystander.pid, "create_time": 1.0, "host": "127.0.0.1", "port": 1}
        (tmp_path / "cluster.json").write_text(json.dumps({"master": fake, "workers": []}))
        down = titanctl("down", "--data-dir", str(tmp_path))
        assert down.returncode == 0, down.stderr
        assert bystander.poll() is None, "down killed a process that up did not start"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_failed_up_stops_what_it_started(local_cluster, tmp_path):
    cluster = local_cluster()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    with squatter:
        result = titanctl("up", "--data-dir", str(cluster.root), "--port", str(port),
                          env=cluster.env)
    assert result.returncode == 2
    assert "exited with code 2" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert not (cluster.root / "cluster.json").exists()

    # worker-2's directory is held by another process: master and worker-1 must be stopped
    holder = cluster.spawn(["worker", "--data-dir", str(cluster.root), "--name", "worker-2",
                            "--master", f"127.0.0.1:{port}", "--ready-file",
                            str(tmp_path / "holder.ready")], "holder.log")
    wait_for_file(tmp_path / "holder.ready", holder)
    failed = titanctl("up", "--data-dir", str(cluster.root), "--port", "0", env=cluster.env)
    assert failed.returncode == 2
    assert "worker-2" in failed.stderr and f"pid {holder.pid}" in failed.stderr
    assert not (cluster.root / "cluster.json").exists()
    left = [p for p in psutil.process_iter(["cmdline"])
            if str(cluster.root) in " ".join(p.info["cmdline"] or ()) and p.pid != holder.pid]
    assert not wait_gone(left, 10), left


def test_worker_sigkill_mid_job_reruns_it_on_the_other_worker(local_cluster, tmp_path):
    cluster = local_cluster()
    cluster.up(workers=2, slots=1)
    ledger = cluster.ledger
    # attempt 1 runs until it is killed; attempt 2 ends at once
    slow = ledger.command('if [ "$TITAN_ATTEMPT" = 1 ]; then sleep 60; fi')
    pipeline = write_pipeline(tmp_path / "p.yaml", "worker-crash", [
        {"id": "long", "command": slow, "retries": 2},
        {"id": "after", "command": ledger.command(), "depends_on": ["long"]}])
    run_id = cluster.submit(pipeline)
    cluster.wait_started(run_id, "long")
    first = cluster.json("status", f"{run_id}/long")["job"]
    assert first["state"] == "running" and first["attempt"] == 1
    victim = first["worker"]
    survivor = {"worker-1": "worker-2", "worker-2": "worker-1"}[victim]

    job_processes = cluster.kill(cluster.worker_pid(victim))  # launcher, bash, sleep
    assert len(job_processes) >= 3, job_processes
    assert not wait_gone(job_processes, 10), "the launcher must take its jobs with it"

    status = cluster.wait_run(run_id, timeout=30)
    assert status["run"]["state"] == "completed"
    long = next(j for j in status["jobs"] if j["job_id"] == "long")
    assert (long["attempt"], long["worker"]) == (2, survivor)
    assert [a for a, _ in ledger.starts("long")] == [1, 2]
    ledger.check_dag({"long": [], "after": ["long"]})
    workers = {w["name"]: w for w in cluster.json("workers")}
    assert workers[survivor]["connected"] and not workers.get(victim, {}).get("connected")
    history = cluster.ctl("describe", f"{run_id}/long")
    assert history.returncode == 0 and f"worker {victim} was lost" in history.stdout


def test_worker_and_launcher_sigkill_leaves_orphans_the_next_worker_kills(local_cluster,
                                                                          tmp_path):
    cluster = local_cluster()
    cluster.up(workers=2, slots=1)
    ledger = cluster.ledger
    # each attempt double-forks a daemon out of its session (support/daemons.py), then attempt
    # 1 runs until it is killed
    daemon = write_daemon_script(cluster.root / "daemon.py")
    slow = ledger.command(f'{sys.executable} {daemon}; '
                          'if [ "$TITAN_ATTEMPT" = 1 ]; then sleep 60; fi')
    pipeline = write_pipeline(tmp_path / "p.yaml", "orphans",
                              [{"id": "long", "command": slow, "retries": 2}])
    run_id = cluster.submit(pipeline)
    cluster.wait_started(run_id, "long")
    victim = cluster.json("status", f"{run_id}/long")["job"]["worker"]
    worker_pid = cluster.worker_pid(victim)
    [launcher] = [p for p in psutil.Process(worker_pid).children()
                  if "titan_actors.execution.launcher" in p.cmdline()]
    first_daemon = cluster.wait_for(
        lambda: Daemon.find(cluster.client.logs(f"{run_id}/long").data), what="the daemon")
    wait_until(lambda: "sleep" in [p.name() for p in launcher.children(recursive=True)],
               timeout=30, what="attempt 1 to sleep")
    jobs = launcher.children(recursive=True)  # bash, its sleep, the daemon (adopted by us)
    assert len(jobs) == 3 and first_daemon.pid in [p.pid for p in jobs], jobs
    # worker and launcher share a process group: both at once, nobody is left to kill the job
    # (a launcher that dies alone is noticed by its worker, which kills the job itself)
    assert set(cluster.kill(worker_pid, group=True)) == set(jobs)
    assert not any(gone(p) for p in jobs), f"nobody was left to kill the job: {jobs}"

    status = cluster.wait_run(run_id, timeout=30)
    assert status["run"]["state"] == "completed"
    assert [a for a, _ in ledger.starts("long")] == [1, 2]
    assert not any(gone(p) for p in jobs), "attempt 1 is an orphan: still running"
    # attempt 2 exited at once: the survivor's launcher killed its daemon, and the log says so
    log = cluster.client.logs(f"{run_id}/long").data
    [_, second_daemon] = Daemon.find_all(log)
    wait_until(lambda: not second_daemon.alive(), timeout=10, what="attempt 2's daemon to go")
    assert b"[titan: killed 1 process the job left running: %d (" % second_daemon.pid in log

    # the victim's next life finds the orphans in its data directory (the daemon by the marker
    # in its environment: it left the job's session) and kills them
    ready = tmp_path / "again.ready"
    again = cluster.spawn(["worker", "--name", victim, "--data-dir", str(cluster.root),
                           "--master", cluster.address, "--slots", "1",
                           "--ready-file", str(ready)], "again.log")
    wait_for_file(ready, again)
    assert not wait_gone(jobs, 10), "the restarted worker must kill its orphans"


def _master_crash(cluster: LocalCluster, tmp_path, width: int, depth: int) -> None:
    """Submit a width x depth DAG, SIGKILL the master once a third of the jobs ended, start it
    again on the same port and data directory, and check the run from the ledger."""
    cluster.up(workers=2, slots=3)
    ledger = cluster.ledger
    jobs, parents = dag_jobs(ledger, width, depth, body="sleep 0.1")
    pipeline = write_pipeline(tmp_path / "dag.yaml", "crash", jobs)
    run_id = cluster.submit(pipeline)
    third = len(jobs) // 3
    cluster.wait_for(lambda: len(ledger.ends()) >= third, timeout=60,
                     what=f"{third} jobs to end")
    cluster.kill(cluster.state["master"]["pid"])
    ended_before = set(ledger.ends())
    assert len(ended_before) < len(jobs), "the run ended before the master was killed"
    cluster.reconnect()

    cluster.restart_master()
    status = cluster.wait_run(run_id, timeout=60 + len(jobs) / 2)
    assert status["run"]["state"] == "completed", status["run"]
    assert {j["state"] for j in status["jobs"]} == {"completed"}
    assert len(status["jobs"]) == len(jobs)
    ledger.check_dag(parents)
    for job_id in ended_before:
        assert len(ledger.starts(job_id)) == 1, f"{job_id} ran again: {ledger.starts(job_id)}"
    workers = cluster.json("workers")
    assert {w["name"] for w in workers if w["connected"]} == {"worker-1", "worker-2"}


def test_master_sigkill_mid_dag_and_restart_completes_60_jobs_once(local_cluster, tmp_path):
    _master_crash(local_cluster(), tmp_path, width=6, depth=10)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_master_sigkill_mid_dag_and_restart_completes_200_jobs_once(local_cluster, tmp_path):
    _master_crash(local_cluster(), tmp_path, width=10, depth=20)


def test_sigterm_drains_a_worker_and_down_stops_every_job(local_cluster, tmp_path):
    """`down` while a job runs: the worker drains (for TITAN_DRAIN_TIMEOUT), then the job's
    process tree is killed and nothing is left."""
    cluster = local_cluster()
    cluster.up(workers=1, slots=1)
    ledger = cluster.ledger
    pipeline = write_pipeline(tmp_path / "p.yaml", "drain", [
        {"id": "forever", "command": ledger.command("sleep 60")}])
    run_id = cluster.submit(pipeline)
    cluster.wait_started(run_id, "forever")
    worker = psutil.Process(cluster.worker_pid("worker-1"))
    processes = [worker, *worker.children(recursive=True)]
    assert len(processes) >= 4  # worker, launcher, bash, sleep
    down = cluster.down()
    assert down.returncode == 0, down.stderr
    assert not wait_gone(processes, 10)


def test_the_store_survives_a_sigkill_of_its_process(local_cluster):
    """The store embedded in the master: acknowledged writes are in its AOF (everysec fsyncs
    within about a second; a SIGKILL loses nothing the OS already has)."""
    cluster = local_cluster("store")
    cluster.up(workers=0)
    for n in range(20):
        assert cluster.ctl("kv", "put", f"k{n}", f"v{n}|;\n✓").returncode == 0
    assert cluster.ctl("kv", "sadd", "members", "a").stdout.strip() == "1"
    cluster.kill(cluster.state["master"]["pid"])
    cluster.restart_master()
    got = cluster.ctl("kv", "get", "k19")
    assert got.returncode == 0 and got.stdout == "v19|;\n✓\n"
    assert cluster.ctl("kv", "smembers", "members").stdout.split() == ["a"]
    assert cluster.ctl("kv", "sadd", "members", "a").stdout.strip() == "0"
