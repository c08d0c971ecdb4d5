"""The native SDK's types without a cluster: ``Job`` validation, ``Pipeline.from_yaml``, the
mapping of core errors onto the SDK's tree, and ``RunResult`` / ``RunFailed``."""

from __future__ import annotations

import pytest

from support import closed_port
from titan_actors import errors as core
from titan_actors.scheduler.model import JobKind, JobSpec, JobState, RunState
from titan_sdk import (
    ConnectionFailed,
    InvalidJob,
    Job,
    NotFound,
    Pipeline,
    RequestRefused,
    RunFailed,
    RunResult,
    SubmissionRefused,
    Titan,
    TitanSDKError,
    WaitTimeout,
)
from titan_sdk.errors import translated


def test_a_script_job_becomes_the_spec_the_master_takes():
    job = Job("a", script="print(1)", args="--day 'to day'", parents=["p"], priority=4,
              delay=2.5, requirement="GPU", affinity=True, worker="w1", retries=0,
              timeout=30, env={"MODE": "fast"})
    assert (job.args, job.parents, job.script_name) == (("--day", "to day"), ("p",),
                                                        "script.py")
    assert job.to_spec() == JobSpec(
        id="a", script_name="script.py", script=b"print(1)", args=("--day", "to day"),
        parents=("p",), priority=4, delay=2.5, requirement="GPU", affinity=True,
        worker="w1", retries=0, timeout=30, env={"MODE": "fast"})
    assert Job("c", command=["echo", "hi"]).to_spec().command == ("echo", "hi")
    assert Job("s", script=b"echo", script_name="x.sh").to_spec().script_name == "x.sh"


def test_a_file_job_reads_its_file_now(tmp_path):
    script = tmp_path / "work.sh"
    script.write_text("echo hi\n")
    spec = Job("f", file=script).to_spec()
    assert (spec.script_name, spec.script) == ("work.sh", b"echo hi\n")
    missing = tmp_path / "nowhere" / "gone.py"
    with pytest.raises(InvalidJob, match=str(missing)) as caught:
        Job("m", file=missing)
    assert caught.value.problems == [
        f"job 'm': file {missing} does not exist (looked for {missing.resolve()})"]


@pytest.mark.parametrize(("fields", "says"), [
    ({}, "give exactly one of file, script, command or library"),
    ({"script": "x", "command": ["true"]}, "(got script, command)"),
    ({"command": "echo hi"}, "command must be a list of strings"),
    ({"script": "x", "args": "'open"}, "do not split like a shell would"),
    ({"script": "x", "priority": -1}, "priority must be a whole number >= 0"),
    ({"script": "x", "retries": 1.5}, "retries must be a whole number >= 0"),
    ({"script": "x", "delay": -2}, "delay must be a number of seconds >= 0"),
    ({"script": "x", "requirement": "two tags"}, "requirement must be one tag"),
    ({"script": "x", "parents": ["p", "p"]}, "parent 'p' is listed twice"),
    ({"script": "x", "parents": "p"}, "parents must be a list of job ids"),
    ({"script": "x", "env": {"A": 1}}, "env must map strings to strings"),
    ({"script": "x", "affinity": "yes"}, "affinity must be true or false"),
])
def test_an_invalid_job_says_what_is_wrong(fields, says):
    with pytest.raises(InvalidJob) as caught:
        Job("bad", **fields)
    error = caught.value
    assert says in str(error) and "job 'bad'" in str(error)
    assert any(says in problem for problem in error.problems)
    assert isinstance(error, SubmissionRefused | ValueError | TitanSDKError)


def test_services_gates_and_hitl_messages_become_their_specs():
    service = Job("api", command=["python3", "api.py"], kind="service", port=8123,
                  max_restarts=2, health=["curl", "-fs", "http://127.0.0.1:8123/"])
    assert service.to_spec() == JobSpec(
        id="api", kind=JobKind.SERVICE, command=("python3", "api.py"), port=8123,
        max_restarts=2, health=("curl", "-fs", "http://127.0.0.1:8123/"))
    assert (service.kind, service.health) == (JobKind.SERVICE, ("curl", "-fs",
                                                                "http://127.0.0.1:8123/"))
    gate = Job("ship-it", kind=JobKind.GATE, message="Deploy?", max_wait_seconds=900,
               parents=["api"])
    assert gate.to_spec() == JobSpec(id="ship-it", kind=JobKind.GATE, message="Deploy?",
                                     max_wait_seconds=900, parents=("api",))
    gated = Job("train", script="print(1)", hitl_message="Train now?", max_wait_seconds=60)
    assert (gated.to_spec().kind, gated.to_spec().hitl_message,
            gated.to_spec().max_wait_seconds) == (JobKind.RUN, "Train now?", 60)
    assert Job.from_spec(service.to_spec()) == service


