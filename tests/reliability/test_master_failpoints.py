"""Layer 4: the master SIGKILLed at each persistence and dispatch boundary (failpoints) and at
random points during a DAG; restarted on the same data directory, it loses nothing and re-runs
nothing that completed.

Real processes: ``titanctl up`` (master with its embedded store, two workers), the master armed
with ``TITAN_FAILPOINTS=<point>=kill@N``; once it died, ``titanctl master`` again on the same
port and directory (unarmed). Jobs append ``before``/``after`` lines to a ledger
(``support/ledger.py``), the test appends what it did (``crash``, ``submitted``), and the
checker compares the ledger, those notes and the master's final state. The time from the restart
to the first job the new master dispatched is printed (RELIABILITY.md collects the figures).
"""

from __future__ import annotations

import json
import os
import random
import time

import psutil
import pytest

from support.ledger import RunLedger, check
from support.local_cluster import LocalCluster, cluster_factory, dag_jobs, wait_gone, write_pipeline
from support.processes import wait_for_file
from titan_actors.actors.worker_reports import ReportBook
from titan_actors.scheduler.model import JobState
from titan_actors.wire.messages.master import EventKind

KILL_POINTS = {  # failpoint -> the hit that kills (mid-run for a DAG of 200 quick jobs)
    "aof.before_fsync": 45,
    "master.dispatch.before_send": 70,
    "master.finish.before_record": 70,
    "master.finish.before_ack": 70,
    "master.submit.before_ack": 2,   # the second submission: durable, never acknowledged
}
SEED = int(os.environ.get("TITAN_RELIABILITY_SEED", "1"))


@pytest.fixture
def clusters(tmp_path):
    """``clusters(env)``: a local cluster with those settings, down and checked at the end."""
    factory = cluster_factory(tmp_path)
    make = next(factory)
    yield lambda env: make("cluster", env)
    next(factory, None)


class Scenario:
    """One cluster, its ledger, the runs it acknowledged, and the kills it survived."""

    def __init__(self, cluster: LocalCluster, tmp_path) -> None:
        self.cluster = cluster
        self.ledger = RunLedger(cluster.root / "run-ledger")
        self.tmp_path = tmp_path
        self.parents: dict[tuple[str, str], list[str]] = {}
        self.restart_to_dispatch: list[float] = []

    def submit(self, name: str, width: int, depth: int, retries: int = 0) -> str | None:
        """Submit a DAG; note it when acknowledged, return its run id (None: refused)."""
        # no retries by default: a master crash must cost none
        jobs, parents = dag_jobs(self.ledger, width, depth, retries=retries)
        pipeline = write_pipeline(self.tmp_path / f"{name}.yaml", name, jobs)
        result = self.cluster.ctl("submit", str(pipeline), "--json")
        if result.returncode != 0:
            return None
        run_id = json.loads(result.stdout)["run_id"]
        self.ledger.note("submitted", run_id)
        self.parents.update({(run_id, job): ups for job, ups in parents.items()})
        return run_id

    def wait_master_dead(self, timeout: float = 60) -> None:
        try:
            master = psutil.Process(self.cluster.state["master"]["pid"])
        except psutil.NoSuchProcess:
            pass  # already gone (and reaped)
        else:
            assert not wait_gone([master], timeout), "the failpoint never killed the master"
        self.ledger.note("crash", "master")
        self.cluster.reconnect()

    def kill_master(self) -> None:
        self.cluster.kill(self.master_pid)
        self.ledger.note("crash", "master")
        self.cluster.reconnect()

    @property
    def master_pid(self) -> int:
        return self.cluster.state["master"]["pid"]

    def restart(self, *, measure: bool = True) -> None:
        """Start the master again, unarmed; time it to the first job it dispatches (the first
        ``running`` event of its new life: its event stream starts empty at each start)."""
        self.cluster.env.pop("TITAN_FAILPOINTS", None)
        started = time.time()
        process = self.cluster.restart_master()
        self.cluster.state["master"]["pid"] = process.pid

        def first_dispatch() -> float | None:
            after = 0
            while True:
                batch = self.cluster.client.wait_events(after, 0.0)
                for event in batch.events:
                    if event.kind is EventKind.JOB and event.job_state is JobState.RUNNING:
                        return event.at
                if not batch.events:
                    return None
                after = batch.events[-1].seq
        if not measure:
            return
        self.cluster.wait_for(
            lambda: first_dispatch() or "active" not in self.run_states().values(),
            timeout=30, what="a dispatch after the restart")
        at = first_dispatch()  # again: the run may have ended while its state was asked
        if at is not None:
            self.restart_to_dispatch.append(at - started)

    def run_states(self) -> dict[str, str]:
        return {run["run_id"]: run["state"] for run in self.cluster.json("runs")}

    def adopt_unacknowledged(self) -> None:
        """A submission killed before its answer may still be on disk (it was durable): then it
        runs, and counts as in doubt, not lost. Note it as what it is."""
        for run_id in self.run_states():
            if run_id not in {run for run, _ in self.parents}:
                status = self.cluster.json("status", run_id)
                self.ledger.note("submitted", run_id)
                names = {j["job_id"]: list(j["parents"]) for j in status["jobs"]}
                self.parents.update({(run_id, job): ups for job, ups in names.items()})

    def finish_and_check(self, *, reruns_allowed: bool = False) -> None:
        """Wait for every run, check the ledger; a master crash must re-run nothing (a
        worker's may re-run what it was running: ``reruns_allowed``, each one in doubt)."""
        final = {}
        for run_id in {run for run, _ in self.parents}:
            status = self.cluster.wait_run(run_id, timeout=120)
            final.update({(run_id, j["job_id"]): (j["state"], j["attempt"])
                          for j in status["jobs"]})
        verdict = check(self.ledger, self.parents, final)
        print(f"jobs {verdict.jobs}, process starts {verdict.runs}, duplicates "
              f"{verdict.duplicates}, crashes {verdict.crashes}, restart -> first dispatch "
              f"{[round(s, 3) for s in self.restart_to_dispatch]} s")
        verdict.assert_ok()
        assert reruns_allowed or verdict.duplicates == 0, "a master crash made a job run twice"


