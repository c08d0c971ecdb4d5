"""Layer 4: the native SDK (``titan_sdk.Titan``) against one ``titanctl up`` cluster.

Waiting for a run (success, a failure with its skipped child, a timeout on a job blocked on a
FIFO, then a cancel), following a job's output as it comes, adding jobs from outside and from
inside a job (who added what is recorded), and ``titanctl agents`` over the runs of an agent.
Waits follow the master's event stream; jobs that must wait block on a FIFO (never a sleep).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.local_cluster import module_cluster, point_environment_at
from titan_sdk import (
    Job,
    NotFound,
    Pipeline,
    Run,
    RunFailed,
    SubmissionRefused,
    Titan,
    WaitTimeout,
)

PROJECT = Path(__file__).resolve().parents[2] / "pipelines" / "project_mode" / "pipeline.yaml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("native") / "cluster", 1, 4)


@pytest.fixture
def titan(cluster, monkeypatch):
    point_environment_at(cluster, monkeypatch)
    with Titan(timeout=10) as client:
        yield client


def test_the_client_submits_and_waits_as_a_context_manager(titan):
    pipeline = Pipeline("native-ok", [
        Job("nat-a", script="print('a says hi')"),
        Job("nat-b", command=["echo", "b"], parents=["nat-a"])], agent_run_id="nat-agent")
    run = titan.submit(pipeline)
    result = run.wait(timeout=30)
    assert result.ok and result.run_id == run.run_id and result.agent_run_id == "nat-agent"
    assert result.states == {"nat-a": "completed", "nat-b": "completed"}
    assert run.status() == result.states and [j.job_id for j in run.jobs()] == ["nat-a", "nat-b"]
    assert run.logs("nat-a") == "a says hi\n" and run.logs("nat-b") == "b\n"
    assert titan.run(run.run_id) == run and titan.run(run.run_id).name == "native-ok"
    assert [r.run_id for r in titan.runs(agent_run_id="nat-agent")] == [run.run_id]
    assert run.wait(timeout=5).ok  # a finished run answers at once
    with pytest.raises(NotFound, match="rnope") as missing:
        titan.run("rnope")
    assert missing.value.ref == "rnope"
    with pytest.raises(NotFound, match="nat-zz"):
        run.logs("nat-zz")
    with pytest.raises(SubmissionRefused) as refused:
        titan.submit(Pipeline("loop", [Job("cy-a", command=["true"], parents=["cy-b"]),
                                       Job("cy-b", command=["true"], parents=["cy-a"])]))
    assert any("cycle" in problem for problem in refused.value.problems)
    client = titan._client
    with Titan(timeout=10) as other:
        assert other.run(run.run_id).summary().state == "completed"
    assert other._client is None and titan._client is client  # closed on exit, not shared


def test_a_failing_job_raises_run_failed_with_its_skipped_child(titan):
    run = titan.submit(Pipeline("native-fail", [
        Job("nf-boom", command=["false"], retries=0),
        Job("nf-after", command=["true"], parents=["nf-boom"]),
        Job("nf-fine", command=["true"])]))
    with pytest.raises(RunFailed) as caught:
        run.wait(timeout=30)
    error = caught.value
    assert (error.run_id, error.failed_job_ids) == (run.run_id, ["nf-boom", "nf-after"])
    assert error.result.states == {"nf-boom": "dead", "nf-after": "skipped",
                                   "nf-fine": "completed"}
    assert "nf-boom (dead)" in str(error)


def test_a_blocked_job_times_the_wait_out_then_is_cancelled(titan, tmp_path):
    fifo = tmp_path / "never"
    os.mkfifo(fifo)  # nobody writes: the job blocks until it is cancelled
    run = titan.submit(Pipeline("native-blocked", [
        Job("nb-blocked", script=f"open({str(fifo)!r}).readline()"),
        Job("nb-child", command=["true"], parents=["nb-blocked"])]))
    with pytest.raises(WaitTimeout) as caught:
        run.wait(timeout=0.5)
    assert caught.value.ref == run.run_id and run.run_id in str(caught.value)
    assert run.status()["nb-child"] == "pending"
    assert "cancelled" in run.cancel()
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=30)
    assert failed.value.result.state == "cancelled"
    assert failed.value.failed_job_ids == ["nb-blocked", "nb-child"]


def test_stream_logs_follows_the_output_until_the_job_ends(titan, tmp_path):
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    script = f"print('one', flush=True)\nopen({str(fifo)!r}).readline()\nprint('two')\n"
    run = titan.submit(Pipeline("native-stream", [Job("ns-talker", script=script)]))
    seen = ""
    for chunk in run.stream_logs("ns-talker", timeout=30):
        seen += chunk
        if seen == "one\n":  # the job is still running: release it
            with open(fifo, "w") as release:
                release.write("go\n")
    assert seen == "one\ntwo\n"
    assert run.wait(timeout=30).ok and run.logs("ns-talker") == seen


ADDER = """
from titan_sdk import Job, Pipeline, Titan
with Titan() as titan:
    ids = titan.add_jobs(None, [Job('in-child', script="print('child ran')",
                                    parents=['in-first'])])
    sub = titan.submit(Pipeline('native-sub', [Job('in-sub', command=['true'])]))
    print('added', ids, 'submitted', sub.run_id, flush=True)
