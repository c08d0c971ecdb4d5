"""Layer 4: the MCP server (COMPAT.md, "MCP tools") against one ``titanctl up`` cluster.

Every tool through the mcp package's in-memory client, checking the JSON shapes; gate decisions
refused unless ``TITAN_MCP_ALLOW_GATE_DECISIONS=1``, and made for real when it is; and one stdio
round trip with
``python -m titan_sdk.mcp_server`` as a subprocess, whose stdout carries only the protocol.
Waits follow the master's event stream (never a sleep).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from support import closed_port
from support.local_cluster import LocalCluster, module_cluster, point_environment_at, write_pipeline
from support.mcp_calls import call, one
from titan_sdk import TitanClient
from titan_sdk.mcp_server import ALLOW_GATES_ENV, build_server

TOOLS = {"ping_master", "submit_single_job", "submit_dag_pipeline", "submit_yaml_pipeline",
         "get_job_status", "get_job_logs", "approve_hitl_gate", "reject_hitl_gate", "store_get",
         "store_put", "deploy_script"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("mcp") / "cluster", 1, 2)


@pytest.fixture
def env(cluster, monkeypatch):
    """The server's environment points at the cluster; gate decisions not allowed."""
    point_environment_at(cluster, monkeypatch, ALLOW_GATES_ENV)
    return monkeypatch




def _finish(cluster: LocalCluster, job_ref: str) -> str:
    run_id = cluster.client.job(job_ref).job.run_id
    cluster.client.follow_run(run_id, 30)
    return run_id


def test_tools_and_ping(env, cluster):
    async def names() -> set[str]:
        async with Client(build_server()) as client:
            return {tool.name for tool in (await client.list_tools()).tools}
    assert anyio.run(names) >= TOOLS
    assert one("ping_master") == {"status": "ok", "host": cluster.state["master"]["host"],
                                  "port": cluster.port}


def test_unreachable_master_is_an_error_result():
    server = build_server(lambda: TitanClient(port=closed_port(), timeout=5))
    for reply in call(("ping_master", {}), ("get_job_status", {"job_id": "x"}), server=server):
        assert reply["status"] == "error" and reply["message"].startswith("CONNECTION_ERROR: ")


def test_single_job_then_status_and_logs(env, cluster):
    script = "import sys\nprint('hello from mcp', sys.argv[1:])\n"
    assert one("submit_single_job", job_id="mcp-hello", script_content=script,
               args="a 'b c'", priority=3) == \
        {"status": "submitted", "job_id": "mcp-hello", "master_response": "DAG_ACCEPTED"}
    _finish(cluster, "mcp-hello")
    status, logs, unknown, no_logs = call(
        ("get_job_status", {"job_id": "mcp-hello"}), ("get_job_logs", {"job_id": "mcp-hello"}),
        ("get_job_status", {"job_id": "mcp-nothing"}), ("get_job_logs", {"job_id": "mcp-nothing"}))
    assert status == {"job_id": "mcp-hello", "status": "COMPLETED"}
    assert set(logs) == {"job_id", "logs"} and "hello from mcp ['a', 'b c']" in logs["logs"]
    assert unknown == {"job_id": "mcp-nothing", "status": "NULL"}
    assert no_logs == {"job_id": "mcp-nothing", "logs": ""}
    again = one("submit_single_job", job_id="mcp-bad-args", script_content="", args="'open")
    assert again["status"] == "error" and "do not split" in again["message"]


