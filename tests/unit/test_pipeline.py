"""YAML pipelines: the examples load and run, every job key is read into its JobSpec field, and
every mistake is reported with its file, line and key."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from titan_actors.errors import PipelineError, UsageError
from titan_actors.pipeline import (
    describe_pipeline,
    load_pipeline,
    parse_pipeline,
    pipeline_project,
)
from titan_actors.scheduler.model import JobKind, JobSpec, RunSpec

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
EXAMPLES = sorted(p.parent.name for p in PIPELINES.glob("*/pipeline.yaml"))


def write(folder: Path, text: str, name: str = "p.yaml", scripts: tuple[str, ...] = ("a.py",)
          ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for script in scripts:
        (folder / script).parent.mkdir(parents=True, exist_ok=True)
        (folder / script).write_text(f"print({script!r})\n")
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, **kwargs: object) -> list[str]:
    """Load a pipeline that must fail; return its problems, the file's path cut to 'p.yaml'."""
    path = write(tmp_path, text, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    return [line.replace(str(path), "p.yaml") for line in str(caught.value).splitlines()]


def job(tmp_path: Path, keys: str) -> JobSpec:
    """Load a one-job pipeline whose job has ``keys`` (YAML, one per line) besides its id."""
    body = textwrap.indent(textwrap.dedent(keys).strip(), "    ")
    spec = load_pipeline(write(tmp_path, f"name: t\njobs:\n  - id: j\n{body}\n"))
    return spec.jobs[0]


# -- the examples --------------------------------------------------------------------------------

def test_the_examples_are_all_there():
    assert EXAMPLES == ["agent_planner", "diamond", "fanout", "gpu", "kv_handoff", "mapreduce",
                        "ml_approval", "priorities", "project_mode", "quickstart",
                        "service_client", "writer_critic"]
    readme = (PIPELINES / "README.md").read_text()
    for name in EXAMPLES:
        assert f"titanctl submit pipelines/{name}/pipeline.yaml --wait" in readme


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_loads(name):
    spec = load_pipeline(PIPELINES / name / "pipeline.yaml")
    assert spec.name == name
    assert spec.source == str(PIPELINES / name / "pipeline.yaml")
    for each in spec.jobs:
        if each.archive:  # project mode: an entry of the uploaded folder, not carried
            assert each.script == b"" and (PIPELINES / name / each.script_name).is_file()
        else:
            assert each.script == (PIPELINES / name / each.script_name).read_bytes()
    assert describe_pipeline(spec).startswith(f"pipeline '{name}'")


def test_example_shapes():
    def shape(name):
        spec = load_pipeline(PIPELINES / name / "pipeline.yaml")
        return {j.id: set(j.parents) for j in spec.jobs}, spec

    assert shape("diamond")[0] == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    fanout, spec = shape("fanout")
    assert len(fanout) == 10 and fanout["join"] == {f"shard-{i}" for i in range(8)}
    assert len({j.args for j in spec.jobs if j.id.startswith("shard-")}) == 8
    priorities = shape("priorities")[1].jobs
    assert len({j.priority for j in priorities}) >= 3 and any(j.delay > 0 for j in priorities)
    assert [j.requirement for j in shape("gpu")[1].jobs] == ["GPU"]
    assert shape("mapreduce")[0]["reduce"] == {f"map-{i}" for i in range(4)}
    ml, spec = shape("ml_approval")
    assert ml == {"prepare": set(), "evaluate": {"prepare"}, "train": {"evaluate"},
                  "report": {"train"}}  # the master puts hitl-gate-evaluate before train
    assert [j.id for j in spec.jobs if j.hitl_message] == ["evaluate"]
    served, spec = shape("service_client")
    assert served == {"kv-api": set(), "writer": {"kv-api"}, "reader": {"kv-api", "writer"}}
    assert [(j.id, j.max_restarts) for j in spec.jobs if j.kind is JobKind.SERVICE] == \
        [("kv-api", 2)]


def _run_in_order(spec: RunSpec, workdir: Path) -> dict[str, str]:
    """Run each job's script with Python by hand, parents first, all in one directory."""
    done: dict[str, str] = {}
    while len(done) < len(spec.jobs):
        for each in spec.jobs:
            if each.id not in done and all(p in done for p in each.parents):
                script = workdir.parent / f"{each.id}-{each.script_name}"
                script.write_bytes(each.script)
                result = subprocess.run([sys.executable, str(script), *each.args], cwd=workdir,
                                        capture_output=True, text=True, timeout=30)
                assert result.returncode == 0, (each.id, result.stderr)
                done[each.id] = result.stdout
    return done


@pytest.mark.parametrize("name, job_id, expected", [
    ("quickstart", "hello", "hello from Titan"),
    ("diamond", "d", "b.txt says 14, c.txt says 49, together 63"),
    ("fanout", "join", "which matches n(n+1)(2n+1)/6"),
    ("priorities", "later", "later: priority 10, started at"),
    ("gpu", "gpu-info", "gpu-info: "),
    ("mapreduce", "reduce", "reduce: 271 words"),
    ("ml_approval", "report", "report: trained y = 3.01x -2.03 (the truth: y = 3.00x -2.00)"),
])
def test_every_example_runs_by_hand_in_one_working_directory(tmp_path, name, job_id, expected):
    workdir = tmp_path / "work"
    workdir.mkdir()
    outputs = _run_in_order(load_pipeline(PIPELINES / name / "pipeline.yaml"), workdir)
    assert expected in outputs[job_id]


# -- what a job holds ----------------------------------------------------------------------------

def test_a_minimal_job_gets_the_model_defaults(tmp_path):
    assert job(tmp_path, "file: a.py") == JobSpec(id="j", script_name="a.py",
                                                  script=b"print('a.py')\n")


def test_every_supported_key_reaches_its_field(tmp_path):
    spec = load_pipeline(write(tmp_path, """
        name: full
        version: 2
        project: false
        jobs:
          - id: first
            command: [python3, -c, "print(1)"]
          - id: j
            type: run
            file: a.py
            args: "--day today"
            priority: 7
            depends_on: [first, elsewhere]
            requirement: GPU
            affinity: true
            delay: 1.5
            retries: 0
            timeout: 30
            env: {MODE: fast, N: 3}
            worker: box-1
            max_wait_seconds: 172800
            port: 0
        """))
    assert spec.name == "full"
    assert spec.jobs[0] == JobSpec(id="first", command=("python3", "-c", "print(1)"))
    assert spec.jobs[1] == JobSpec(
        id="j", kind=JobKind.RUN, script_name="a.py", script=b"print('a.py')\n",
        args=("--day", "today"), parents=("first", "elsewhere"), priority=7, delay=1.5,
        requirement="GPU", affinity=True, worker="box-1", retries=0, timeout=30.0,
        env={"MODE": "fast", "N": "3"})


@pytest.mark.parametrize("written, expected", [
    ('"--day today"', ("--day", "today")),
    ("\"--name 'a b' c\\\\ d\"", ("--name", "a b", "c d")),
    ("'x|y;z $HOME *.py'", ("x|y;z", "$HOME", "*.py")),
    ('"  spaced   out  "', ("spaced", "out")),
    ('""', ()),
    ("", ()),
    ("[--a, 'b c', '', 1]", ("--a", "b c", "", "1")),
    ("-5", ("-5",)),
])
def test_args_are_split_like_a_shell_without_a_shell(tmp_path, written, expected):
    assert job(tmp_path, f"file: a.py\nargs: {written}").args == expected


def test_one_parent_may_be_a_plain_string(tmp_path):
    spec = load_pipeline(write(tmp_path, """
        name: t
        jobs:
          - {id: a, file: a.py}
          - {id: b, file: a.py, depends_on: a}
        """))
    assert spec.jobs[1].parents == ("a",)


def test_unicode_and_shell_characters_round_trip(tmp_path):
    path = write(tmp_path, """
        name: "ünïcode ✓"
        jobs:
          - id: j
            file: skript-ü.py
            args: ["é ✓ 日本", "a|b;c\\nd", "$(rm -rf /)", "'quoted'", "tab\\there"]
            env:
              GREETING: "grüß dich ✓"
              PIPE: "a|b;c\\nd"
              BLOCK: |
                line one; two | three
                日本
        """, scripts=())
    (tmp_path / "skript-ü.py").write_text("print('日本 ✓')\n", encoding="utf-8")
    spec = load_pipeline(path)
    assert spec.name == "ünïcode ✓"
    each = spec.jobs[0]
    assert each.script_name == "skript-ü.py"
    assert each.script.decode("utf-8") == "print('日本 ✓')\n"
    assert each.args == ("é ✓ 日本", "a|b;c\nd", "$(rm -rf /)", "'quoted'", "tab\there")
    assert each.env == {"GREETING": "grüß dich ✓", "PIPE": "a|b;c\nd",
                        "BLOCK": "line one; two | three\n日本\n"}
    assert job(tmp_path, "file: a.py\nargs: \"'a|b;c\\nd' é\"").args == ("a|b;c\nd", "é")


def test_files_are_relative_to_the_pipelines_folder_not_the_current_one(tmp_path, monkeypatch):
    write(tmp_path / "shared", "", name="unused.yaml", scripts=("common.sh",))
    path = write(tmp_path / "sub", """
        name: t
        jobs:
          - {id: a, file: jobs/a.py}
          - {id: b, file: ../shared/common.sh}
        """, scripts=("jobs/a.py",))
    monkeypatch.chdir(tmp_path / "shared")
    for source in (path, os.path.join("..", "sub", "p.yaml")):
        spec = load_pipeline(source)
        assert [(j.script_name, j.script) for j in spec.jobs] == [
            ("a.py", b"print('jobs/a.py')\n"), ("common.sh", b"print('common.sh')\n")]
        assert spec.source == os.fspath(source)


def test_parse_pipeline_takes_text_and_the_path_it_came_from(tmp_path):
    write(tmp_path, "", name="unused.yaml")
    spec = parse_pipeline("name: t\njobs: [{id: a, file: a.py}]\n", tmp_path / "virtual.yaml")
    assert spec.jobs[0].script == b"print('a.py')\n"
    with pytest.raises(PipelineError, match=r"^somewhere/x\.yaml:2: job 'a': file 'b\.py' "):
        parse_pipeline("name: t\njobs: [{id: a, file: b.py}]\n", "somewhere/x.yaml")


def test_a_long_chain_and_unicode_ids_load(tmp_path):
    chain = "".join(f"  - {{id: j{i}, file: a.py, depends_on: [j{i - 1}]}}\n"
                    for i in range(1, 1200))
    spec = load_pipeline(write(tmp_path, f"name: t\njobs:\n  - {{id: j0, file: a.py}}\n{chain}"
                                         "  - {id: 'étape:1', file: a.py, depends_on: j1199}\n"))
    assert len(spec.jobs) == 1201 and spec.jobs[-1].parents == ("j1199",)


def test_empty_parents_and_env_mean_none(tmp_path):
    each = job(tmp_path, "file: a.py\ndepends_on:\nenv:\nargs:")
    assert (each.parents, each.env, each.args) == ((), {}, ())


def test_merge_keys_share_settings_and_explicit_keys_win(tmp_path):
    spec = load_pipeline(write(tmp_path, """
        name: t
        jobs:
          - &base {id: a, file: a.py, retries: 5, priority: 2}
          - {<<: *base, id: b, retries: 1}
        """))
    assert [(j.id, j.retries, j.priority, j.script_name) for j in spec.jobs] == [
        ("a", 5, 2, "a.py"), ("b", 1, 2, "a.py")]


def test_describe_pipeline_shows_jobs_and_edges():
    spec = RunSpec(name="demo", source="demo.yaml", jobs=(
        JobSpec(id="fetch", script_name="fetch.py", args=("--day", "to day"), priority=7),
        JobSpec(id="crunch", command=("make", "all"), parents=("fetch", "yesterday"),
                requirement="GPU", delay=3.0, env={"A": "1"}),
    ))
    assert describe_pipeline(spec) == "\n".join([
        "pipeline 'demo' (demo.yaml): 2 jobs, 2 edges",
        "  fetch   run fetch.py --day 'to day'  [priority 7]",
        "  crunch  run make all  [delay 3s; needs GPU; env A; after fetch, yesterday]",
        "parents outside this file (resolved by the master at submit): yesterday",
    ])


# -- mistakes, each with its file, line and key ---------------------------------------------------

def test_problems_are_pipeline_errors_and_usage_errors():
    assert issubclass(PipelineError, UsageError)


def test_every_problem_is_reported_at_once_in_line_order(tmp_path):
    assert problems(tmp_path, """
        name: t
        colour: blue
        jobs:
          - id: fetch
            file: jobs/fetch.py
          - id: crunch
            priorty: 3
            file: a.py
            retries: three
            depends_on: [crunch]
          - just-a-name
          - file: a.py
          - id: both
            file: a.py
            command: [ls]
          - id: neither
            retries: 2
            retries: 3
          - id: fetch
            command: [ls]
        """) == [
        "p.yaml:2: key 'colour' is unknown (expected one of name, version, project, jobs)",
        f"p.yaml:5: job 'fetch': file 'jobs/fetch.py' does not exist (looked in {tmp_path}); a "
        "file is relative to the pipeline's folder",
        "p.yaml:7: job 'crunch': key 'priorty' is unknown (did you mean 'priority'?)",
        "p.yaml:9: job 'crunch': 'retries' must be an integer >= 0, got 'three'",
        "p.yaml:10: job 'crunch': 'depends_on' names the job itself; a job cannot wait for "
        "itself (remove it)",
        "p.yaml:11: job #3 must be a mapping (- id: name, then its keys), got 'just-a-name'",
        "p.yaml:12: job #4 has no 'id'; every job needs a unique id (id: fetch)",
        "p.yaml:15: job 'both': 'file' and 'command' are both given; a job runs exactly one of "
        "file, command or script",
        "p.yaml:16: job 'neither': nothing to run: give 'file' (a script next to the pipeline), "
        "'command' (an argv list) or 'script' (a library script)",
        "p.yaml:18: job 'neither': key 'retries' appears twice (first on line 17); keep one",
        "p.yaml:19: job id 'fetch' is used twice (first on line 4); job ids must be unique",
    ]


@pytest.mark.parametrize("keys, expected", [
    ("retries: -1", "'retries' must be an integer >= 0, got '-1'"),
    ("retries: 1.5", "'retries' must be an integer >= 0, got '1.5'"),
    ("priority: high", "'priority' must be an integer >= 0, got 'high'"),
    ("priority: [1]", "'priority' must be an integer >= 0, got a list"),
    ("priority: -1", "'priority' must be an integer >= 0, got '-1'"),
    ("timeout: 0", "'timeout' must be a number of seconds > 0, got '0'"),
    ("timeout: 10s", "'timeout' must be a number of seconds > 0, got '10s'"),
    ("delay: -1", "'delay' must be a number of seconds >= 0, got '-1'"),
    ("delay: .inf", "'delay' must be a number of seconds >= 0, got '.inf'"),
    ("affinity: yes", "'affinity' must be true or false, got 'yes'"),
    ("type: batch", "'type' must be one of run, service, gate, got 'batch'"),
    ("requirement: GPU, GENERAL", "'requirement' must be a worker tag such as GENERAL or GPU "
                                  "(letters, digits, '_', '.', ':' or '-'), got 'GPU, GENERAL'"),
    ("worker: ''", "'worker' must be a non-empty string, got ''"),
    ("worker: ' box'", "'worker' must be a name on one line, without control characters or "
                       "spaces around it, got ' box'"),
    ("args: \"--name 'unclosed\"", "'args' cannot be split into arguments (No closing "
                                   "quotation): close the quote, or give a list of strings"),
    ("args: {a: b}", "'args' must be a string or a list of strings, got a mapping"),
    ("env: [A=1]", "'env' must be a mapping of names to strings (NAME: value), got a list"),
    ("env: {1A: x}", "'env' name '1A' is not a variable name (letters, digits and '_', not "
                     "starting with a digit)"),
    ("env: {A: [x]}", "'env' A must be a string (quote it: A: \"...\"), got a list"),
    ("env: {A: ~}", "'env' A must be a string (quote it: A: \"...\"), got nothing"),
    ("env: {TITAN_TOKEN: x}", "'env' cannot set TITAN_TOKEN: the worker sets it for each job"),
    ("depends_on: [a, {b: c}]", "'depends_on' item 2 must be a string, got a mapping"),
    ("depends_on: ['no spaces']", "'depends_on' 'no spaces' is not a valid job id (no spaces, "
                                  "'/' or control characters)"),
    ("depends_on: [a/b]", "'depends_on' 'a/b' is not a valid job id (no spaces, '/' or control "
                          "characters)"),
    ("depends_on: [x, x]", "'depends_on' names 'x' twice; keep one"),
    ("port: 70000", "'port' must be an integer 0..65535, got '70000'"),
    ("max_wait_seconds: 0", "'max_wait_seconds' must be a number of seconds > 0, got '0'"),
    ("max_restarts: -1", "'max_restarts' must be an integer >= 0, got '-1'"),
    ("health: []", "'health' must be a non-empty list of strings (an argv: [program, arg, ...]), "
                   "got a list"),
    ("hitl_message: ''", "'hitl_message' must be a non-empty string, got ''"),
])
def test_a_bad_value_says_what_would_be_right(tmp_path, keys, expected):
    assert problems(tmp_path, f"name: t\njobs:\n  - id: j\n    file: a.py\n    {keys}\n") == [
        f"p.yaml:5: job 'j': {expected}"]


def test_a_problem_in_a_list_item_names_the_items_line(tmp_path):
    assert problems(tmp_path, """
        name: t
        jobs:
          - id: j
            file: a.py
            depends_on:
              - ok
              - {not: an id}
        """) == ["p.yaml:7: job 'j': 'depends_on' item 2 must be a string, got a mapping"]


@pytest.mark.parametrize("text, expected", [
    ("jobs: [{id: a, file: a.py}]\n",
     ["p.yaml:1: 'name' is missing; give the pipeline a name (name: nightly-report)"]),
    ("name: t\n",
     ["p.yaml:1: 'jobs' is missing; a pipeline needs a list of jobs (jobs: [- id: hello, "
      "file: hello.py])"]),
    ("name: t\njobs: []\n",
     ["p.yaml:2: 'jobs' must be a non-empty list of jobs (- id: ..., file: ...), got an empty "
      "list"]),
    ("name: t\njobs:\n",
     ["p.yaml:2: 'jobs' must be a non-empty list of jobs (- id: ..., file: ...), got nothing"]),
    ("name: [t]\njobs: [{id: a, file: a.py}]\n",
     ["p.yaml:1: 'name' must be a non-empty string, got a list"]),
    ("name: \"two\\nlines\"\njobs: [{id: a, file: a.py}]\n",
     ["p.yaml:1: 'name' must be a name on one line, without control characters or spaces "
      "around it, got 'two\\nlines'"]),
    ("name: t\njobs:\n  - &a {id: a, file: a.py, <<: *a}\n",
     ["p.yaml:3: job 'a': '<<' must name another mapping (<<: *defaults), got the mapping it "
      "is in"]),
    ("name: t\nname: u\njobs: [{id: a, file: a.py}]\n",
     ["p.yaml:2: key 'name' appears twice (first on line 1); keep one"]),
    ("name: t\nversion: {major: 1}\njobs: [{id: a, file: a.py}]\n",
     ["p.yaml:2: 'version' must be a string such as \"1.0\", got a mapping"]),
    ("name: t\nproject: maybe\njobs: [{id: a, file: a.py}]\n",
     ["p.yaml:2: 'project' must be true or false, got 'maybe'"]),
    ("name: t\njobs:\n  - {id: 'a b', file: a.py}\n",
     ["p.yaml:3: job #1: 'id' 'a b' is not a valid job id (no spaces, '/' or control "
      "characters)"]),
    ("name: t\njobs:\n  - {id: a, file: a.py, depends_on: [c]}\n  - {id: b, file: a.py, "
     "depends_on: [a]}\n  - {id: c, file: a.py, depends_on: [b]}\n",
     ["p.yaml:4: job 'b': 'depends_on' makes a cycle (a -> c -> b -> a, each waiting for the "
      "next); remove one of these dependencies"]),
    ("name: t\njobs:\n  - {id: a, command: []}\n",
     ["p.yaml:3: job 'a': 'command' must be a non-empty list of strings (an argv: [program, "
      "arg, ...]), got a list"]),
    ("name: t\njobs:\n  - {id: a, file: .}\n",
     ["p.yaml:3: job 'a': file '.' is a folder (in {dir}); expected a script file"]),
])
def test_a_bad_pipeline_names_the_line_and_the_key(tmp_path, text, expected):
    assert problems(tmp_path, text) == [e.replace("{dir}", str(tmp_path)) for e in expected]


# -- files that are not pipelines -----------------------------------------------------------------

def _error(path: Path | str) -> str:
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    return str(caught.value)


def test_a_missing_file_a_folder_and_an_empty_file(tmp_path):
    assert _error(tmp_path / "nope.yaml") == (
        f"{tmp_path / 'nope.yaml'}: pipeline file does not exist (looked for "
        f"{tmp_path / 'nope.yaml'})")
    assert _error(tmp_path) == (f"{tmp_path}: is a folder; give the pipeline's YAML file (such "
                                f"as {tmp_path / 'pipeline.yaml'})")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert _error(tmp_path / "empty.yaml") == (
        f"{tmp_path / 'empty.yaml'}: the file is empty; a pipeline needs 'name' and 'jobs'")


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: t\njobs:\n  - id: caf\xe9\n".encode("latin-1"))
    assert _error(path) == f"{path}:3: not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    path = write(tmp_path, "name: t\njobs: [{id: a, file: a.py}]\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_pipeline(path).name == "t"


@pytest.mark.parametrize("text, expected", [
    ("name: t\njobs:\n  - id: [a\n", ":4: not valid YAML: expected ',' or ']', but got "),
    ("name: t\n\tjobs: []\n", ":2: not valid YAML: found character '\\t' that cannot start any "
                              "token"),
    ("name: t\n---\nname: u\n", ":2: not valid YAML: but found another document"),
    ("name: t\x01\n", ":1: not valid YAML: character '\\x01' is not allowed in a YAML file"),
    ("- id: a\n", ":1: a pipeline must be a mapping with 'name' and 'jobs' at the top, got a "
                  "list"),
])
def test_a_yaml_syntax_error_names_its_line(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert _error(path).startswith(f"{path}{expected}")


def test_the_service_example_runs_by_hand(tmp_path):
    """kv-api as a plain process (PORT=0: a free port, which it prints), then its clients with
    TITAN_SERVICE_KV_API pointing at it; outside a job the reader leaves the service running."""
    spec = load_pipeline(PIPELINES / "service_client" / "pipeline.yaml")
    scripts = {}
    for each in spec.jobs:
        scripts[each.id] = tmp_path / each.script_name
        scripts[each.id].write_bytes(each.script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    service = subprocess.Popen([sys.executable, str(scripts["kv-api"])], cwd=tmp_path,
                               env={**env, "PORT": "0"}, stdout=subprocess.PIPE, text=True)
    try:
        listening = service.stdout.readline()  # the service says where it listens, then serves
        assert listening.startswith("kv-api: listening on 127.0.0.1:"), listening
        env["TITAN_SERVICE_KV_API"] = listening.split()[-1]
        outputs = {}
        for each in spec.jobs[1:]:
            done = subprocess.run([sys.executable, str(scripts[each.id]), *each.args],
                                  cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 0, (each.id, done.stderr)
            outputs[each.id] = done.stdout
        assert "writer: put 9 word counts" in outputs["writer"]
        assert "reader: 9 words, 11 in all; most frequent: 'the' (3)" in outputs["reader"]
    finally:
        service.terminate()
        service.communicate(timeout=10)
    unset = subprocess.run([sys.executable, str(scripts["reader"])], env={
        k: v for k, v in env.items() if k != "TITAN_SERVICE_KV_API"}, capture_output=True,
        text=True, timeout=30)
    assert unset.returncode == 1 and "TITAN_SERVICE_KV_API is not set" in unset.stderr


# -- services, gates and human approval ----------------------------------------------------------

def test_a_service_reads_its_port_restarts_and_health(tmp_path):
    each = job(tmp_path, """
        type: service
        file: a.py
        port: 8123
        max_restarts: 2
        health: [curl, -fs, "http://127.0.0.1:8123/health"]
        """)
    assert (each.kind, each.script_name, each.port, each.max_restarts, each.health) == \
        (JobKind.SERVICE, "a.py", 8123, 2, ("curl", "-fs", "http://127.0.0.1:8123/health"))
    plain = job(tmp_path, "type: Service\ncommand: [python3, -m, http.server]\nhealth: true")
    assert (plain.kind, plain.port, plain.max_restarts, plain.health) == \
        (JobKind.SERVICE, 0, -1, ("true",))  # the worker picks a port; no restart limit


def test_a_gate_reads_its_message_and_deadline(tmp_path):
    spec = load_pipeline(write(tmp_path, """
        name: t
        jobs:
          - {id: build, file: a.py}
          - id: ship-it
            type: gate
            message: Deploy to production?
            max_wait_seconds: 900
            depends_on: [build]
          - {id: deploy, file: a.py, depends_on: [ship-it]}
        """))
    gate = spec.jobs[1]
    assert (gate.kind, gate.message, gate.max_wait_seconds, gate.parents) == \
        (JobKind.GATE, "Deploy to production?", 900.0, ("build",))
    assert (gate.script, gate.script_name, gate.command) == (b"", "", ())
    assert "ship-it  gate 'Deploy to production?'  [waits 900s for a decision; after build]" \
        in describe_pipeline(spec)
    bare = load_pipeline(write(tmp_path, "name: t\njobs: [{id: g, type: gate}]\n")).jobs[0]
    assert (bare.kind, bare.message, bare.max_wait_seconds) == (JobKind.GATE, "", 172800.0)


def test_hitl_message_puts_a_gate_after_a_run_or_a_service(tmp_path):
    each = job(tmp_path, "file: a.py\nhitl_message: Approve to publish?\nmax_wait_seconds: 60")
    assert (each.kind, each.hitl_message, each.max_wait_seconds) == \
        (JobKind.RUN, "Approve to publish?", 60.0)
    service = job(tmp_path, "type: service\nfile: a.py\nhitl_message: Is it up?")
    assert (service.kind, service.hitl_message, service.max_wait_seconds) == \
        (JobKind.SERVICE, "Is it up?", 172800.0)
    described = describe_pipeline(load_pipeline(tmp_path / "p.yaml"))
    assert "then gate hitl-gate-j 'Is it up?'" in described


@pytest.mark.parametrize("keys, expected", [
    ("file: a.py\n    port: 8123", "'port' is for services (type: service); this job is a run"),
    ("file: a.py\n    max_restarts: 1", "'max_restarts' is for services (type: service); this "
                                         "job is a run"),
    ("file: a.py\n    health: [true]", "'health' is for services (type: service); this job is "
                                        "a run"),
    ("type: gate\n    port: 1", "'port' is for services (type: service); this job is a gate"),
    ("file: a.py\n    message: Ship it?", "'message' is a gate's question (type: gate); to ask "
                                          "for approval after this job, give 'hitl_message'"),
    ("type: gate\n    hitl_message: Ship it?", "a gate cannot have 'hitl_message' (it is a gate "
                                               "already); its question is 'message'"),
    ("file: a.py\n    max_wait_seconds: 900", "'max_wait_seconds' is a gate's deadline: give "
                                              "'hitl_message' too (a gate after this job), or "
                                              "make the job a gate (type: gate)"),
])
def test_a_key_of_another_kind_of_job_names_its_line(tmp_path, keys, expected):
    found = problems(tmp_path, f"name: t\njobs:\n  - id: j\n    {keys}\n")
    assert found == [f"p.yaml:5: job 'j': {expected}"]
    written = (tmp_path / "p.yaml").read_text().splitlines()[4]
    assert written.strip().split(":")[0] in expected


def test_project_mode_makes_archive_jobs_of_files_inside_the_folder(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "a.py").write_text("print(1)")
    path = write(tmp_path, "name: nightly\nproject: true\njobs:\n"
                           "  - {id: a, file: jobs/a.py}\n  - {id: b, command: [true]}\n")
    spec = load_pipeline(path)
    a, b = spec.jobs
    assert (a.archive, a.script_name, a.script) == ("nightly.zip", "jobs/a.py", b"")
    assert b.archive == ""
    assert pipeline_project(spec) == (tmp_path, "nightly.zip")
    assert "nightly.zip/jobs/a.py" in describe_pipeline(spec)


def test_project_mode_files_must_be_inside_the_project(tmp_path):
    (tmp_path / "outside.py").write_text("")
    (tmp_path / "proj").mkdir()
    found = problems(tmp_path / "proj", "name: t\nproject: true\njobs:\n"
                                        "  - {id: a, file: ../outside.py}\n"
                                        "  - {id: b, file: missing.py}\n")
    assert found == [
        f"p.yaml:4: job 'a': file '../outside.py' is outside the pipeline's folder "
        f"({tmp_path / 'proj'}); in project mode every file is inside the project",
        f"p.yaml:5: job 'b': file 'missing.py' does not exist (looked in {tmp_path / 'proj'})"]


def test_project_mode_refuses_files_that_packing_leaves_out(tmp_path):
    project = tmp_path / "proj"
    for folder in (".git/hooks", "venv/bin", "node_modules/tool", "real"):
        (project / folder).mkdir(parents=True)
    for script in (".git/hooks/run.py", "venv/bin/run.py", "node_modules/tool/run.py",
                   "real/run.py"):
        (project / script).write_text("print(1)\n")
    (project / "linked").symlink_to(project / "real")
    (project / "alias.py").symlink_to(project / "real" / "run.py")
    found = problems(project, "name: t\nproject: true\njobs:\n"
                              "  - {id: a, file: .git/hooks/run.py}\n"
                              "  - {id: b, file: venv/bin/run.py}\n"
                              "  - {id: c, file: node_modules/tool/run.py}\n"
                              "  - {id: d, file: linked/run.py}\n"
                              "  - {id: e, file: alias.py}\n"
                              "  - {id: f, file: real/run.py}\n")
    fix = "; move the script to a plain folder of the project"
    assert found[0].startswith("p.yaml:4: job 'a': file '.git/hooks/run.py' would not be in "
                               "the project's archive: it is inside '.git', a folder that is "
                               "never packed (the skipped folders: ")
    assert found[1].startswith("p.yaml:5: job 'b': file 'venv/bin/run.py' would not be in the "
                               "project's archive: it is inside 'venv', a folder that is never "
                               "packed")
    assert "it is inside 'node_modules'" in found[2] and found[2].startswith("p.yaml:6:")
    assert found[3:] == [
        "p.yaml:7: job 'd': file 'linked/run.py' would not be in the project's archive: it "
        f"goes through 'linked', a symbolic link, and links are not packed{fix}",
        "p.yaml:8: job 'e': file 'alias.py' would not be in the project's archive: "
        f"'alias.py' is a symbolic link, and links are not packed{fix}"]
    assert all(line.endswith(fix) for line in found)


def test_a_library_script_is_named_not_read(tmp_path):
    each = job(tmp_path, "script: nightly.py\nargs: --full")
    assert (each.library, each.script, each.script_name, each.args) == \
        ("nightly.py", b"", "", ("--full",))
    assert pipeline_project(load_pipeline(tmp_path / "p.yaml")) is None


def test_the_default_gate_deadline_and_port_zero_are_accepted_on_any_job(tmp_path):
    each = job(tmp_path, "file: a.py\nmax_wait_seconds: 172800\nport: 0")
    assert (each.max_wait_seconds, each.port) == (172800.0, 0)


def test_a_gate_runs_nothing(tmp_path):
    assert problems(tmp_path, "name: t\njobs:\n  - id: g\n    type: gate\n    file: a.py\n"
                              "    command: [ls]\n") == [
        "p.yaml:5: job 'g': a gate runs no process; remove 'file'",
        "p.yaml:6: job 'g': a gate runs no process; remove 'command'"]


def test_warm_false_sets_titan_warm_0_and_warm_must_be_a_boolean(tmp_path):
    cold = job(tmp_path, "file: a.py\nwarm: false\nenv: {A: '1'}")
    assert cold.env == {"A": "1", "TITAN_WARM": "0"}
    assert job(tmp_path, "file: a.py\nwarm: true").env == {}
    found = problems(tmp_path, "name: t\njobs:\n  - id: j\n    file: a.py\n    warm: maybe\n")
    assert len(found) == 1 and "p.yaml:5" in found[0] and "warm" in found[0]