"""


def test_jobs_added_from_outside_and_from_inside_a_job(titan, cluster):
    first = titan.submit(Pipeline("native-grow", [Job("out-first", command=["true"])]))
    assert first.wait(timeout=30).ok
    assert titan.add_jobs(first.run_id, [Job("out-second", command=["echo", "2nd"],
                                             parents=["out-first"])]) == ["out-second"]
    assert first.wait(timeout=30).states == {"out-first": "completed",
                                             "out-second": "completed"}
    assert titan.job(f"{first.run_id}/out-second").added_by == ""  # not added by a job

    run = titan.submit(Pipeline("native-agentic", [
        Job("in-first", command=["true"]),
        Job("in-adder", script=ADDER, parents=["in-first"])], agent_run_id="nat-agentic"))
    assert run.wait(timeout=30).states == {"in-first": "completed", "in-adder": "completed",
                                           "in-child": "completed"}
    said = run.logs("in-adder")
    assert "added ['in-child'] submitted r" in said, said
    sub_id = said.split("submitted ")[1].split()[0]
    assert run.logs("in-child") == "child ran\n"
    child = {j.job_id: j for j in run.jobs()}["in-child"]
    assert (child.added_by, child.parents) == ("in-adder", ("in-first",))
    sub = titan.run(sub_id)
    assert sub.wait(timeout=30).agent_run_id == "nat-agentic"  # inherited from the job's run
    summary = sub.summary()
    assert (summary.from_run, summary.from_job) == (run.run_id, "in-adder")

    agent = next(a for a in titan.agent_runs() if a.agent_run_id == "nat-agentic")
    assert (agent.runs, agent.names, agent.state) == ((run.run_id, sub_id),
                                                      ("native-agentic", "native-sub"),
                                                      "completed")
    listing = cluster.ctl("agents")
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if x.startswith("nat-agentic"))
    assert "native-agentic, native-sub" in line and "completed" in line
    detail = cluster.json("agents", "nat-agentic")
    assert [(r["run_id"], r["name"], r["from_job"]) for r in detail["runs"]] == \
        [(run.run_id, "native-agentic", ""), (sub_id, "native-sub", "in-adder")]
    table = cluster.ctl("agents", "nat-agentic")
    assert f"{run.run_id}/in-adder" in table.stdout and "native-sub" in table.stdout
    unknown = cluster.ctl("agents", "nat-nothing")
    assert unknown.returncode == 2 and "no agent run 'nat-nothing'" in unknown.stderr
    shown = cluster.ctl("describe", f"{run.run_id}/in-child").stdout
    assert "added by     in-adder" in shown
    status = cluster.ctl("status", sub_id).stdout
    assert f"submitted by job {run.run_id}/in-adder" in status
    as_json = json.loads(cluster.ctl("status", run.run_id, "--json").stdout)
    assert {j["job_id"]: j["added_by"] for j in as_json["jobs"]}["in-child"] == "in-adder"


def test_a_project_mode_yaml_uploads_its_folder_first(titan):
    run = titan.submit(PROJECT, agent_run_id="nat-project")
    result = run.wait(timeout=30)
    assert result.states == {"totals": "completed", "report": "completed"}
    assert result.agent_run_id == "nat-project" and run.logs("report")


def test_a_run_object_is_a_handle(titan):
    run = Run(titan, "rnope")
    with pytest.raises(NotFound, match="rnope"):
        run.status()
