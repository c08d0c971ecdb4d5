"""The Constructor's endpoints over a fake master: the page, the YAML and Python it writes (and
that they round-trip and describe the same run), the server's checks, loading YAML, the
script library, deploy, drafts."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

import titan_sdk
from support.web_fakes import EVIL, FakeMaster
from titan_actors.errors import BrokenError, SubmissionError
from titan_actors.scheduler.model import JobKind
from titan_actors.wire.messages.files import (
    FileArea,
    FileInfo,
    FileList,
    FileStored,
    ListFiles,
    PutFile,
)
from titan_actors.wire.messages.master import RunAccepted
from titan_web.app import ConsoleOptions, create_app
from titan_web.constructor_check import check_yaml, load_yaml
from titan_web.constructor_emit import to_python, to_yaml, yaml_string
from titan_web.constructor_model import from_spec, normalize

ORIGIN = "http://localhost"


class LibraryMaster(FakeMaster):
    """FakeMaster with a script library (``library``), uploads and submissions."""

    def __init__(self) -> None:
        super().__init__()
        self.library = {"fetch.py": b"print('fetch')\n", "train.py": b"print('train')\n",
                        f"{EVIL}.py": b"print('evil')\n"}
        self.parts: dict[str, bytearray] = {}
        self.submitted: list = []
        self.refusal: SubmissionError | None = None
        self.broken = False

    def ask(self, message):
        if self.broken:
            raise BrokenError("the fake master went away")
        if isinstance(message, ListFiles):
            files = self.library if message.area is FileArea.SCRIPTS else {}
            return FileList(tuple(_info(name, data) for name, data in sorted(files.items())))
        if isinstance(message, PutFile):
            part = self.parts.setdefault(message.upload_id, bytearray())
            part += message.data
            if not message.final:
                return FileStored(len(part))
            assert message.area is FileArea.SCRIPTS
            self.library[message.name] = bytes(part)
            self.calls.append(("upload", message.name, bytes(part)))
            return FileStored(len(part), _info(message.name, bytes(part)))
        raise AssertionError(f"unexpected {message!r}")

    def submit(self, spec, from_run: str = "", from_job: str = ""):
        if self.refusal is not None:
            raise self.refusal
        self.submitted.append(spec)
        return RunAccepted("r 9/x", spec.name, tuple(job.id for job in spec.jobs), 12)


def _info(name: str, data: bytes) -> FileInfo:
    return FileInfo(FileArea.SCRIPTS, name, len(data), hashlib.sha256(data).hexdigest(), 1000.0)


class Page:
    """A test client that posts JSON as the page does: CSRF header and Origin."""

    def __init__(self, app) -> None:
        self.client = app.test_client()
        with self.client.session_transaction() as session:
            session["csrf"] = "tok"

    def get(self, path: str):
        return self.client.get(path)

    def post(self, path: str, body=None, *, headers=None, **kwargs):
        sent = {"X-CSRF-Token": "tok", "Origin": ORIGIN, **(headers or {})}
        if body is not None:
            kwargs["json"] = body
        return self.client.post(path, headers=sent, **kwargs)


@pytest.fixture
def console(tmp_path):
    master = LibraryMaster()
    options = ConsoleOptions(web_dir=tmp_path / "web", master=("127.0.0.1", 9090),
                             session_secret=b"s" * 32, data_root=tmp_path)
    return Page(create_app(options, lambda: master)), master, tmp_path / "web"


def three_jobs(**changes) -> dict:
    """fetch -> train -> ship (a gate), as the page sends it."""
    nodes = [{"key": "n1", "id": "fetch", "kind": "run", "source": "library",
              "library": "fetch.py", "priority": "7", "x": 10, "y": 20},
             {"key": "n2", "id": "train", "kind": "run", "source": "library",
              "library": "train.py", "requirement": "GPU", "affinity": True, "delay": "1.5"},
             {"key": "n3", "id": "ship", "kind": "gate", "message": "Ship it?",
              "max_wait_seconds": "900"}]
    for key, fields in changes.items():
        next(n for n in nodes if n["key"] == key).update(fields)
    return {"name": "nightly", "nodes": nodes,
            "edges": [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3"}]}


RICH = {"name": "rich one", "nodes": [
    {"key": "a", "id": "fetch", "library": "fetch.py", "args": "--day 'to day'",
     "retries": "0", "timeout": "60", "worker": "box-1", "env": "MODE=fast\nQUOTE=\"x\" y"},
    {"key": "b", "id": "crunch", "source": "command", "command": "python3 -c 'print(42)'",
     "hitl_message": "Publish\u2028now? \"yes\"\x85", "max_wait_seconds": "0.5",
     "requirement": "GPU", "external": "older other"},
    {"key": "c", "id": "api", "kind": "service", "source": "paste",
     "content": "import os\nprint(os.environ['PORT'])\n", "content_name": "api.py",
     "port": "8123", "max_restarts": "2", "health": "curl -fs http://127.0.0.1:8123/"},
    {"key": "d", "id": "true", "kind": "gate", "message": "Deploy: 'now'? #1"},
], "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"},
             {"source": "a", "target": "c"}, {"source": "c", "target": "d"}]}


# -- the page -----------------------------------------------------------------------------------

def test_the_page_loads_its_scripts_in_order_and_lists_the_library_escaped(console):
    page, _, _ = console
    html = page.get("/constructor").data.decode()
    assert 'href="/constructor" aria-current="page"' in html
    order = [html.index(f'src="/static/{name}"') for name in (
        "vendor/cytoscape.min.js", "vendor/cytoscape-dagre.js", "vendor/lodash.min.js",
        "vendor/cytoscape-edgehandles.js", "js/constructor-model.js", "js/constructor.js",
        "js/constructor-form.js", "js/constructor-io.js")]
    assert order == sorted(order)
    assert '<option value="fetch.py">fetch.py</option>' in html
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;.py" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"


def test_the_page_says_when_the_library_cannot_be_listed(console):
    page, master, _ = console
    master.broken = True
    html = page.get("/constructor").data.decode()
    assert "the library is not listed" in html


# -- the texts ----------------------------------------------------------------------------------

def test_render_writes_the_yaml_titanctl_takes_and_the_sdk_code(console):
    page, _, _ = console
    answer = page.post("/constructor/render", {"model": three_jobs()}).get_json()
    assert answer["ok"] is True and answer["problems"] == [] and answer["note"] == ""
    assert answer["yaml"].split("\n", 2)[2] == textwrap.dedent("""\
        name: nightly
        version: "1.0"
        jobs:
          - id: fetch
            script: fetch.py
            priority: 7
          - id: train
            script: train.py
            depends_on: [fetch]
            delay: 1.5
            requirement: GPU
            affinity: true
          - id: ship
            type: gate
            depends_on: [train]
            message: "Ship it?"
            max_wait_seconds: 900
        """)
    assert "from titan_sdk import Job, Pipeline, Titan" in answer["python"]
    assert textwrap.dedent("""\
        pipeline = Pipeline('nightly', [
            Job('fetch', library='fetch.py', priority=7),
            Job('train',
                library='train.py',
                parents=['fetch'],
                delay=1.5,
                requirement='GPU',
                affinity=True),
            Job('ship', kind='gate', parents=['train'], message='Ship it?', max_wait_seconds=900),
        ])
        """) in answer["python"]


def test_the_yaml_round_trips_and_the_python_makes_the_same_run(monkeypatch):
    model = normalize(RICH)
    text = to_yaml(model)
    spec = load_yaml(text)
    again = from_spec(spec)
    assert to_yaml(again) == text.replace(
        "  # pasted: deploy uploads it to the library", "")
    assert [(n.id, n.kind) for n in again.nodes] == [("fetch", "run"), ("crunch", "run"),
                                                    ("api", "service"), ("true", "gate")]
    ids = {n.key: n.id for n in again.nodes}
    assert [(ids[s], ids[t]) for s, t in again.edges] == [
        ("fetch", "crunch"), ("crunch", "api"), ("fetch", "api"), ("api", "true")]
    crunch = again.nodes[1]
    assert crunch.external == "older other" and crunch.hitl_message == RICH["nodes"][1][
        "hitl_message"] and crunch.max_wait_seconds == "0.5"
    assert spec.jobs[2].library.startswith("api-") and spec.jobs[2].library.endswith(".py")
    assert dict(spec.jobs[0].env) == {"MODE": "fast", "QUOTE": '"x" y'}
    assert spec.jobs[0].args == ("--day", "to day") and spec.jobs[0].retries == 0

    submitted = []

    class FakeTitan:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def submit(self, pipeline):
            submitted.append(pipeline.to_spec())
            raise SystemExit  # the generated code would wait for the run here

    monkeypatch.setattr(titan_sdk, "Titan", FakeTitan)
    with pytest.raises(SystemExit):
        exec(compile(to_python(model), "constructor.py", "exec"), {})
    assert submitted[0].name == spec.name and submitted[0].jobs == spec.jobs


PRINTABLE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(PRINTABLE)
def test_any_string_is_written_as_yaml_that_reads_back_the_same(text):
    node = YAML(typ="rt").compose(f"v: {yaml_string(text)}\n")
    assert node.value[0][1].value == text and str(node.value[0][1].tag).endswith(":str")


@settings(max_examples=60, deadline=None)
@given(message=PRINTABLE.filter(bool), name=PRINTABLE.map(str.strip).filter(
    lambda s: s and s.isprintable()), args=st.lists(PRINTABLE.filter(
        lambda s: "\0" not in s), max_size=4))
def test_any_message_name_and_args_round_trip_through_the_yaml(message, name, args):
    import shlex
    model = normalize({"name": name, "nodes": [
        {"key": "n1", "id": "a", "library": "x.py", "hitl_message": message,
         "args": shlex.join(args)},
        {"key": "n2", "id": "g", "kind": "gate", "message": message}],
        "edges": [{"source": "n1", "target": "n2"}]})
    spec = load_yaml(to_yaml(model))
    assert spec.name == name and spec.jobs[0].hitl_message == message
    assert spec.jobs[0].args == tuple(args) and spec.jobs[1].message == message
    assert to_yaml(from_spec(spec)) == to_yaml(model)


def test_render_maps_each_problem_to_its_node(console):
    page, _, _ = console
    model = three_jobs(n2={"priority": "abc", "library": "nope.py"})
    answer = page.post("/constructor/render", {"model": model}).get_json()
    assert answer["ok"] is False
    found = {p["message"]: p for p in answer["problems"]}
    bad_priority = next(p for m, p in found.items() if "'priority' must be an integer" in m)
    assert bad_priority["keys"] == ["n2"] and bad_priority["line"] > 0
    assert answer["yaml"].splitlines()[bad_priority["line"] - 1] == '    priority: "abc"'


def test_render_reports_a_script_missing_from_the_library(console):
    page, _, _ = console
    answer = page.post("/constructor/render", {"model": three_jobs(
        n2={"library": "nope.py"})}).get_json()
    assert [p["keys"] for p in answer["problems"]] == [["n2"]]
    assert "'nope.py' is not in the master's script library" in answer["problems"][0]["message"]


def test_render_works_without_the_master_and_says_what_it_did_not_check(console):
    page, master, _ = console
    master.broken = True
    answer = page.post("/constructor/render", {"model": three_jobs()}).get_json()
    assert answer["ok"] is True and "name: nightly" in answer["yaml"]
    assert "script library was not checked" in answer["note"]


# -- validate and parse -------------------------------------------------------------------------

CYCLE = """\
name: loop
jobs:
  - id: a
    script: fetch.py
    depends_on: [c]
  - id: b
    script: fetch.py
    depends_on: [a]
  - id: c
    script: fetch.py
    depends_on: [b]
    priority: -1
