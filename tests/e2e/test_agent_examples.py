"""Layer 4: the agent examples of ``pipelines/`` against one ``titanctl up`` cluster of two workers.

Each example runs as a user runs it (``titanctl submit``, a submission with an agent run id, the
agent script), its jobs in real processes: a planner that sizes its fan-out from its data, a
writer -> critic loop of runs, a store hand-off between two workers, and the SDK as LangChain
tools. An agent run is over when every run carrying its ``agent_run_id`` is: each later run is
submitted by a job of an earlier one while that job still runs, so once the known runs have all
finished no more can come. Waits follow the master's event stream (never a sleep), each with a
deadline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import string
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from support import closed_port
from support.local_cluster import LocalCluster, module_cluster
from titan_actors.pipeline import load_pipeline
from titan_actors.scheduler.model import RunState
from titan_sdk import TitanClient

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
AGENT_SCRIPT = PIPELINES / "langchain_tools" / "agent.py"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("agents") / "cluster", 2, 4)


def submit(cluster: LocalCluster, example: str, agent_id: str, **changes: dict) -> str:
    """Submit ``pipelines/<example>/pipeline.yaml`` as the first run of the agent run
    ``agent_id``; ``changes`` maps a job id to the JobSpec fields to replace. Returns the run."""
    spec = load_pipeline(PIPELINES / example / "pipeline.yaml")
    jobs = tuple(replace(job, **changes.get(job.id, {})) for job in spec.jobs)
    return cluster.client.submit(replace(spec, jobs=jobs, agent_run_id=agent_id)).run_id


def ctl_submit(cluster: LocalCluster, example: str) -> dict:
    """``titanctl submit pipelines/<example>/pipeline.yaml --wait --json``, parsed."""
    result = cluster.ctl("submit", str(PIPELINES / example / "pipeline.yaml"), "--wait",
                         "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def agent_runs(cluster: LocalCluster, agent_id: str, timeout: float = 30) -> list:
    """Wait until every run of the agent run ``agent_id`` has finished; return their summaries,
    oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in cluster.client.runs(500) if r.agent_run_id == agent_id]
        assert runs, f"no run carries the agent run id {agent_id!r}"
        active = [r for r in runs if r.state is RunState.ACTIVE]
        if not active:
            return sorted(runs, key=lambda r: (r.created_at, r.run_id))
        cluster.client.follow_run(active[0].run_id, deadline - time.monotonic())


def jobs_of(cluster: LocalCluster, run_id: str) -> dict:
    return {job.job_id: job for job in cluster.client.run(run_id).jobs}


def logs(cluster: LocalCluster, job_ref: str) -> str:
    return cluster.client.logs(job_ref).data.decode()


# -- PLAN -> ITER -> SYNTH ---------------------------------------------------------------------

def check_planner(cluster: LocalCluster, agent_id: str, iter_run: str,
                  groups: dict[str, list[str]]) -> dict[str, str]:
    """The stage the planner submitted has one worker per group and a synthesis after them all;
    every result is in the store and in the report. Returns the results by topic."""
    jobs = jobs_of(cluster, iter_run)
    workers = {f"work-{topic}" for topic in groups}
    assert set(jobs) == workers | {"synth"}  # the width follows the data
    assert {j.status for j in jobs.values()} == {"COMPLETED"}
    assert set(jobs["synth"].parents) == workers
    ns = f"agent:{agent_id}"
    assert json.loads(cluster.client.store_get(f"{ns}:plan")) == groups
    assert sorted(cluster.client.store_members(f"{ns}:topics")) == sorted(groups)
    results = {topic: cluster.client.store_get(f"{ns}:result:{topic}") for topic in groups}
    assert None not in results.values(), results
    report = cluster.client.store_get(f"{ns}:report")
    assert report.startswith(f"report {ns} ({len(groups)} topics)")
    for topic, result in results.items():
        assert f"  {topic}: {result}" in report
        assert f"work-{topic}: {result}" in logs(cluster, f"{iter_run}/work-{topic}")
    assert report in logs(cluster, f"{iter_run}/synth")
    return results


def test_a_planner_agent_of_three_stages_sizes_its_fan_out_from_its_data(cluster):
    groups = {"billing": ["double charge on the invoice", "refund still missing"],
              "mobile-app": ["crash when opening the camera"],
              "shipping": ["box arrived wet", "wrong address printed", "courier never came"],
              "support": ["chat closed before an answer"]}
    notes = """\
Billing: double charge on the invoice
Mobile App: crash when opening the camera
shipping: box arrived wet
billing: refund still missing
shipping: wrong address printed
SUPPORT: chat closed before an answer
shipping: courier never came
"""
    # The LLM hook travels from the planner to every later job: string.capwords stands in.
    env = {"NOTES": notes, "TITAN_EXAMPLE_LLM": "string:capwords"}
    root = submit(cluster, "agent_planner", "planner-7", plan={"env": env})
    runs = agent_runs(cluster, "planner-7")
    assert runs[0].run_id == root
    assert [r.name for r in runs] == ["agent_planner", "agent_planner-iter"]
    assert {r.state for r in runs} == {RunState.COMPLETED}
    assert "7 notes in 4 topics -> 4 workers" in logs(cluster, f"{root}/plan")
    iter_run = runs[1].run_id
    results = check_planner(cluster, "planner-7", iter_run, groups)
    for topic, result in results.items():
        assert all(string.capwords(note) in result for note in groups[topic]), result
    # The workers waited for the planner itself, across runs.
    assert cluster.client.job(f"{iter_run}/work-billing").job.parents == (f"{root}/plan",)


