"""Layer 4: the Titan-compatible SDK (``titan_sdk``) against one ``titanctl up`` cluster.

The quickstart verbatim, the status vocabulary, refusals as ``ERROR: ...`` strings, an
unreachable master as ``CONNECTION_ERROR: ...``, ``submit_yaml(wait=True)``, a job that submits
a child run through the SDK from its own environment, and ``TitanJob``'s signature. Waits follow
the master's event stream (never a sleep).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import closed_port
from support.local_cluster import LocalCluster, module_cluster, point_environment_at, write_pipeline
from titan_actors.scheduler.model import JobKind, JobSpec
from titan_sdk import TitanClient, TitanJob
from titan_sdk.titan_sdk import TITAN_HOST, TITAN_PORT
from titan_sdk.titan_sdk import TitanClient as TitanClientToo

QUICKSTART = Path(__file__).resolve().parents[2] / "pipelines" / "quickstart" / "pipeline.yaml"
STATUSES = {"PENDING", "RUNNING", "COMPLETED", "DEAD", "CANCELLED"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("sdk") / "cluster", 1, 4)


@pytest.fixture
def sdk(cluster, monkeypatch):
    """The SDK's environment points at the cluster, as in a user's shell."""
    point_environment_at(cluster, monkeypatch)
    with TitanClient() as client:
        yield client


def _finish(cluster: LocalCluster, job_ref: str) -> str:
    """Wait until the run of ``job_ref`` has finished; return the run id."""
    run_id = cluster.client.job(job_ref).job.run_id
    cluster.client.follow_run(run_id, 30)
    return run_id


def test_the_quickstart_verbatim(sdk, cluster):
    reply = TitanClient().submit_dag("hello-world", [
        TitanJob(job_id="hello", script_content="print('hello from Titan')")])
    assert reply == "DAG_ACCEPTED"
    _finish(cluster, "hello")
    assert "hello from Titan" in sdk.fetch_logs("hello")
    assert sdk.get_job_status("hello") == "COMPLETED"
    assert sdk.get_job_status("DAG-hello") == "COMPLETED"
    assert sdk.fetch_logs("DAG-hello") == sdk.fetch_logs("hello")


def test_status_vocabulary_and_unknown_ids(sdk, cluster, tmp_path):
    assert sdk.get_job_status("no-such-job") == "NULL"
    assert sdk.get_job_status("DAG-no-such-job") == "NULL"
    assert sdk.fetch_logs("no-such-job") == ""
    release = tmp_path / "release"
    os.mkfifo(release)  # the job blocks reading it until the test writes a line
    waiter = (f"print('waiting', flush=True)\n"
              f"open({str(release)!r}).readline()\n")
    assert sdk.submit_dag("statuses", [
        TitanJob("sdk-waiter", script_content=waiter),
        TitanJob("sdk-late", script_content="print('late')", delay=600_000),
        JobSpec(id="sdk-boom", command=("false",), retries=0),
    ]) == "DAG_ACCEPTED"
    cluster.wait_for(lambda: sdk.get_job_status("sdk-waiter") == "RUNNING",
                     what="sdk-waiter to run")
    cluster.wait_for(lambda: sdk.get_job_status("sdk-boom") == "DEAD", what="sdk-boom to die")
    assert sdk.get_job_status("sdk-late") == "PENDING"  # 600 s: the delay is in milliseconds
    assert cluster.client.cancel("sdk-late")
    assert sdk.get_job_status("sdk-late") == "CANCELLED"
    with open(release, "w") as fifo:
        fifo.write("go\n")
    _finish(cluster, "sdk-waiter")
    assert sdk.get_job_status("sdk-waiter") == "COMPLETED"
    assert "waiting" in sdk.fetch_logs("sdk-waiter")
    assert {sdk.get_job_status(j) for j in ("sdk-waiter", "sdk-late", "sdk-boom")} <= STATUSES


def test_a_refused_dag_returns_error_saying_why(sdk):
    cycle = sdk.submit_dag("loop", [TitanJob("cy-a", script_content="", parents=["cy-b"]),
                                    TitanJob("cy-b", script_content="", parents=["cy-a"])])
    assert cycle.startswith("ERROR: ") and "cycle" in cycle, cycle
    orphan = sdk.submit_job(TitanJob("orphan", script_content="", parents=["never-was"]))
    assert orphan.startswith("ERROR: ") and "never-was" in orphan, orphan
    gated = sdk.submit_dag("gated", [
        TitanJob("gated", script_content="", hitl_message="ok?"),
        TitanJob("svc", script_content="", job_type="SERVICE", max_wait_seconds="soon")])
    assert gated.startswith("ERROR: ") and "max_wait_seconds must be a number" in gated, gated
    assert sdk.get_job_status("gated") == "NULL"  # nothing of a refused DAG was kept
    zipped = sdk.submit_job(TitanJob("zipped", "never-uploaded.zip/main.py", is_archive=True))
    assert zipped.startswith("ERROR: ") and "'never-uploaded.zip' is not in the uploaded" \
        in zipped, zipped
    assert sdk.upload_file("/nonexistent/file.txt") == "ERROR: /nonexistent/file.txt does not exist"


def test_connection_error_when_nothing_listens(tmp_path):
    with TitanClient(port=closed_port(), timeout=5) as client:
        replies = [client.submit_job(TitanJob("x", script_content="")),
                   client.get_job_status("x"), client.fetch_logs("x"),
                   client.submit_yaml(QUICKSTART, wait=True)]
    assert all(r.startswith("CONNECTION_ERROR: ") for r in replies), replies


def test_submit_yaml_waits_for_the_quickstart_pipeline(sdk, cluster, tmp_path):
    assert sdk.submit_yaml(str(QUICKSTART), wait=True, timeout=30) == "DAG_ACCEPTED"
    run = cluster.client.job("hello").job.run_id
    assert cluster.client.run(run).run.name == "quickstart"  # finished: no wait needed
    assert cluster.client.run(run).run.state == "completed"
    assert "hello from Titan" in sdk.fetch_logs("hello")
    late = write_pipeline(tmp_path / "late.yaml", "late",
                          [{"id": "yaml-late", "command": ["true"], "delay": 600}])
    assert sdk.submit_yaml(late, wait=True, timeout=0.5) is False
    assert cluster.client.cancel(cluster.client.job("yaml-late").job.run_id)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\njobs: []\n")
    assert sdk.submit_yaml(bad).startswith("ERROR: ")


def test_a_job_submits_a_child_run_with_the_sdk(sdk, cluster):
    parent = (
        "from titan_sdk import TitanClient, TitanJob\n"
        "child = TitanJob('sdk-child', script_content=\"print('child ran')\","
        " parents=['sdk-parent'])\n"
        "print('reply:', TitanClient().submit_dag('child-run', [child]))\n")
    assert sdk.submit_dag("parent-run", [TitanJob("sdk-parent", script_content=parent)],
                          agent_run_id="agent-7") == "DAG_ACCEPTED"
    parent_run = _finish(cluster, "sdk-parent")
    assert "reply: DAG_ACCEPTED" in sdk.fetch_logs("sdk-parent")
    child_run = _finish(cluster, "sdk-child")
    assert child_run != parent_run
    summary = cluster.client.run(child_run).run
    assert summary.agent_run_id == "agent-7"  # inherited: the job passed its own run
    assert cluster.client.job("sdk-child").job.parents == (f"{parent_run}/sdk-parent",)
    assert "child ran" in sdk.fetch_logs("sdk-child")
    assert sdk.get_job_status("sdk-child") == "COMPLETED"


def test_store_round_trip_and_a_hand_off_between_jobs(sdk, cluster):
    assert sdk.store_get("sdk:missing") == "NULL"
    assert sdk.store_put("sdk:k", "a|b;c\n✓") == "OK"
    assert sdk.store_get("sdk:k") == "a|b;c\n✓"
    assert sdk.store_sadd("sdk:set", "x") == 1 and sdk.store_sadd("sdk:set", "x") == 0
    assert sdk.store_sadd("sdk:set", "y") == 1
    assert sorted(sdk.store_smembers("sdk:set")) == ["x", "y"]
    producer = ("from titan_sdk import TitanClient\n"
                "print(TitanClient().store_put('sdk:handoff', 'from the producer'))\n")
    consumer = ("from titan_sdk import TitanClient\n"
                "print('got:', TitanClient().store_get('sdk:handoff'))\n")
    assert sdk.submit_dag("handoff", [
        TitanJob("sdk-producer", script_content=producer),
        TitanJob("sdk-consumer", script_content=consumer, parents=["sdk-producer"])]) \
        == "DAG_ACCEPTED"
    _finish(cluster, "sdk-consumer")
    assert "got: from the producer" in sdk.fetch_logs("sdk-consumer")
    kv = cluster.ctl("kv", "get", "sdk:handoff")
    assert kv.returncode == 0 and kv.stdout.strip() == "from the producer"
    assert cluster.ctl("kv", "get", "sdk:nothing").returncode == 1


def test_titan_job_signature_and_attributes(tmp_path):
    assert TitanClientToo is TitanClient and isinstance(TITAN_PORT, int) and TITAN_HOST
    names = ["job_id", "filename", "job_type", "args", "parents", "port", "is_archive",
             "priority", "delay", "affinity", "requirement", "hitl_message", "max_wait_seconds",
             "script_content"]
    defaults = [inspect.Parameter.empty, None, "RUN_PAYLOAD", None, None, 0, False, 1, 0, False,
                "GENERAL", None, 172800, None]
    params = list(inspect.signature(TitanJob).parameters.values())
    assert [p.name for p in params] == names
    assert [p.default for p in params] == defaults
    script = tmp_path / "work.sh"
    script.write_text("echo hi\n")
    job = TitanJob("j", str(script), "RUN_PAYLOAD", "--day 'to day'", ["p"], 0, False, 7, 2500,
                   True, "GPU", None, 60)
    assert (job.id, job.filename, job.job_type, job.args, job.parents, job.port, job.is_archive,
            job.priority, job.delay, job.affinity, job.requirement, job.hitl_message,
            job.max_wait_seconds) == ("j", str(script), "RUN_PAYLOAD", "--day 'to day'", ["p"],
                                      0, False, 7, 2500, True, "GPU", None, 60)
    spec = job.to_spec()
    assert (spec.script_name, spec.script, spec.args, spec.parents, spec.delay) == \
        ("work.sh", b"echo hi\n", ("--day", "to day"), ("p",), 2.5)
    assert (spec.priority, spec.affinity, spec.requirement) == (7, True, "GPU")
    assert TitanJob("q", script_content="print(1)").to_spec().script_name == "script.py"
    for job_type, kind in (("SERVICE", JobKind.SERVICE), ("DEPLOY_PAYLOAD", JobKind.SERVICE),
                           ("RUN_PAYLOAD", JobKind.RUN)):
        served = TitanJob("s", script_content="", job_type=job_type, port=8123).to_spec()
        # a port on a run job is ignored, as the original did; a service keeps it
        assert (served.kind, served.port) == (kind, 8123 if kind is JobKind.SERVICE else 0)
    gated = TitanJob("g", script_content="", hitl_message="Ship?", max_wait_seconds=60).to_spec()
    assert (gated.hitl_message, gated.max_wait_seconds, gated.kind) == ("Ship?", 60.0,
                                                                        JobKind.RUN)
    assert TitanJob("n", script_content="").to_spec().hitl_message == ""
    missing = tmp_path / "nowhere" / "gone.py"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        TitanJob("m", str(missing))
    TitanJob("a", "project.zip/path/main.py", is_archive=True)  # an archive entry: not read


def test_importing_the_sdk_leaves_gevent_out():
    code = ("import sys, json, titan_sdk\n"
            "from titan_sdk.titan_sdk import TitanClient\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'gevent')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