@pytest.mark.parametrize(("fields", "says"), [
    ({"kind": "batch", "script": "x"}, "kind must be one of run, service, gate, got 'batch'"),
    ({"kind": "gate", "script": "x"}, "a gate runs no process; remove script"),
    ({"kind": "gate", "hitl_message": "again?"}, "a gate cannot have hitl_message"),
    ({"script": "x", "port": 80}, "port is for services"),
    ({"script": "x", "health": ["true"]}, "health is for services"),
    ({"script": "x", "max_restarts": 1}, "max_restarts is for services"),
    ({"kind": "service", "script": "x", "max_restarts": -2}, "max_restarts must be a whole "
                                                             "number >= 0"),
    ({"kind": "service", "script": "x", "health": "curl x"}, "health must be a list of "
                                                              "strings"),
    ({"kind": "service", "script": "x", "port": 70000}, "port must be 0 (any free port) to "
                                                         "65535"),
    ({"script": "x", "message": "ok?"}, "message is a gate's question"),
    ({"script": "x", "max_wait_seconds": 5}, "max_wait_seconds is a gate's deadline"),
    ({"kind": "gate", "max_wait_seconds": 0}, "max_wait_seconds must be a number of seconds "
                                              "> 0, got 0"),
    ({"script": "x", "hitl_message": "ok?", "max_wait_seconds": "soon"},
     "max_wait_seconds must be a number of seconds > 0, got 'soon'"),
])
def test_an_invalid_service_or_gate_says_what_is_wrong(fields, says):
    with pytest.raises(InvalidJob) as caught:
        Job("bad", **fields)
    assert any(says in problem for problem in caught.value.problems), caught.value.problems


def test_a_job_id_must_be_a_plain_id():
    with pytest.raises(InvalidJob, match="non-empty string id"):
        Job("", script="x")
    with pytest.raises(InvalidJob, match="whitespace or '/'"):
        Job("a/b", script="x")


def test_from_spec_keeps_the_spec_exactly():
    spec = JobSpec(id="g", kind=JobKind.GATE, message="ok?", parents=("a",))
    job = Job.from_spec(spec)  # not validated here: the master judges kinds it supports
    assert job.to_spec() is spec and (job.id, job.parents) == ("g", ("a",))


def test_a_pipeline_from_yaml(tmp_path):
    (tmp_path / "fetch.py").write_text("print('fetch')\n")
    path = tmp_path / "p.yaml"
    path.write_text("name: nightly\njobs:\n  - id: fetch\n    file: fetch.py\n"
                    "  - id: clean\n    command: [rm, -f, x]\n    depends_on: [fetch]\n"
                    "    delay: 3\n")
    pipeline = Pipeline.from_yaml(path, agent_run_id="agent-1")
    assert (pipeline.name, pipeline.agent_run_id, [j.id for j in pipeline.jobs]) == \
        ("nightly", "agent-1", ["fetch", "clean"])
    fetch, clean = pipeline.jobs
    assert (fetch.script, fetch.script_name) == (b"print('fetch')\n", "fetch.py")
    assert (clean.command, clean.parents, clean.delay) == (("rm", "-f", "x"), ("fetch",), 3)
    spec = pipeline.to_spec()
    assert (spec.name, spec.agent_run_id, spec.source) == ("nightly", "agent-1", str(path))


def test_a_bad_yaml_pipeline_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\njobs:\n  - id: a\n    file: a.py\n    colour: red\n")
    with pytest.raises(InvalidJob) as caught:
        Pipeline.from_yaml(path)
    assert caught.value.problems and all(p.startswith(f"{path}:") for p in caught.value.problems)
    assert any(":5:" in p and "colour" in p for p in caught.value.problems)
    with pytest.raises(InvalidJob, match="does not exist"):
        Pipeline.from_yaml(tmp_path / "none.yaml")


def test_a_pipeline_needs_a_name_and_jobs():
    with pytest.raises(InvalidJob, match="no jobs"):
        Pipeline("empty", [])
    with pytest.raises(InvalidJob, match="non-empty name"):
        Pipeline("", [Job("a", script="x")])
    with pytest.raises(InvalidJob, match="is not a titan_sdk.Job"):
        Pipeline("p", ["a"])
    assert Pipeline("p", [JobSpec(id="a", command=("true",))]).jobs[0].id == "a"