def test_dag_pipeline_with_parents_and_agent_run_ids(env, cluster):
    jobs = [{"job_id": "mcp-up", "script_content": "print('up ran')"},
            {"job_id": "mcp-down", "script_content": "print('down ran')",
             "parents": ["mcp-up"], "requirement": "GENERAL", "priority": 2}]
    reply = one("submit_dag_pipeline", dag_name="mcp-dag", jobs_json=json.dumps(jobs))
    generated = reply.pop("agent_run_id")
    assert generated.startswith("mcp-") and len(generated) > 4
    assert reply == {"status": "submitted", "dag_name": "mcp-dag", "job_count": 2,
                     "master_response": "DAG_ACCEPTED"}
    run_id = _finish(cluster, "mcp-down")
    assert cluster.client.run(run_id).run.agent_run_id == generated
    assert cluster.client.job("mcp-down").job.parents == ("mcp-up",)
    assert "down ran" in one("get_job_logs", job_id="mcp-down")["logs"]

    given = one("submit_dag_pipeline", dag_name="mcp-given", agent_run_id="agent-42",
                jobs_json=json.dumps([{"job_id": "mcp-given", "script_content": "pass"}]))
    assert given["agent_run_id"] == "agent-42" and given["status"] == "submitted"
    assert cluster.client.run(_finish(cluster, "mcp-given")).run.agent_run_id == "agent-42"

    bad_json, empty, cycle, gated = call(
        ("submit_dag_pipeline", {"dag_name": "x", "jobs_json": "[{"}),
        ("submit_dag_pipeline", {"dag_name": "x", "jobs_json": "[]"}),
        ("submit_dag_pipeline", {"dag_name": "x", "jobs_json": json.dumps([
            {"job_id": "cy-a", "script_content": "", "parents": ["cy-b"]},
            {"job_id": "cy-b", "script_content": "", "parents": ["cy-a"]}])}),
        ("submit_dag_pipeline", {"dag_name": "x", "jobs_json": json.dumps([
            {"job_id": "mcp-gated", "script_content": "", "hitl_message": ["ok?"]}])}))
    assert all(r["status"] == "error" for r in (bad_json, empty, cycle, gated))
    assert "JSON" in bad_json["message"] and "cycle" in cycle["message"]
    assert "hitl_message must be a string" in gated["message"]


def test_yaml_pipeline(env, cluster, tmp_path):
    path = write_pipeline(tmp_path / "p.yaml", "mcp-yaml",
                          [{"id": "mcp-yaml-job", "command": ["echo", "from yaml"]}])
    reply = one("submit_yaml_pipeline", yaml_path=str(path))
    assert reply["status"] == "submitted" and reply["master_response"] == "DAG_ACCEPTED"
    assert reply["agent_run_id"].startswith("mcp-")
    run_id = _finish(cluster, "mcp-yaml-job")
    assert cluster.client.run(run_id).run.agent_run_id == reply["agent_run_id"]
    assert one("get_job_status", job_id="mcp-yaml-job")["status"] == "COMPLETED"
    missing = one("submit_yaml_pipeline", yaml_path=str(tmp_path / "none.yaml"))
    assert missing["status"] == "error" and missing["message"].startswith("ERROR: ")


def test_store_round_trip_and_gate_keys(env, cluster):
    put, got, missing = call(("store_put", {"key": "mcp:k", "value": "a|b\n✓"}),
                             ("store_get", {"key": "mcp:k"}), ("store_get", {"key": "mcp:none"}))
    assert put == {"status": "ok", "key": "mcp:k"}
    assert got == {"key": "mcp:k", "value": "a|b\n✓"}
    assert missing == {"key": "mcp:none", "value": "NULL"}
    gate_key = "titan:hitl:status:g1"
    refused, untouched = call(("store_put", {"key": gate_key, "value": "APPROVED"}),
                              ("store_get", {"key": gate_key}))
    assert refused["status"] == "error" and ALLOW_GATES_ENV in refused["message"]
    assert untouched == {"key": gate_key, "value": "NULL"}
    env.setenv(ALLOW_GATES_ENV, "1")
    assert one("store_put", key=gate_key, value="APPROVED") == {"status": "ok", "key": gate_key}
    assert one("store_get", key=gate_key)["value"] == "APPROVED"