def _failpoint_kill(clusters, tmp_path, point: str, width: int, depth: int) -> None:
    scale = 1 if point == "master.submit.before_ack" else width * depth // 200
    cluster = clusters({"TITAN_FAILPOINTS": f"{point}=kill@{KILL_POINTS[point] * scale}"})
    cluster.up(workers=2, slots=4)
    scenario = Scenario(cluster, tmp_path)
    assert scenario.submit("first", width=width, depth=depth) is not None
    if point == "master.submit.before_ack":
        assert scenario.submit("second", width=3, depth=3) is None, "killed before the answer"
    scenario.wait_master_dead()
    scenario.restart()
    if point == "master.submit.before_ack":
        scenario.adopt_unacknowledged()
    scenario.finish_and_check()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_master_killed_at_a_failpoint_loses_nothing(clusters, tmp_path, point):
    _failpoint_kill(clusters, tmp_path, point, width=10, depth=20)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_master_killed_at_a_failpoint_of_a_1000_job_dag_loses_nothing(clusters, tmp_path, point):
    _failpoint_kill(clusters, tmp_path, point, width=50, depth=20)


def _random_kills(clusters, tmp_path, width: int, depth: int, kills: int) -> None:
    """Kill the master ``kills`` times during one DAG, each time at a failpoint and hit drawn
    from the seeded generator, or (one draw in three) by a plain SIGKILL from the test."""
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    points = sorted(p for p in KILL_POINTS if p != "master.submit.before_ack")
    cluster = clusters({})
    cluster.up(workers=2, slots=4)
    scenario = Scenario(cluster, tmp_path)
    run_id = scenario.submit("random", width, depth)
    assert run_id is not None
    total = width * depth
    for _ in range(kills):
        done = scenario.ledger.count("after")
        remaining = total - done
        if remaining < 10:
            break  # too close to the end for the kill to fall inside the run
        if rng.random() < 1 / 3:
            target = done + rng.randrange(1, remaining // 2)
            cluster.wait_for(lambda t=target: scenario.ledger.count("after") >= t, timeout=60,
                             what=f"{target} jobs to end")
            print(f"kill: SIGKILL after {scenario.ledger.count('after')} jobs ended")
            scenario.kill_master()
        else:
            point, hit = rng.choice(points), rng.randrange(1, remaining // 2)
            print(f"kill: {point} at hit {hit}")
            # the master restarts armed: the failpoint counts from its new life
            scenario.cluster.env["TITAN_FAILPOINTS"] = f"{point}=kill@{hit}"
            scenario.kill_master()
            process = scenario.cluster.restart_master()
            scenario.cluster.state["master"]["pid"] = process.pid
            # a hit that never comes (the failpoint counts AOF batches, not jobs, say): once the
            # run ended, the test kills the master itself
            master = psutil.Process(process.pid)
            deadline = time.monotonic() + 90
            while wait_gone([master], 1.0) and time.monotonic() < deadline:
                if "active" not in scenario.run_states().values():
                    print(f"kill: {point} never reached hit {hit}; SIGKILL instead")
                    cluster.kill(master.pid)
                    break
            scenario.wait_master_dead(timeout=10)
        scenario.restart()
    scenario.finish_and_check()


@pytest.mark.timeout(180)
def test_master_killed_at_random_points_of_a_dag_loses_nothing(clusters, tmp_path):
    _random_kills(clusters, tmp_path, width=10, depth=10, kills=2)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_master_killed_at_random_points_of_a_1000_job_dag_loses_nothing(clusters, tmp_path):
    _random_kills(clusters, tmp_path, width=50, depth=20, kills=6)


@pytest.mark.timeout(120)
def test_no_job_runs_after_its_cancel_or_before_its_approval_across_a_crash(clusters, tmp_path):
    """A cancel acknowledged and a gate still waiting when the master is SIGKILLed: after the
    restart the cancelled job stays cancelled (no process of it starts again) and the jobs behind
    the gate start only after it is approved."""
    cluster = clusters({"TITAN_FAILPOINTS": "master.finish.before_ack=sleep:0.05"})
    cluster.up(workers=2, slots=2)
    scenario = Scenario(cluster, tmp_path)
    ledger = scenario.ledger
    jobs = [{"id": "a", "command": ledger.command(), "hitl_message": "go on?"},
            {"id": "b", "command": ledger.command(), "depends_on": ["a"]},
            {"id": "c", "command": ledger.command(), "depends_on": ["b"]},
            {"id": "long", "command": ledger.command("sleep 60")}]
    pipeline = write_pipeline(tmp_path / "gated.yaml", "gated", jobs)
    run_id = json.loads(cluster.ctl("submit", str(pipeline), "--json").stdout)["run_id"]
    ledger.note("submitted", run_id)
    scenario.parents.update({(run_id, j["id"]): j.get("depends_on", []) for j in jobs})
    cluster.wait_started(run_id, "long")
    cluster.wait_for(lambda: ledger.count("after") >= 1, what="a to end")
    assert cluster.ctl("cancel", f"{run_id}/long").returncode == 0
    ledger.note("cancel-acked", run_id, "long")
    scenario.kill_master()
    scenario.restart(measure=False)  # nothing to dispatch: the gate waits
    states = {j["job_id"]: j["state"] for j in cluster.json("status", run_id)["jobs"]}
    assert (states["hitl-gate-a"], states["long"], states["b"]) == ("waiting", "cancelled",
                                                                    "pending"), states
    ledger.note("approve-asked", run_id, "hitl-gate-a")
    assert cluster.ctl("approve", f"{run_id}/hitl-gate-a").returncode == 0
    status = cluster.wait_run(run_id, timeout=60)
    final = {(run_id, j["job_id"]): (j["state"], j["attempt"]) for j in status["jobs"]}
    verdict = check(ledger, scenario.parents, final, cancelled=[(run_id, "long")],
                    gated={(run_id, "b"): "hitl-gate-a", (run_id, "c"): "hitl-gate-a"})
    verdict.assert_ok()
    assert verdict.duplicates == 0 and verdict.runs == 4


@pytest.mark.timeout(120)
def test_workers_killed_between_a_job_exit_and_its_report_lose_nothing(clusters, tmp_path):
    """Both workers die at their 20th job exit, after the result is in their report book and
    before it is sent; their next lives report those results (no re-run) and re-run only what
    was still running when they died."""
    # a lease long enough for both next lives to register before their attempts count as lost
    cluster = clusters({"TITAN_FAILPOINTS": "worker.finish.before_report=kill@20",
                        "TITAN_LEASE": "20"})
    cluster.up(workers=2, slots=4)
    scenario = Scenario(cluster, tmp_path)
    # a job running when its worker died did run: that attempt counts, so it needs a retry
    assert scenario.submit("first", width=8, depth=10, retries=2) is not None
    workers = [psutil.Process(w["pid"]) for w in cluster.state["workers"]]
    assert not wait_gone(workers, 60), "the failpoint never killed the workers"
    scenario.ledger.note("crash", "workers")
    cluster.env.pop("TITAN_FAILPOINTS")
    booked = {(ref.job_id, ref.attempt) for name in ("worker-1", "worker-2")
              for ref in ReportBook(cluster.root / f"worker-{name}").load()}
    for name in ("worker-1", "worker-2"):
        ready = tmp_path / f"{name}.again.ready"
        again = cluster.spawn(["worker", "--name", name, "--data-dir", str(cluster.root),
                               "--master", cluster.address, "--slots", "4",
                               "--ready-file", str(ready)], f"{name}.again.log")
        wait_for_file(ready, again)
    scenario.finish_and_check(reruns_allowed=True)
    # a result in the dead worker's report book is reported by its next life, never run again
    reruns = {(e.fields[1], e.fields[2]) for e in scenario.ledger.entries()
              if e.what == "before" and e.fields[2] != "1"}
    assert booked and not {(job, str(attempt + 1)) for job, attempt in booked} & reruns, \
        (booked, reruns)