"""


def test_validate_reports_every_problem_with_its_line(console):
    page, _, _ = console
    answer = page.post("/constructor/validate", {"yaml": CYCLE}).get_json()
    assert answer["ok"] is False
    messages = [(p["line"], p["message"]) for p in answer["problems"]]
    assert any("cycle" in m and "a -> c -> b -> a" in m for _, m in messages), messages
    assert any(line == 12 and "'priority' must be an integer >= 0" in m
               for line, m in messages), messages
    good = page.post("/constructor/validate", {"yaml": CYCLE.replace(
        "    depends_on: [c]\n", "").replace("    priority: -1\n", "")}).get_json()
    assert good["ok"] is True and "pipeline 'loop'" in good["summary"]


def test_a_file_key_is_refused_without_reading_the_file(console, tmp_path):
    page, _, _ = console
    secret = tmp_path / "secret.py"
    secret.write_text("TOP-SECRET")
    for text in (f"name: x\njobs:\n  - id: a\n    file: {secret}\n",
                 f"name: x\nbase: &b {{file: {secret}}}\njobs:\n  - {{<<: *b, id: a}}\n"):
        for path in ("/constructor/validate", "/constructor/parse"):
            answer = page.post(path, {"yaml": text})
            assert b"TOP-SECRET" not in answer.data
            problems = answer.get_json()["problems"]
            assert any("'file' names a script on the disk" in p["message"] for p in problems)


def test_parse_gives_the_canvas_model_of_a_yaml(console):
    page, _, _ = console
    text = to_yaml(normalize(three_jobs()))
    answer = page.post("/constructor/parse", {"yaml": text}).get_json()
    assert answer["ok"] is True
    model = answer["model"]
    assert [(n["key"], n["id"], n["kind"]) for n in model["nodes"]] == [
        ("n1", "fetch", "run"), ("n2", "train", "run"), ("n3", "ship", "gate")]
    assert model["edges"] == [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3"}]
    assert model["nodes"][0]["priority"] == "7" and model["nodes"][1]["affinity"] is True
    broken = page.post("/constructor/parse", {"yaml": "name: [\n"}).get_json()
    assert broken["ok"] is False and "not valid YAML" in broken["problems"][0]["message"]
    assert page.post("/constructor/parse", {"yaml": " "}).status_code == 400


# -- deploy -------------------------------------------------------------------------------------

def test_deploy_uploads_pasted_scripts_then_submits_and_names_the_run_page(console):
    page, master, _ = console
    model = three_jobs(n2={"source": "paste", "content": "print('pasted')\n",
                           "content_name": "crunch.py"})
    answer = page.post("/constructor/deploy", {"model": model})
    assert answer.status_code == 200, answer.data
    assert answer.get_json() == {"ok": True, "run_id": "r 9/x", "url": "/runs/r%209%2Fx"}
    name = "crunch-" + hashlib.sha256(b"print('pasted')\n").hexdigest()[:8] + ".py"
    assert master.calls == [("upload", name, b"print('pasted')\n")]
    [spec] = master.submitted
    assert [(j.id, j.kind, j.library, j.parents) for j in spec.jobs] == [
        ("fetch", JobKind.RUN, "fetch.py", ()), ("train", JobKind.RUN, name, ("fetch",)),
        ("ship", JobKind.GATE, "", ("train",))]
    rendered = page.post("/constructor/render", {"model": model}).get_json()
    assert f"script: {name}  # pasted" in rendered["yaml"]


def test_deploy_refuses_an_invalid_pipeline_and_submits_nothing(console):
    page, master, _ = console
    model = three_jobs()
    model["edges"].append({"source": "n3", "target": "n1"})
    answer = page.post("/constructor/deploy", {"model": model})
    assert answer.status_code == 400 and master.submitted == [] and master.calls == []
    assert any("cycle" in p["message"] for p in answer.get_json()["problems"])


def test_deploy_shows_the_masters_refusal(console):
    page, master, _ = console
    master.refusal = SubmissionError("refused", ("job 'fetch': parent 'gone' is unknown",))
    answer = page.post("/constructor/deploy", {"model": three_jobs(n1={"external": "gone"})})
    assert answer.status_code == 400
    assert answer.get_json()["problems"][0]["message"] == "job 'fetch': parent 'gone' is unknown"


def test_every_post_needs_the_csrf_token_and_this_origin(console):
    page, master, _ = console
    for path in ("/constructor/deploy", "/constructor/render", "/constructor/drafts",
                 "/constructor/scripts"):
        assert page.post(path, {"model": three_jobs()},
                         headers={"X-CSRF-Token": "wrong"}).status_code == 403
        assert page.post(path, {"model": three_jobs()},
                         headers={"Origin": "http://evil.example"}).status_code == 403
    assert master.submitted == [] and master.calls == []


def test_a_model_that_is_not_one_is_a_400_in_json(console):
    page, _, _ = console
    for body in ({"model": []}, {"model": {"nodes": [{"id": "no-key"}]}},
                 {"model": {"nodes": [{"key": "a"}, {"key": "a"}]}}):
        answer = page.post("/constructor/render", body)
        assert answer.status_code == 400 and answer.get_json()["ok"] is False
    assert page.post("/constructor/render", data="x").status_code == 400


# -- the script library -------------------------------------------------------------------------

def test_a_script_is_uploaded_to_the_library_and_replaced_only_when_asked(console):
    page, master, _ = console
    import io
    sent = page.post("/constructor/scripts", data={"file": (io.BytesIO(b"print(1)\n"),
                                                            "new.py")})
    assert sent.get_json()["name"] == "new.py" and master.library["new.py"] == b"print(1)\n"
    again = page.post("/constructor/scripts", {"name": "new.py", "content": "print(2)\n"})
    assert again.status_code == 409 and again.get_json()["exists"] is True
    replaced = page.post("/constructor/scripts", {"name": "new.py", "content": "print(2)\n",
                                                  "replace": True})
    assert replaced.get_json()["ok"] and master.library["new.py"] == b"print(2)\n"
    for bad in ("../x.py", "", "a/b.py"):
        answer = page.post("/constructor/scripts", {"name": bad, "content": "x"})
        assert answer.status_code == 400 and "plain file name" in answer.get_json()["error"]
    listed = page.get("/constructor/scripts").get_json()
    assert "new.py" in [s["name"] for s in listed["scripts"]]


# -- drafts -------------------------------------------------------------------------------------

def test_drafts_are_saved_listed_loaded_and_deleted(console):
    page, _, web_dir = console
    model = three_jobs()
    model["nodes"][0]["unknown"] = "dropped"
    saved = page.post("/constructor/drafts", {"name": "Night 1", "model": model}).get_json()
    assert saved["draft"]["name"] == "Night 1" and saved["draft"]["jobs"] == 3
    assert sorted(p.name for p in (web_dir / "drafts").iterdir()) == ["Night 1.json"]
    listed = page.get("/constructor/drafts").get_json()["drafts"]
    assert [(d["name"], d["jobs"]) for d in listed] == [("Night 1", 3)]
    loaded = page.get("/constructor/drafts/Night%201").get_json()["model"]
    assert loaded["nodes"][0]["x"] == 10 and "unknown" not in loaded["nodes"][0]
    assert loaded == normalize(model).as_json()
    assert page.post("/constructor/drafts/Night%201/delete").get_json()["ok"]
    assert page.get("/constructor/drafts/Night%201").status_code == 404
    assert page.post("/constructor/drafts/Night%201/delete").status_code == 404


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", "", "x" * 81, "end.",
                                  "nul\0"])
def test_a_draft_name_must_be_a_plain_name(console, name):
    page, _, web_dir = console
    answer = page.post("/constructor/drafts", {"name": name, "model": three_jobs()})
    assert answer.status_code == 400 and "not a plain name" in answer.get_json()["error"]
    assert not (web_dir / "drafts").exists() or not any((web_dir / "drafts").iterdir())


def test_a_damaged_draft_file_is_left_out_of_the_list(console):
    page, _, web_dir = console
    page.post("/constructor/drafts", {"name": "good", "model": three_jobs()})
    (web_dir / "drafts" / "bad.json").write_text("{not json")
    assert [d["name"] for d in page.get("/constructor/drafts").get_json()["drafts"]] == ["good"]
    assert page.get("/constructor/drafts/bad").status_code == 400
    assert json.loads((web_dir / "drafts" / "good.json").read_text())["name"] == "good"


def test_check_yaml_leaves_parents_outside_the_pipeline_to_the_master():
    verdict = check_yaml("name: x\njobs:\n  - id: a\n    command: [echo]\n"
                         "    depends_on: [earlier]\n", ["fetch.py"])
    assert verdict.ok, verdict.problems


def test_a_request_over_the_limit_is_refused_in_json(console):
    page, master, _ = console
    answer = page.post("/constructor/deploy", {"model": {"name": "x" * (1 << 20)}})
    assert answer.status_code == 413 and "at most 1 MiB" in answer.get_json()["error"]
    assert master.submitted == []


def test_the_pages_scripts_never_write_html_or_evaluate_text():
    from pathlib import Path

    import titan_web
    folder = Path(titan_web.__file__).parent / "static" / "js"
    for path in folder.glob("constructor*.js"):
        code = path.read_text()
        for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function",
                    "document.write"):
            assert bad not in code, f"{path.name} uses {bad}"
