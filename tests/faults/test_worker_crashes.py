"""Layer 4: a worker SIGKILLed, or SIGSTOPped past its lease and continued, while it runs jobs.

Real processes (``titanctl up`` with no workers, then ``titanctl worker`` started by the test,
``support/fault_cluster.py``), a lease of 1.5 s, and jobs that append to a ledger. A job whose
worker was lost runs again exactly once; the results a lost worker reports late are refused
(the scheduler fences reports by attempt and lease epoch), and the final state is the new
attempt's.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from support import wait_until
from support.fault_cluster import (
    FaultCluster,
    check_reruns,
    job_event,
    recorded_late,
    worker_event,
)
from support.local_cluster import FAST, tree, wait_gone, write_pipeline
from titan_actors.scheduler import JobState

LEASE = float(FAST["TITAN_LEASE"])


@pytest.fixture
def cluster(tmp_path):
    made = FaultCluster(tmp_path / "cluster")
    try:
        made.up()
        yield made
    finally:
        made.down_and_check()


def wait_for_file_text(path, text: str, what: str) -> None:
    """A job wrote ``text`` to ``path`` (nothing else tells: its worker is stopped)."""
    wait_until(lambda: path.exists() and text in path.read_text(), timeout=10, what=what)


def test_a_killed_worker_s_running_jobs_each_run_again_exactly_once(cluster, tmp_path):
    ledger = cluster.ledger
    cluster.add_worker("victim", slots=3, proxied=False)
    hang = ledger.command('if [ "$TITAN_ATTEMPT" = 1 ]; then sleep 600; fi')
    longs = [f"long-{i}" for i in range(1, 4)]
    pipeline = write_pipeline(tmp_path / "p.yaml", "worker-kill", [
        {"id": "first", "command": ledger.command()},
        *({"id": name, "command": hang, "retries": 2, "depends_on": ["first"]}
          for name in longs),
        {"id": "last", "command": ledger.command(), "depends_on": longs}])
    run_id = cluster.submit(pipeline)
    for name in longs:
        cluster.wait_started(run_id, name)
    cluster.add_worker("survivor", slots=3, proxied=False)
    after = cluster.last_seq()

    killed_at = time.time()
    left = cluster.kill(cluster.workers["victim"].pid)  # launcher, bash and sleep of each job
    assert not wait_gone(left, 10), "the launcher must take its jobs with it"

    lost = cluster.next_event(worker_event("victim", "lost"), after, timeout=LEASE + 5)
    status = cluster.wait_run(run_id, timeout=30)
    moved = [e for e in cluster.events(after) if job_event(JobState.RUNNING, 2)(e)]

    assert {e.job_id for e in moved} == set(longs) and {e.worker for e in moved} == {"survivor"}
    assert lost.at - killed_at >= LEASE * 0.8  # not before the lease ran out
    for name in longs:
        assert [a for a, _ in ledger.starts(name)] == [1, 2], ledger.entries()
    assert check_reruns(cluster, run_id, ledger) == {"first": 0, "last": 0,
                                                     **{name: 1 for name in longs}}
    ledger.check_dag({"first": [], **{name: ["first"] for name in longs}, "last": longs})
    assert all(j["worker"] == "survivor" for j in status["jobs"] if j["job_id"] != "first")
    print(f"\nFIGURE sigkill: lost {lost.at - killed_at:.2f} s after the kill, re-dispatched "
          f"{max(e.at for e in moved) - killed_at:.2f} s after it (lease {LEASE} s)")


def test_a_stopped_worker_s_late_results_are_refused_after_its_jobs_moved(cluster, tmp_path):
    ledger, late = cluster.ledger, cluster.new_ledger("late")
    release, finish = tmp_path / "release", tmp_path / "finish"
    wait = "while [ ! -e {} ]; do sleep 0.05; done"
    # x: attempt 1 fails (exit 3) once released, while its worker is stopped: a late result.
    # y: attempt 1 runs on until the master has it killed. Attempts 2 wait for `finish`.
    x = ledger.command(f'if [ "$TITAN_ATTEMPT" = 1 ]; then {wait.format(release)}; '
                       f'echo "late $TITAN_JOB_ID $TITAN_ATTEMPT" >> {late.path}; exit 3; '
                       f'else {wait.format(finish)}; fi')
    y = ledger.command(f'if [ "$TITAN_ATTEMPT" = 1 ]; then sleep 600; '
                       f'else {wait.format(finish)}; fi')
    pipeline = write_pipeline(tmp_path / "p.yaml", "worker-stop", [
        {"id": "x", "command": x, "retries": 2}, {"id": "y", "command": y, "retries": 2},
        {"id": "z", "command": ledger.command(), "depends_on": ["x", "y"]}])
    sleeper = cluster.add_worker("sleeper", slots=2, proxied=False)
    run_id = cluster.submit(pipeline)
    cluster.wait_started(run_id, "x")
    cluster.wait_started(run_id, "y")
    cluster.add_worker("spare", slots=2, proxied=False)
    after = cluster.last_seq()

    stopped_at = time.time()
    os.kill(sleeper.pid, signal.SIGSTOP)
    lost = cluster.next_event(worker_event("sleeper", "lost"), after, timeout=LEASE + 5)
    moved = [cluster.next_event(job_event(JobState.RUNNING, 2, (job_id,)), after, timeout=10)
             for job_id in "xy"]
    moved_at = time.time()
    release.touch()  # x's first attempt ends while its worker cannot report it
    wait_for_file_text(late.path, "late x 1", "x's first attempt to end")
    os.kill(sleeper.pid, signal.SIGCONT)
    continued_at = time.time()

    back = cluster.next_event(worker_event("sleeper", "connected"), lost.seq, timeout=10)
    y_first = tree(dict(ledger.starts("y"))[1])  # bash and its sleep, if still there
    assert not wait_gone(y_first, 10), "the master did not have y's first attempt killed"
    for job_id in "xy":  # in its registration, or reported after it (y once killed)
        cluster.wait_refused(run_id, job_id, "sleeper")
    for job_id in "xy":  # the late reports changed nothing: attempt 2 runs on, on spare
        info = cluster.client.job(f"{run_id}/{job_id}").job
        assert (info.state, info.attempt, info.worker) == (JobState.RUNNING, 2, "spare")

    finish.touch()
    status = cluster.wait_run(run_id, timeout=30)
    assert check_reruns(cluster, run_id, ledger) == {"x": 1, "y": 1, "z": 0}
    x_final = next(j for j in status["jobs"] if j["job_id"] == "x")
    assert (x_final["attempt"], x_final["exit_code"], x_final["worker"]) == (2, 0, "spare")
    assert not recorded_late(cluster, after, moved)
    print(f"\nFIGURE sigstop: lost {lost.at - stopped_at:.2f} s after SIGSTOP, both jobs "
          f"re-dispatched within {moved_at - stopped_at:.2f} s; back {back.at - continued_at:.2f}"
          " s after SIGCONT; late results refused")