def test_the_planner_pipeline_verbatim_names_an_agent_run_after_its_first_run(cluster):
    spec = load_pipeline(PIPELINES / "agent_planner" / "pipeline.yaml")
    groups: dict[str, list[str]] = {}
    for line in spec.jobs[0].env["NOTES"].splitlines():
        topic, _, note = line.partition(": ")
        groups.setdefault(topic, []).append(note)
    root = ctl_submit(cluster, "agent_planner")["run"]["run_id"]
    runs = agent_runs(cluster, f"agent-{root}")  # titanctl gives the first run none
    assert [(r.name, r.state) for r in runs] == [("agent_planner-iter", RunState.COMPLETED)]
    results = check_planner(cluster, f"agent-{root}", runs[0].run_id, groups)
    # The deterministic stand-in: the number of notes, then the commonest words.
    assert results == {"app": "2 points; keywords: filters, freezes, ignore",
                       "billing": "2 points; keywords: arrive, charged, order",
                       "shipping": "3 points; keywords: parcel, arrived, courier"}


# -- writer -> critic --------------------------------------------------------------------------

def with_max_rounds(args: tuple[str, ...], rounds: int) -> tuple[str, ...]:
    at = args.index("--max-rounds") + 1
    return (*args[:at], str(rounds), *args[at + 1:])


@pytest.mark.parametrize("max_rounds, rounds, accepted", [(5, 3, True), (2, 2, False)])
def test_the_writer_critic_loop_runs_rounds_until_accepted_or_out_of_rounds(
        cluster, max_rounds, rounds, accepted):
    agent = f"wc-{max_rounds}"
    spec = load_pipeline(PIPELINES / "writer_critic" / "pipeline.yaml")
    changes = {job.id: {"args": with_max_rounds(job.args, max_rounds)} for job in spec.jobs}
    first = submit(cluster, "writer_critic", agent, **changes)
    runs = agent_runs(cluster, agent)
    assert runs[0].run_id == first
    assert [r.name for r in runs] == ["writer_critic", *(f"writer_critic-round-{n}"
                                                         for n in range(2, rounds + 1))]
    assert {r.state for r in runs} == {RunState.COMPLETED}
    for n, run in enumerate(runs, 1):
        assert set(jobs_of(cluster, run.run_id)) == {f"writer-{n}", f"critic-{n}"}
        if n > 1:  # each writer waited for the critic of the round before, in its run
            parents = cluster.client.job(f"{run.run_id}/writer-{n}").job.parents
            assert parents == (f"{runs[n - 2].run_id}/critic-{n - 1}",)
    scores = [json.loads(cluster.client.store_get(f"wc:{agent}:critique:{n}"))["score"]
              for n in range(1, rounds + 1)]
    assert scores == [0.0, 0.5, 1.0][:rounds]
    final = json.loads(cluster.client.store_get(f"wc:{agent}:final"))
    assert (final["rounds"], final["accepted"]) == (rounds, accepted)
    assert final["draft"] == cluster.client.store_get(f"wc:{agent}:draft:{rounds}")
    assert ("replay" in final["draft"]) is accepted and "fsync" in final["draft"]
    verdict = "accepted" if accepted else "not accepted, out of rounds"
    last = logs(cluster, f"{runs[-1].run_id}/critic-{rounds}")
    assert f"final after {rounds} rounds: {verdict}" in last


# -- the store between two workers ---------------------------------------------------------------

def test_the_kv_handoff_crosses_from_one_worker_to_the_other(cluster):
    status = ctl_submit(cluster, "kv_handoff")
    run_id = status["run"]["run_id"]
    assert status["run"]["state"] == "completed"
    producer, consumer = (cluster.client.job(f"{run_id}/{j}").job for j in ("producer",
                                                                              "consumer"))
    assert (producer.worker, consumer.worker) == ("worker-1", "worker-2")
    assert consumer.started_at >= producer.finished_at  # it waited for its parent
    ns = f"kv:{run_id}"
    assert sorted(cluster.client.store_members(f"{ns}:items")) == ["apples", "pears", "plums"]
    assert cluster.client.store_get(f"{ns}:item:pears") == "5"
    assert cluster.client.store_get(f"{ns}:total") == "17"
    said = logs(cluster, f"{run_id}/consumer")
    assert "got apples=3, pears=5, plums=9 from the producer" in said and "total 17" in said


# -- LangChain tools -----------------------------------------------------------------------------

