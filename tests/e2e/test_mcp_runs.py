"""Layer 4: the MCP server's run tools (``titan_sdk.mcp_runs``) against one ``titanctl up``
cluster, through the mcp package's in-memory client: ``run_dag_and_wait`` (completed, failed,
timeout), ``get_run_status``, ``cancel_run``, ``list_runs``, ``list_agent_runs``,
``list_workers`` and ``list_services``, their JSON shapes and their error results. A job that
must outlast a wait blocks on a FIFO (never a sleep).
"""

from __future__ import annotations

import json
import os

import anyio
import pytest
from mcp import Client

from support import closed_port
from support.local_cluster import module_cluster, point_environment_at
from support.mcp_calls import call, one
from titan_actors.scheduler.model import JobKind, JobSpec, JobState, RunSpec
from titan_sdk import TitanClient
from titan_sdk.mcp_server import build_server

RUN_TOOLS = {"list_runs", "list_agent_runs", "list_workers", "list_gates", "list_services",
             "get_run_status", "cancel_run", "run_dag_and_wait"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("mcp-runs") / "cluster", 1, 4)


@pytest.fixture
def env(cluster, monkeypatch):
    point_environment_at(cluster, monkeypatch)
    return monkeypatch




def test_the_run_tools_are_listed(env):
    async def names() -> set[str]:
        async with Client(build_server()) as client:
            return {tool.name for tool in (await client.list_tools()).tools}
    assert anyio.run(names) >= RUN_TOOLS


def test_run_dag_and_wait_answers_with_states_and_final_outputs(env):
    jobs = [{"job_id": "rw-plan", "script_content": "print('plan')"},
            {"job_id": "rw-left", "script_content": "print('left')", "parents": ["rw-plan"]},
            {"job_id": "rw-answer", "script_content": "print('answer:', 6 * 7)",
             "parents": ["rw-plan"]}]
    reply = one("run_dag_and_wait", dag_name="rw-dag", jobs_json=json.dumps(jobs),
                timeout_seconds=60)
    assert reply["status"] == "completed", reply
    assert reply["agent_run_id"].startswith("mcp-") and reply["run_id"].startswith("r")
    assert reply["states"] == {"rw-plan": "completed", "rw-left": "completed",
                               "rw-answer": "completed"}
    assert reply["outputs"] == {"rw-left": "left\n", "rw-answer": "answer: 42\n"}

    failing = [{"job_id": "rw-boom", "script_content": "raise SystemExit('no luck')",
                "retries": 0},
               {"job_id": "rw-never", "script_content": "print('x')", "parents": ["rw-boom"]}]
    failed = one("run_dag_and_wait", dag_name="rw-fail", jobs_json=json.dumps(failing),
                 agent_run_id="rw-agent")
    assert (failed["status"], failed["agent_run_id"]) == ("failed", "rw-agent")
    assert failed["failed_job_ids"] == ["rw-boom", "rw-never"]
    assert failed["states"] == {"rw-boom": "dead", "rw-never": "skipped"}
    assert failed["outputs"] == {"rw-never": ""}


def test_a_timeout_leaves_the_run_going_until_it_is_cancelled(env, tmp_path):
    fifo = tmp_path / "never"
    os.mkfifo(fifo)  # nobody writes: the job blocks until it is cancelled
    jobs = [{"job_id": "rw-blocked", "script_content": f"open({str(fifo)!r}).readline()"}]
    reply = one("run_dag_and_wait", dag_name="rw-slow", jobs_json=json.dumps(jobs),
                timeout_seconds=1, agent_run_id="rw-slow-agent")
    run_id = reply["run_id"]
    assert reply["status"] == "timeout" and run_id in reply["message"]
    assert reply["states"]["rw-blocked"] in ("queued", "running")
    before, cancelled, after, unknown, not_cancelled = call(
        ("get_run_status", {"run_id": run_id}), ("cancel_run", {"run_id": run_id}),
        ("get_run_status", {"run_id": run_id}), ("get_run_status", {"run_id": "rnope"}),
        ("cancel_run", {"run_id": "rnope"}))
    assert before["state"] == "active" and before["agent_run_id"] == "rw-slow-agent"
    assert (cancelled["status"], cancelled["run_id"]) == ("cancelled", run_id)
    assert "cancelled" in cancelled["message"]
    assert after == {"status": "ok", "run_id": run_id, "name": "rw-slow", "state": "cancelled",
                     "agent_run_id": "rw-slow-agent", "states": {"rw-blocked": "cancelled"}}
    for error in (unknown, not_cancelled):
        assert error["status"] == "error" and error["message"].startswith("NotFound: ")
        assert "rnope" in error["message"]


