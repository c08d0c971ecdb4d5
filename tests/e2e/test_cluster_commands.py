"""Layer 4: the client commands against one ``titanctl up`` cluster shared by this module.

submit (--wait: exit 0 when every job completed, 1 otherwise), validate, status, runs, jobs,
describe, logs (-f), cancel, retry, workers, prune; every read command with --json; job output
printed verbatim. The module's cluster is brought down at the end and checked for leftovers.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import closed_port
from support.local_cluster import (
    module_cluster,
    tree,
    wait_gone,
    write_pipeline,
)
from support.processes import TITANCTL, titanctl


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("commands") / "cluster", 2, 2)


def _job(job_id: str, command: list[str], *parents: str, **fields) -> dict:
    job = {"id": job_id, "command": command, **fields}
    if parents:
        job["depends_on"] = list(parents)
    return job


def test_submit_wait_follows_a_dag_in_dependency_order(cluster, tmp_path):
    ledger = cluster.new_ledger("dag")
    shards = [f"shard-{n}" for n in range(4)]
    parents = {"split": [], **{s: ["split"] for s in shards}, "join": shards, "tail": ["join"]}
    pipeline = write_pipeline(tmp_path / "dag.yaml", "fan", [
        _job(job_id, ledger.command(), *ups) for job_id, ups in parents.items()])
    result = cluster.ctl("submit", str(pipeline), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "accepted: 7 jobs (fan); following it" in lines[0]
    assert lines[-1].endswith("completed: 7 completed")
    for job_id in parents:  # progress: each job's end is printed, the last one's too
        assert any(f"  {job_id}  completed (attempt 1) on worker-" in line
                   for line in lines), result.stdout
    ledger.check_dag(parents)
    assert all(len(ledger.starts(job_id)) == 1 for job_id in parents)


def test_a_failed_run_exits_1_and_retry_runs_the_job_again(cluster, tmp_path):
    ledger = cluster.new_ledger("retry")
    flag = tmp_path / "fixed"
    pipeline = write_pipeline(tmp_path / "flaky.yaml", "flaky", [
        _job("flaky", ledger.command(f"test -e {flag} || exit 3"), retries=0),
        _job("child", ledger.command(), "flaky")])
    failed = cluster.ctl("submit", str(pipeline), "--wait", "--json")
    assert failed.returncode == 1, failed.stderr
    detail = json.loads(failed.stdout)
    run_id = detail["run"]["run_id"]
    assert detail["run"]["state"] == "failed"
    states = {j["job_id"]: (j["state"], j["exit_code"]) for j in detail["jobs"]}
    assert states == {"flaky": ("dead", 3), "child": ("skipped", None)}
    assert ledger.starts("child") == []

    flag.touch()
    retried = cluster.ctl("retry", f"{run_id}/flaky")
    assert retried.returncode == 0 and "retrying" in retried.stdout, retried.stderr
    status = cluster.wait_run(run_id)
    assert status["run"]["state"] == "completed"
    assert [a for a, _ in ledger.starts("flaky")] == [1, 2]
    ledger.check_dag({"flaky": [], "child": ["flaky"]})
    dead_again = cluster.ctl("retry", f"{run_id}/child")
    assert dead_again.returncode == 2 and "Traceback" not in dead_again.stderr


def test_rerun_submits_a_runs_pipeline_again_as_a_new_run(cluster, tmp_path):
    ledger = cluster.new_ledger("rerun")
    pipeline = write_pipeline(tmp_path / "again.yaml", "again", [
        _job("one", ledger.command()), _job("two", ledger.command(), "one")])
    first = cluster.submit(pipeline)
    cluster.wait_run(first)
    result = cluster.ctl("rerun", first, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"accepted: 2 jobs (again), a re-run of {first}; following it" in lines[0]
    assert lines[-1].endswith("completed: 2 completed")
    newest = cluster.json("runs")[0]
    assert newest["name"] == "again" and newest["run_id"] != first
    assert [attempt for attempt, _ in ledger.starts("two")] == [1, 1]  # once in each run
    latest = cluster.json("rerun")  # the latest run, the re-run itself
    assert latest["name"] == "again" and latest["job_ids"] == ["one", "two"]
    cluster.wait_run(latest["run_id"])
    missing = cluster.ctl("rerun", "no-such-run")
    assert missing.returncode == 2 and "no-such-run" in missing.stderr, missing.stderr


def test_logs_print_job_output_verbatim_and_follow_it(cluster, tmp_path):
    ledger = cluster.new_ledger("logs")
    go = tmp_path / "go"
    # ANSI codes, rich-style markup, bytes that are not UTF-8, a tab, no final newline
    raw = r"printf 'plain\n\033[1mbold\033[0m [red]markup[/red]\n\377\376 raw\ttab\nno newline'"
    pipeline = write_pipeline(tmp_path / "logs.yaml", "logs", [
        _job("raw", ledger.command(f"echo to-stderr >&2; {raw}")),
        _job("slow", ledger.command(f"echo one; while [ ! -e {go} ]; do sleep 0.05; done; "
                                    "echo two"))])
    run_id = cluster.submit(pipeline)
    follow = subprocess.Popen([TITANCTL, "logs", "-f", f"{run_id}/slow", "--master",
                               cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, **cluster.env})
    try:
        assert follow.stdout.readline() == b"slow started\n"
        assert follow.stdout.readline() == b"one\n"
        go.touch()
        rest, err = follow.communicate(timeout=30)
    finally:
        follow.kill()
        follow.wait()
    assert follow.returncode == 0, err
    assert rest == b"two\n"

    cluster.wait_run(run_id)
    expected = b"plain\n\x1b[1mbold\x1b[0m [red]markup[/red]\n\xff\xfe raw\ttab\nno newline"
    result = cluster.ctl_bytes("logs", f"{run_id}/raw")
    assert result.returncode == 0, result.stderr
    # stdout and stderr are read from two pipes: their order against each other is not kept
    assert b"to-stderr\n" in result.stdout
    assert result.stdout.replace(b"to-stderr\n", b"", 1) == b"raw started\n" + expected
    after = cluster.ctl_bytes("logs", f"{run_id}/slow")
    assert after.stdout == b"slow started\none\ntwo\n"


def test_every_read_command_takes_json(cluster, tmp_path):
    ledger = cluster.new_ledger("read")
    pipeline = write_pipeline(tmp_path / "read.yaml", "read", [
        _job("a", ledger.command()), _job("b", ledger.command(), "a")])
    done = cluster.ctl("submit", str(pipeline), "--wait")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]

    runs = cluster.json("runs")
    assert runs[0]["run_id"] == run_id and runs[0]["counts"] == {"completed": 2}
    status = cluster.json("status", run_id)
    assert status == cluster.json("status")  # the latest run by default
    assert [j["job_id"] for j in status["jobs"]] == ["a", "b"]
    assert [j["job_id"] for j in cluster.json("jobs", run_id)] == ["a", "b"]
    job = cluster.json("status", f"{run_id}/b")
    described = cluster.json("describe", f"{run_id}/b")
    assert job["job"] == described["job"]
    assert described["job"]["parents"] == ["a"] and described["job"]["state"] == "completed"
    assert any(e["job_state"] == "completed" for e in described["history"])
    logs = cluster.json("logs", f"{run_id}/a")
    assert logs["job_id"] == "a" and logs["finished"] and not logs["truncated"]
    assert isinstance(logs["output"], str)
    workers = cluster.json("workers")
    assert sorted(w["name"] for w in workers) == ["worker-1", "worker-2"]
    assert all(w["connected"] and w["slots"] == 2 for w in workers)

    for args, header in ((["runs"], "RUN "), (["jobs", run_id], "JOB "),
                         (["workers"], "WORKER "), (["status", run_id], "JOB ")):
        table = cluster.ctl(*args)  # without --json: a table under its header line
        assert table.returncode == 0, table.stderr
        assert any(line.startswith(header) for line in table.stdout.splitlines()[:2]), args
    text = cluster.ctl("describe", f"{run_id}/a").stdout
    assert f"job {run_id}/a: completed" in text
    assert "  a  completed (attempt 1) on worker-" in text
    assert "  a   (attempt" not in text  # the job's output is no state change of its history


def test_cancel_kills_the_running_process_tree_and_cancels_descendants(cluster, tmp_path):
    ledger = cluster.new_ledger("cancel")
    pipeline = write_pipeline(tmp_path / "cancel.yaml", "cancel", [
        _job("sleeper", ledger.command("sleep 60")), _job("after", ledger.command(), "sleeper")])
    run_id = cluster.submit(pipeline)
    cluster.wait_started(run_id, "sleeper")
    [(_, pid)] = ledger.starts("sleeper")
    processes = tree(pid)
    assert len(processes) == 2  # bash and its sleep
    result = cluster.ctl("cancel", f"{run_id}/sleeper")
    assert result.returncode == 0 and "cancelled job" in result.stdout, result.stderr
    assert not wait_gone(processes, 10)
    status = cluster.wait_run(run_id)
    assert status["run"]["state"] == "cancelled"
    assert {j["job_id"]: j["state"] for j in status["jobs"]} == {
        "sleeper": "cancelled", "after": "cancelled"}
    assert "end" not in {e[0] for e in ledger.entries()}


def test_validate_and_clear_refusals(cluster, tmp_path):
    ledger = cluster.new_ledger("validate")
    good = write_pipeline(tmp_path / "good.yaml", "good", [
        _job("a", ledger.command()), _job("b", ledger.command(), "a")])
    valid = titanctl("validate", str(good))
    assert valid.returncode == 0 and valid.stdout.rstrip().endswith("valid"), valid.stderr
    cycle = write_pipeline(tmp_path / "cycle.yaml", "cycle", [
        _job("a", ledger.command(), "b"), _job("b", ledger.command(), "a")])
    for result in (titanctl("validate", str(cycle)), cluster.ctl("submit", str(cycle))):
        assert result.returncode == 2 and "cycle" in result.stderr.lower(), result.stderr
        assert "Traceback" not in result.stderr
    missing = cluster.ctl("status", "no-such-run/nope")
    assert missing.returncode == 2 and "nope" in missing.stderr
    port = closed_port()
    nobody = titanctl("runs", "--master", f"127.0.0.1:{port}")
    assert nobody.returncode == 3 and f"127.0.0.1:{port}" in nobody.stderr


def test_client_commands_find_the_cluster_from_the_data_dir(cluster):
    found = titanctl("workers", "--json", env={**cluster.env,
                                               "TITAN_DATA_DIR": str(cluster.root)})
    assert found.returncode == 0, found.stderr
    assert sorted(w["name"] for w in json.loads(found.stdout)) == ["worker-1", "worker-2"]


def test_prune_drops_finished_runs_past_the_retention_count(cluster, tmp_path):
    ledger = cluster.new_ledger("prune")
    pipeline = write_pipeline(tmp_path / "p.yaml", "p", [_job("only", ledger.command())])
    for _ in range(2):
        assert cluster.ctl("submit", str(pipeline), "--wait").returncode == 0
    before = cluster.json("runs")
    assert len(before) >= 2
    pruned = cluster.ctl("prune", "--retention-runs", "1")
    assert pruned.returncode == 0, pruned.stderr
    assert f"pruned {len(before) - 1} runs" in pruned.stdout
    assert [r["run_id"] for r in cluster.json("runs")] == [before[0]["run_id"]]


def test_python_jobs_start_warm_unless_they_opt_out(cluster, tmp_path):
    (tmp_path / "which.py").write_text(
        "import os, sys\nprint('titan_sdk' in sys.modules, sys.argv[1:], os.environ['X'])\n")
    pipeline = write_pipeline(tmp_path / "warm.yaml", "warm", [
        {"id": "warm", "file": "which.py", "args": "a", "env": {"X": "1"}},
        {"id": "cold", "file": "which.py", "args": "b", "env": {"X": "2"}, "warm": False}])
    run_id = cluster.submit(pipeline)
    cluster.wait_run(run_id)
    warm = cluster.ctl_bytes("logs", f"{run_id}/warm").stdout
    cold = cluster.ctl_bytes("logs", f"{run_id}/cold").stdout
    assert warm == b"True ['a'] 1\n"  # forked from the preloaded interpreter
    assert cold == b"False ['b'] 2\n"  # a fresh interpreter