MULTIPLY = """\
import sys
from titan_sdk import TitanClient
client = TitanClient()
a, b = client.store_get(sys.argv[1]).split()
print("product", int(a) * int(b))
client.store_put(sys.argv[2], str(int(a) * int(b)))
"""


def load_titan_tools():
    path = PIPELINES / "langchain_tools" / "titan_tools.py"
    spec = importlib.util.spec_from_file_location("titan_tools", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sdk_env(cluster: LocalCluster) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TITAN_TOKEN", "TITAN_KEY_FILE",
                                                            "TITAN_RUN_ID")}
    return {**env, "TITAN_HOST": cluster.state["master"]["host"], "TITAN_PORT": str(cluster.port)}


def test_the_langchain_tools_return_the_clusters_real_answers(cluster):
    titan_tools = load_titan_tools()
    with TitanClient(cluster.state["master"]["host"], cluster.port) as client:
        tools = {t.name: t for t in titan_tools.make_tools(client)}

        def call(name: str, **args):
            answer = tools[name].invoke(args)
            return answer if answer.startswith(("ERROR:", "CONNECTION_ERROR:")) \
                else json.loads(answer)

        assert list(tools) == ["submit_dag", "job_status", "job_logs", "store_get", "store_put"]
        assert call("store_put", key="lc:in", value="6 7") == {"status": "ok", "key": "lc:in"}
        assert cluster.client.store_get("lc:in") == "6 7"
        done = call("submit_dag", dag_name="lc-multiply", agent_run_id="lc-tools", jobs=[
            {"job_id": "lc-multiply", "script_content": MULTIPLY, "args": "lc:in lc:out"},
            {"job_id": "lc-after", "script_content": "print('after')",
             "parents": ["lc-multiply"]}])
        assert done == {"status": "finished", "dag_name": "lc-multiply",
                        "agent_run_id": "lc-tools",
                        "jobs": {"lc-multiply": "COMPLETED", "lc-after": "COMPLETED"}}
        run = cluster.client.run(cluster.client.job("lc-multiply").job.run_id).run
        assert (run.state, run.agent_run_id) == (RunState.COMPLETED, "lc-tools")
        assert call("job_status", job_id="lc-after")["status"] == "COMPLETED"
        assert call("job_logs", job_id="lc-multiply")["logs"] == "product 42\n"
        assert call("store_get", key="lc:out") == {"key": "lc:out", "value": "42"}
        assert call("store_get", key="lc:nothing") == {"key": "lc:nothing", "value": None}
        assert call("job_status", job_id="lc-never")["status"] == "NULL"
        cycle = call("submit_dag", dag_name="lc-cycle", jobs=[
            {"job_id": "lc-a", "script_content": "", "parents": ["lc-b"]},
            {"job_id": "lc-b", "script_content": "", "parents": ["lc-a"]}])
        assert cycle.startswith("ERROR: ") and "cycle" in cycle, cycle
        failed = call("submit_dag", dag_name="lc-fail", jobs=[
            {"job_id": "lc-fail", "script_content": "raise SystemExit(3)"}])
        assert failed["jobs"] == {"lc-fail": "DEAD"}  # at once: the tool asks for no retries
    with TitanClient(port=closed_port(), timeout=5) as nowhere:
        unreachable = titan_tools.make_tools(nowhere)[3].invoke({"key": "k"})
    assert unreachable.startswith("CONNECTION_ERROR: "), unreachable


def test_the_scripted_langchain_agent_drives_the_cluster_from_the_command_line(cluster, tmp_path):
    result = subprocess.run([sys.executable, str(AGENT_SCRIPT), "--session", "lc-cli"],
                            capture_output=True, text=True, env=sdk_env(cluster), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("(")[0].strip() for line in lines if line.startswith("  -> ")] == \
        ["-> store_put", "-> submit_dag", "-> job_logs", "-> store_get"]
    assert lines[-1] == "The text has 27 words (job wordcount-lc-cli: COMPLETED)."
    assert cluster.client.store_get("lc-cli:count") == "27"
    run = cluster.client.run(cluster.client.job("wordcount-lc-cli").job.run_id).run
    assert (run.name, run.agent_run_id) == ("wordcount", "lc-cli")
    # The model is pluggable: here one that answers at once, without a tool.
    (tmp_path / "my_model.py").write_text(
        "from langchain_core.messages import AIMessage\n"
        "def answer(messages, tools):\n"
        "    return AIMessage(content=f'{len(tools)} tools, no call needed')\n")
    env = {**sdk_env(cluster), "PYTHONPATH": str(tmp_path),
           "TITAN_EXAMPLE_LLM": "my_model:answer"}
    plugged = subprocess.run([sys.executable, str(AGENT_SCRIPT)], capture_output=True,
                             text=True, env=env, timeout=60)
    assert (plugged.returncode, plugged.stdout) == (0, "5 tools, no call needed\n"), \
        plugged.stderr


def test_the_tools_module_leaves_gevent_out():
    code = ("import sys, json\n"
            f"sys.path.insert(0, {str(PIPELINES / 'langchain_tools')!r})\n"
            "import titan_tools\n"
            "titan_tools.make_tools()\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'gevent')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
