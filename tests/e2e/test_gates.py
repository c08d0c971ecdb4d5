"""Layer 4: human approval gates and services through the SDKs and ``titanctl``, against one
``titanctl up`` cluster that has a cluster key (so a job holds its own JOB token, as in
production, and the test process is a client with the key).

A ``TitanJob`` with ``hitl_message`` waits at ``hitl-gate-<id>``; ``get_job_status`` speaks
Titan's words for the gate and its child; the COMPAT client approves, rejects, and decides
through Titan's store key; a job's write to that key is refused, saying why; the native SDK
lists and decides gates; ``titanctl gates`` / ``approve`` / ``reject`` run as real processes on
the ``ml_approval`` example. Every wait follows the master's event stream (never a sleep).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.local_cluster import LocalCluster, point_environment_at
from support.processes import titanctl
from titan_actors.client import MasterClient
from titan_actors.keys import load_keyring
from titan_actors.scheduler.model import JobKind, JobState, RunState
from titan_sdk import Job, NotFound, Pipeline, RequestRefused, Titan, TitanClient, TitanJob

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
GATE_KEY = "titan:hitl:status:"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("gates")
    key = root / "cluster.key"
    made = titanctl("key", "generate", str(key))
    assert made.returncode == 0, made.stderr
    made = LocalCluster(root / "cluster", env={"TITAN_KEY_FILE": str(key)})
    made.key = key
    try:
        made.up(workers=1, slots=4)
        # the helper's own client has no key; this one is a client with the cluster key
        made._client = MasterClient(made.state["master"]["host"], made.port,
                                    keys=load_keyring(key), timeout=10, identity="test")
        yield made
    finally:
        made.down_and_check()


@pytest.fixture
def sdk(cluster, monkeypatch):
    """The SDK's environment points at the cluster with the key file, as in a user's shell."""
    point_environment_at(cluster, monkeypatch)
    monkeypatch.setenv("TITAN_KEY_FILE", str(cluster.key))
    with TitanClient() as client:
        yield client


def _wait_state(cluster: LocalCluster, ref: str, state: JobState) -> None:
    cluster.wait_for(lambda: cluster.client.job(ref).job.state is state, timeout=30,
                     what=f"{ref} to be {state}")


def _gated(sdk: TitanClient, name: str) -> str:
    """Submit ``<name>-work`` (with a gate after it) and ``<name>-next``; return the gate id."""
    reply = sdk.submit_dag(name, [
        TitanJob(f"{name}-work", script_content="print('work done')",
                 hitl_message=f"{name}: go on?", max_wait_seconds=600),
        TitanJob(f"{name}-next", script_content="print('next ran')", parents=[f"{name}-work"])])
    assert reply == "DAG_ACCEPTED", reply
    return f"hitl-gate-{name}-work"


def test_a_titan_job_waits_at_its_gate_until_approved(sdk, cluster):
    gate = _gated(sdk, "ok")
    _wait_state(cluster, gate, JobState.WAITING)
    assert (sdk.get_job_status(gate), sdk.get_job_status(f"DAG-{gate}")) == ("RUNNING",
                                                                               "RUNNING")
    assert sdk.get_job_status("ok-work") == "COMPLETED"
    assert sdk.get_job_status("ok-next") == "PENDING"
    info = cluster.client.job(gate).job
    assert (info.kind, info.message, info.parents) == (JobKind.GATE, "ok: go on?", ("ok-work",))
    assert info.deadline - info.created_at == pytest.approx(600, abs=30)
    assert cluster.client.job("ok-next").job.parents == (gate,)

    said = sdk.approve_gate(gate, comment="numbers look right")
    assert said == f"gate {info.run_id}/{gate} approved"
    cluster.client.follow_run(info.run_id, 30)
    assert (sdk.get_job_status(gate), sdk.get_job_status("ok-next")) == ("COMPLETED",
                                                                           "COMPLETED")
    assert "next ran" in sdk.fetch_logs("ok-next")
    decided = cluster.client.job(gate).job
    assert (decided.state, decided.decided_by, decided.comment) == (
        JobState.APPROVED, "titan-sdk (client)", "numbers look right")
    again = sdk.reject_gate(gate)
    assert again.startswith("ERROR: ") and "decided already" in again, again


def test_a_rejected_gate_skips_what_waits_for_it(sdk, cluster):
    gate = _gated(sdk, "no")
    _wait_state(cluster, gate, JobState.WAITING)
    assert sdk.reject_gate(f"DAG-{gate}", "not today").endswith(f"/{gate} rejected")
    run_id = cluster.client.job(gate).job.run_id
    assert cluster.client.follow_run(run_id, 30).state is RunState.FAILED
    assert (sdk.get_job_status(gate), sdk.get_job_status("no-next")) == ("DEAD", "DEAD")
    assert cluster.client.job("no-next").job.state is JobState.SKIPPED
    assert sdk.approve_gate("no-such-gate") == "ERROR: gate no-such-gate not found"
    not_a_gate = sdk.approve_gate("no-work")
    assert not_a_gate.startswith("ERROR: ") and "not a gate" in not_a_gate, not_a_gate


def test_the_store_key_decides_for_a_client_but_not_for_a_job(sdk, cluster):
    gate = _gated(sdk, "key")
    _wait_state(cluster, gate, JobState.WAITING)
    sneaky = ("from titan_sdk import TitanClient\n"
              f"print(TitanClient().store_put({GATE_KEY + gate!r}, 'APPROVED'))\n")
    assert sdk.submit_job(TitanJob("key-sneaky", script_content=sneaky)) == "DAG_ACCEPTED"
    cluster.client.follow_run(cluster.client.job("key-sneaky").job.run_id, 30)
    refused = sdk.fetch_logs("key-sneaky").strip()
    assert refused.startswith("ERROR: ") and "a job may not decide gates" in refused, refused
    assert sdk.get_job_status(gate) == "RUNNING"  # still waiting: the job's write changed nothing

    assert sdk.store_put(GATE_KEY + gate, "APPROVED") == "OK"  # a person's credentials
    run_id = cluster.client.job(gate).job.run_id
    assert cluster.client.follow_run(run_id, 30).state is RunState.COMPLETED
    assert cluster.client.job(gate).job.decided_by == "titan-sdk (client)"
    assert sdk.store_get(GATE_KEY + gate) == "APPROVED"


def test_the_native_sdk_lists_and_decides_gates(sdk, cluster):
    with Titan() as titan:
        run = titan.submit(Pipeline("native-gate", [
            Job("ng-work", command=["true"]),
            Job("ng-ask", kind="gate", message="Ship it?", parents=["ng-work"]),
            Job("ng-ship", command=["echo", "shipped"], parents=["ng-ask"])]))
        _wait_state(cluster, f"{run.run_id}/ng-ask", JobState.WAITING)
        waiting = [g for g in titan.gates() if g.run_id == run.run_id]
        assert [(g.job_id, g.message, g.state) for g in waiting] == [
            ("ng-ask", "Ship it?", JobState.WAITING)]
        with pytest.raises(NotFound):
            titan.approve("ng-nothing")
        with pytest.raises(RequestRefused, match="not a gate"):
            titan.reject(f"{run.run_id}/ng-work")
        assert titan.approve(f"{run.run_id}/ng-ask", "go") == \
            f"gate {run.run_id}/ng-ask approved"
        result = run.wait(timeout=30)
        assert result.ok and result.states["ng-ship"] is JobState.COMPLETED
        assert not [g for g in titan.gates() if g.run_id == run.run_id]
        decided = [g for g in titan.gates(all=True) if g.run_id == run.run_id]
        assert [(g.state, g.comment) for g in decided] == [(JobState.APPROVED, "go")]
        with pytest.raises(NotFound):
            titan.stop_service("ng-none")
        with pytest.raises(RequestRefused, match="not a service"):
            titan.stop_service(f"{run.run_id}/ng-work")
    assert sdk.stop_service("no-such-service") == "ERROR: service no-such-service not found"


def test_titanctl_gates_approve_and_reject_on_the_ml_example(cluster):
    run_id = cluster.submit(PIPELINES / "ml_approval" / "pipeline.yaml")
    gate = f"{run_id}/hitl-gate-evaluate"
    _wait_state(cluster, gate, JobState.WAITING)
    table = cluster.ctl("gates")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:5] == ["RUN", "GATE", "STATE", "AGE", "DEADLINE"]
    row = next(r for r in rows if r.startswith(run_id))
    assert "hitl-gate-evaluate" in row and "waiting" in row and "in 23h59m" in row
    assert row.endswith("Baseline evaluated (titanctl logs evaluate). Train the full model?")
    listed = [g for g in cluster.json("gates") if g["run_id"] == run_id]
    assert [(g["job_id"], g["state"], g["kind"]) for g in listed] == [
        ("hitl-gate-evaluate", "waiting", "gate")]
    assert b"evaluate: baseline y = 3.050x -1.845" in cluster.client.logs("evaluate").data

    approved = cluster.ctl("approve", gate, "--comment", "baseline looks sane")
    assert (approved.returncode, approved.stdout.strip()) == (0, f"gate {gate} approved")
    assert cluster.client.follow_run(run_id, 60).state is RunState.COMPLETED
    report = cluster.client.logs(f"{run_id}/report").data.decode()
    assert "report: trained y = 3.01x -2.03 (the truth: y = 3.00x -2.00)" in report
    twice = cluster.ctl("reject", gate)
    assert twice.returncode == 2 and "decided already" in twice.stderr, twice.stderr
    unknown = cluster.ctl("approve", "no-such-gate")
    assert unknown.returncode == 2 and "no-such-gate" in unknown.stderr
    every = cluster.ctl("gates", "--all")
    row = next(r for r in every.stdout.splitlines() if r.startswith(run_id))
    assert "approved" in row and "titanctl (client)" in row
    assert row.endswith("baseline looks sane")

    second = cluster.submit(PIPELINES / "ml_approval" / "pipeline.yaml")
    _wait_state(cluster, f"{second}/hitl-gate-evaluate", JobState.WAITING)
    rejected = cluster.ctl("reject", "hitl-gate-evaluate", "--comment", "data looks off")
    assert (rejected.returncode, rejected.stdout.strip()) == (
        0, f"gate {second}/hitl-gate-evaluate rejected")  # a bare id: the latest run's gate
    assert cluster.client.follow_run(second, 30).state is RunState.FAILED
    states = {j.job_id: j.state for j in cluster.client.run(second).jobs}
    assert (states["train"], states["report"]) == (JobState.SKIPPED, JobState.SKIPPED)
    assert not [g for g in cluster.json("gates") if g["run_id"] in (run_id, second)]


def test_the_service_example_runs_and_its_reader_stops_the_service(cluster):
    done = cluster.ctl("submit", str(PIPELINES / "service_client" / "pipeline.yaml"), "--wait",
                       "--json", timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    detail = json.loads(done.stdout)
    states = {j["job_id"]: j["state"] for j in detail["jobs"]}
    assert states == {"kv-api": "stopped", "writer": "completed", "reader": "completed"}
    run_id = detail["run"]["run_id"]
    reader = cluster.ctl("logs", f"{run_id}/reader").stdout
    assert "reader: 9 words, 11 in all; most frequent: 'the' (3)" in reader
    assert "reader: STOPPED: DAG-kv-api" in reader
    services = [s for s in cluster.json("services", "--all") if s["run_id"] == run_id]
    assert [(s["job_id"], s["state"]) for s in services] == [("kv-api", "stopped")]


SERVER = ("import os, socket\n"
          "server = socket.create_server(('127.0.0.1', int(os.environ['PORT'])))\n"
          "print('serving on', os.environ['PORT'], flush=True)\n"
          "while True:\n"
          "    client, _ = server.accept()\n"
          "    client.sendall(b'hi\\n')\n"
          "    client.close()\n")


def test_a_ready_service_ends_the_waits_and_serves_until_stopped(sdk, cluster, tmp_path):
    (tmp_path / "server.py").write_text(SERVER)
    path = tmp_path / "served.yaml"
    path.write_text("name: served\njobs:\n  - {id: sv-yaml, type: service, file: server.py}\n")
    assert sdk.submit_yaml(str(path), wait=True, timeout=30) == "DAG_ACCEPTED"  # once ready
    run_id = cluster.client.job("sv-yaml").job.run_id
    assert cluster.client.run(run_id).run.state is RunState.SERVING
    assert sdk.get_job_status("sv-yaml") == "COMPLETED"  # ready: Titan's word for it
    with Titan() as titan:
        run = titan.submit(Pipeline("served-native", [Job("sv-native", kind="service",
                                                          script=SERVER, max_restarts=0)]))
        result = run.wait(timeout=30)
        assert result.ok and result.state is RunState.SERVING
        assert result.states == {"sv-native": JobState.READY}
        mine = {s.job_id: s for s in titan.services() if s.run_id in (run_id, run.run_id)}
        assert set(mine) == {"sv-yaml", "sv-native"} and all(s.port for s in mine.values())
        assert titan.stop_service("sv-native") == "STOPPED: DAG-sv-native"
        assert run.wait(timeout=30).state is RunState.COMPLETED

    table = cluster.ctl("services")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["RUN", "SERVICE", "STATE", "WORKER", "HOST", "PORT", "RESTARTS",
                              "REASON"]
    row = next(r.split() for r in rows if r.startswith(run_id))
    port = cluster.client.job("sv-yaml").job.port
    host = next(w.host for w in cluster.client.workers() if w.name == "worker-1")
    assert row[1:7] == ["sv-yaml", "ready", "worker-1", host, str(port), "0"]
    stopped = cluster.ctl("services", "stop", "sv-yaml")
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "STOPPED: DAG-sv-yaml")
    assert cluster.client.follow_run(run_id, 30).state is RunState.COMPLETED
    assert sdk.get_job_status("sv-yaml") == "CANCELLED"  # stopped on request
    again = cluster.ctl("services", "stop", "sv-yaml")
    assert again.returncode == 2 and "stopped already" in again.stderr, again.stderr
    assert sdk.stop_service("sv-yaml").startswith("ERROR: ")
    listed = {s["job_id"]: s["state"] for s in cluster.json("services", "--all")
              if s["run_id"] == run_id}
    assert listed == {"sv-yaml": "stopped"}