def test_listing_runs_agent_runs_and_workers(env, cluster):
    jobs = [{"job_id": "rw-list", "script_content": "print('listed')"}]
    first, second = call(
        ("run_dag_and_wait", {"dag_name": "rw-one", "jobs_json": json.dumps(jobs),
                              "agent_run_id": "rw-lister"}),
        ("run_dag_and_wait", {"dag_name": "rw-two", "jobs_json": json.dumps(jobs),
                              "agent_run_id": "rw-lister"}))
    assert first["status"] == second["status"] == "completed"
    runs, latest, agents, workers = call(
        ("list_runs", {"agent_run_id": "rw-lister"}), ("list_runs", {"limit": 1}),
        ("list_agent_runs", {}), ("list_workers", {}))
    assert [r["run_id"] for r in runs["runs"]] == [second["run_id"], first["run_id"]]
    newest = runs["runs"][0]
    assert (newest["name"], newest["state"], newest["counts"]) == ("rw-two", "completed",
                                                                   {"completed": 1})
    assert newest["finished_at"] and newest["from_job"] == ""
    assert [r["run_id"] for r in latest["runs"]] == [second["run_id"]]
    lister = next(a for a in agents["agent_runs"] if a["agent_run_id"] == "rw-lister")
    assert (lister["runs"], lister["names"], lister["state"]) == \
        ([first["run_id"], second["run_id"]], ["rw-one", "rw-two"], "completed")
    assert [w["name"] for w in workers["workers"]] == [w["name"] for w in
                                                       cluster.state["workers"]]
    assert workers["workers"][0]["connected"] is True and workers["workers"][0]["slots"] == 4


SERVER = ("import os, socket\n"
          "server = socket.create_server(('127.0.0.1', int(os.environ['PORT'])))\n"
          "while True:\n"
          "    server.accept()[0].close()\n")


def test_list_services_gives_each_service_its_address(env, cluster):
    accepted = cluster.client.submit(RunSpec("rw-served", (
        JobSpec(id="rw-api", kind=JobKind.SERVICE, script_name="api.py",
                script=SERVER.encode()),)))
    ref = f"{accepted.run_id}/rw-api"
    cluster.wait_for(lambda: cluster.client.job(ref).job.state is JobState.READY,
                     what="rw-api to be ready")
    listed = one("list_services")
    mine = [s for s in listed["services"] if s["run_id"] == accepted.run_id]
    port = cluster.client.job(ref).job.port
    host = cluster.client.workers()[0].host
    assert listed["status"] == "ok" and mine == [{
        "run_id": accepted.run_id, "service_id": "rw-api", "state": "ready",
        "status": "COMPLETED", "worker": "worker-1", "port": port, "restarts": 0,
        "address": f"{host}:{port}", "reason": mine[0]["reason"]}]
    assert cluster.client.stop_service(ref) == "STOPPED: DAG-rw-api"
    assert not [s for s in one("list_services")["services"] if s["run_id"] == accepted.run_id]
    stopped = [s for s in one("list_services", all=True)["services"]
               if s["run_id"] == accepted.run_id]
    assert [s["state"] for s in stopped] == ["stopped"]


def test_refusals_and_an_unreachable_master_are_error_results(env):
    bad_json, cycle, bad_args = call(
        ("run_dag_and_wait", {"dag_name": "x", "jobs_json": "[{"}),
        ("run_dag_and_wait", {"dag_name": "x", "jobs_json": json.dumps([
            {"job_id": "cy-a", "script_content": "", "parents": ["cy-b"]},
            {"job_id": "cy-b", "script_content": "", "parents": ["cy-a"]}])}),
        ("run_dag_and_wait", {"dag_name": "x", "jobs_json": json.dumps([
            {"job_id": "rw-args", "script_content": "", "args": "'open"}])}))
    assert bad_json["status"] == "error" and "JSON" in bad_json["message"]
    assert cycle["status"] == "error" and cycle["message"].startswith("SubmissionRefused: ")
    assert "cycle" in cycle["message"]
    assert bad_args["status"] == "error" and "do not split" in bad_args["message"]
    server = build_server(lambda: TitanClient(port=closed_port(), timeout=5))
    for reply in call(("list_runs", {}), ("list_workers", {}), ("list_agent_runs", {}),
                      ("list_gates", {}), ("list_services", {}), server=server):
        assert reply["status"] == "error", reply
        assert reply["message"].startswith("ConnectionFailed: ")