def test_gate_decisions_and_deploy_script(env, cluster):
    jobs = [{"job_id": f"mcp-{name}", "script_content": "print('ran')",
             "hitl_message": f"{name}?", "max_wait_seconds": 600} for name in ("yes", "no")]
    jobs += [{"job_id": f"mcp-after-{name}", "script_content": "print('after')",
              "parents": [f"mcp-{name}"]} for name in ("yes", "no")]
    submitted = one("submit_dag_pipeline", dag_name="mcp-gates", jobs_json=json.dumps(jobs))
    assert submitted["status"] == "submitted" and submitted["job_count"] == 4
    run_id = cluster.client.job("mcp-yes").job.run_id
    cluster.wait_for(lambda: len([g for g in cluster.client.gates() if g.run_id == run_id]) == 2,
                     what="both gates to wait")
    approve, reject, deploy = call(("approve_hitl_gate", {"gate_id": "hitl-gate-mcp-yes"}),
                                   ("reject_hitl_gate", {"gate_id": "hitl-gate-mcp-no"}),
                                   ("deploy_script", {"script_name": "s.py",
                                                      "script_content": "print(1)"}))
    for refused in (approve, reject):
        assert refused["status"] == "error" and ALLOW_GATES_ENV in refused["message"]
    assert deploy == {"status": "deployed", "script_name": "s.py"}
    assert one("get_job_status", job_id="hitl-gate-mcp-yes")["status"] == "RUNNING"

    env.setenv(ALLOW_GATES_ENV, "1")
    listed, approved, rejected, again, unknown = call(
        ("list_gates", {}),
        ("approve_hitl_gate", {"gate_id": "hitl-gate-mcp-yes", "comment": "the operator said"}),
        ("reject_hitl_gate", {"gate_id": "hitl-gate-mcp-no"}),
        ("approve_hitl_gate", {"gate_id": "hitl-gate-mcp-yes"}),
        ("reject_hitl_gate", {"gate_id": "no-such-gate"}))
    mine = [g for g in listed["gates"] if g["run_id"] == run_id]
    assert [(g["gate_id"], g["state"], g["status"], g["message"]) for g in mine] == [
        ("hitl-gate-mcp-yes", "waiting", "RUNNING", "yes?"),
        ("hitl-gate-mcp-no", "waiting", "RUNNING", "no?")]
    assert all(g["deadline"] and g["parents"] for g in mine)
    assert approved == {"status": "approved", "gate_id": "hitl-gate-mcp-yes",
                        "message": f"gate {run_id}/hitl-gate-mcp-yes approved"}
    assert rejected == {"status": "rejected", "gate_id": "hitl-gate-mcp-no",
                        "message": f"gate {run_id}/hitl-gate-mcp-no rejected"}
    assert again["status"] == "error" and "decided already" in again["message"]
    assert unknown == {"status": "error", "message": "ERROR: gate no-such-gate not found"}
    cluster.client.follow_run(run_id, 30)
    states = {j.job_id: j.status for j in cluster.client.run(run_id).jobs}
    assert (states["mcp-after-yes"], states["mcp-after-no"]) == ("COMPLETED", "DEAD")
    decided = {g["gate_id"]: g for g in one("list_gates", all=True)["gates"]
               if g["run_id"] == run_id}
    assert decided["hitl-gate-mcp-yes"]["decided_by"] == "titan-mcp (client)"
    assert decided["hitl-gate-mcp-yes"]["comment"] == "the operator said"
    assert decided["hitl-gate-mcp-no"]["state"] == "rejected"


def test_stdio_round_trip_keeps_stdout_for_the_protocol(cluster, tmp_path):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "titan_sdk.mcp_server"],
        env={"TITAN_HOST": cluster.state["master"]["host"], "TITAN_PORT": str(cluster.port),
             "TITAN_MCP_LOG_LEVEL": "INFO"})
    stray: list[object] = []

    async def handler(message: object) -> None:
        if isinstance(message, Exception):
            stray.append(message)  # a stdout line that was not a protocol message

    async def round_trip() -> tuple[set[str], dict[str, Any]]:
        with open(tmp_path / "stderr.txt", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog),
                              message_handler=handler) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                ping = await client.call_tool("ping_master", {})
                return names, json.loads(ping.content[0].text)

    names, ping = anyio.run(round_trip)
    assert names >= TOOLS
    assert ping == {"status": "ok", "host": cluster.state["master"]["host"], "port": cluster.port}
    assert stray == []
    assert "Titan MCP server on stdio" in (tmp_path / "stderr.txt").read_text()  # logs: stderr


def test_the_server_leaves_gevent_out():
    code = ("import sys, json, titan_sdk.mcp_server\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'gevent')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