@pytest.mark.parametrize(("raised", "expected"), [
    (core.UnknownRunError("no run 'rx'"), NotFound),
    (core.UnknownJobError("no job 'jx'"), NotFound),
    (core.SubmissionError("run 'p' refused (2 problems):\n  job 'a': x\n  job 'b': y"),
     SubmissionRefused),
    (core.PermissionDeniedError("scoped to run r1"), RequestRefused),
    (core.InvalidTransitionError("running"), RequestRefused),
    (core.LocalFileError("cannot save to /missing/out.txt: the folder /missing does not exist"),
     RequestRefused),
    (core.BrokenError("reset by peer"), ConnectionFailed),
    (core.AskTimeoutError("no reply"), ConnectionFailed),
    (core.HandshakeError("wrong key"), ConnectionFailed),
    (core.AofWriteError("disk full"), TitanSDKError),
])
def test_core_errors_map_onto_the_sdk_tree(raised, expected):
    with pytest.raises(expected) as caught, translated("10.0.0.1:9090", ref="rx"):
        raise raised
    assert caught.value.__cause__ is raised
    if expected is NotFound:
        assert caught.value.ref == "rx"
    if expected is SubmissionRefused:  # the problems come back from a remote message's text
        assert caught.value.problems == ["job 'a': x", "job 'b': y"]
    if expected is ConnectionFailed:
        assert "10.0.0.1:9090" in str(caught.value)


def test_run_result_and_run_failed():
    states = {"a": JobState.COMPLETED, "b": JobState.DEAD, "c": JobState.SKIPPED,
              "d": JobState.CANCELLED}
    result = RunResult("r1", "p", RunState.FAILED, "", states, ())
    assert not result.ok and result.failed_job_ids == ["b", "c", "d"]
    error = RunFailed(result)
    assert (error.run_id, error.failed_job_ids, error.result) == ("r1", ["b", "c", "d"], result)
    assert "b (dead)" in str(error) and "c (skipped)" in str(error)
    assert issubclass(WaitTimeout, TimeoutError) and issubclass(NotFound, LookupError)
    serving = RunResult("r2", "p", RunState.SERVING, "",
                        {"api": JobState.READY, "use": JobState.COMPLETED}, ())
    assert serving.ok and serving.failed_job_ids == []  # ready services run on: a success
    stopped = RunResult("r3", "p", RunState.COMPLETED, "",
                        {"api": JobState.STOPPED, "use": JobState.COMPLETED}, ())
    assert stopped.ok and stopped.failed_job_ids == []  # stopped as asked: not a failure


def test_the_client_takes_its_address_from_the_environment(monkeypatch):
    monkeypatch.setenv("TITAN_HOST", "10.1.2.3")
    monkeypatch.setenv("TITAN_PORT", "9999")
    assert Titan().address == "10.1.2.3:9999"
    assert Titan("h", 1).address == "h:1"


def test_connection_failed_names_the_address(monkeypatch):
    for name in ("TITAN_TOKEN", "TITAN_KEY_FILE", "TITAN_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    port = closed_port()
    with Titan("127.0.0.1", port, timeout=5) as titan:
        with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}"):
            titan.runs()
        with pytest.raises(ConnectionFailed):
            titan.submit(Pipeline("p", [Job("a", script="x")]))
    with pytest.raises(RequestRefused, match="TITAN_RUN_ID"):
        Titan("127.0.0.1", port).add_jobs(None, [Job("a", script="x")])


def test_archive_and_library_jobs_name_what_the_master_holds():
    entry = Job("a", archive="proj.zip", file="jobs/main.py")  # not read: inside the archive
    assert (entry._spec.archive, entry._spec.script_name, entry._spec.script) == \
        ("proj.zip", "jobs/main.py", b"")
    assert Job("b", library="nightly.py")._spec.library == "nightly.py"
    with pytest.raises(InvalidJob, match="archive entry '../x.py' must be a relative path"):
        Job("c", archive="proj.zip", file="../x.py")


def test_warm_false_keeps_a_job_off_the_warm_executor():
    cold = Job("cold", script="print(1)", warm=False, env={"A": "1"})
    assert cold.to_spec().env == {"A": "1", "TITAN_WARM": "0"}
    assert Job("warm", script="print(1)").to_spec().env == {}
    assert Job.from_spec(cold.to_spec()).warm is False
    with pytest.raises(InvalidJob, match="warm must be true or false"):
        Job("bad", script="print(1)", warm="no")
