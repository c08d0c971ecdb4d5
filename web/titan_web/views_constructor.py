"""The Constructor: build a pipeline on a canvas, see its YAML and SDK code, check it, save
drafts, deploy it.

The page (``constructor.html``, ``static/js/constructor*.js``) keeps the canvas model (see
``constructor_model``) and sends it here as JSON; every answer is JSON:

* ``POST /constructor/render`` {model} -> the YAML, the Python, and the server's verdict on
  that YAML (each problem with its line and the node keys it is about);
* ``POST /constructor/validate`` {yaml} -> the verdict on a YAML text, as ``titanctl
  validate`` gives it (``parse_pipeline`` + ``check_jobs``) plus the library check;
* ``POST /constructor/parse`` {yaml} -> the canvas model of a YAML pipeline;
* ``POST /constructor/deploy`` {model} -> uploads its pasted scripts to the library, submits
  the YAML's run through the console's master client, answers {run_id, url};
* ``GET/POST /constructor/scripts``: the script library, and an upload to it;
* ``/constructor/drafts``: list, load, save, delete named drafts.

Every POST carries the CSRF token and an Origin of this console (``auth.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, jsonify, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from titan_actors.errors import ConnectionError_, SubmissionError, TitanError, UsageError
from titan_actors.master.files import check_name
from titan_actors.pipeline import describe_pipeline
from titan_actors.transfer import list_files, submit_pipeline, upload_bytes
from titan_actors.wire.messages.files import FileArea

from .app import console
from .constructor_check import Verdict, check_yaml
from .constructor_drafts import Drafts, UnknownDraftError
from .constructor_emit import to_python, to_yaml, uploads
from .constructor_model import Model, from_spec, normalize

bp = Blueprint("constructor", __name__)


@bp.errorhandler(TitanError)
def _refused(error: TitanError):
    """Answered as JSON, for the page to show: a refusal (400; an unknown draft 404), the
    master out of reach (503), or its error (502)."""
    if isinstance(error, UnknownDraftError):
        status = 404
    elif isinstance(error, UsageError):
        status = 400
    else:
        status = 503 if isinstance(error, ConnectionError_) else 502
    return jsonify(ok=False, error=str(error)), status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge):
    return jsonify(ok=False, error="too large: the console takes requests of at most 1 MiB "
                                   "(upload bigger scripts with titanctl)"), 413


@bp.route("/constructor")
def page():
    scripts, unreachable = _library()
    return render_template("constructor.html", nav="constructor", scripts=scripts,
                           library_error=unreachable)


# -- the pipeline's texts and checks ------------------------------------------------------------

@bp.route("/constructor/render", methods=["POST"])
def render():
    model = normalize(_json().get("model"))
    text = to_yaml(model)
    verdict, note = _judge(text, model)
    return jsonify(ok=verdict.ok, yaml=text, python=to_python(model), note=note,
                   problems=_problems(verdict, model, text))


@bp.route("/constructor/validate", methods=["POST"])
def validate():
    text = _yaml_text()
    verdict, note = _judge(text)
    return jsonify(ok=verdict.ok, note=note, problems=[p.as_json() for p in verdict.problems],
                   summary=describe_pipeline(verdict.spec) if verdict.spec else "")


@bp.route("/constructor/parse", methods=["POST"])
def parse():
    verdict = check_yaml(_yaml_text())
    if verdict.spec is None:
        return jsonify(ok=False, problems=[p.as_json() for p in verdict.problems])
    return jsonify(ok=True, model=from_spec(verdict.spec).as_json())


@bp.route("/constructor/deploy", methods=["POST"])
def deploy():
    model = normalize(_json().get("model"))
    text = to_yaml(model)
    pasted = uploads(model)
    with console().pool.client() as client:
        names = {info.name for info in list_files(client, FileArea.SCRIPTS)}
        verdict = check_yaml(text, names | set(pasted))
        if not verdict.ok or verdict.spec is None:
            return jsonify(ok=False, problems=_problems(verdict, model, text)), 400
        for name, content in pasted.items():
            upload_bytes(client, content, name, FileArea.SCRIPTS)
        try:
            accepted = submit_pipeline(client, verdict.spec)
        except SubmissionError as error:  # a parent outside the canvas the master cannot find
            problems = [{"message": p, "line": 0, "keys": []}
                        for p in error.problems or (str(error),)]
            return jsonify(ok=False, problems=problems), 400
    return jsonify(ok=True, run_id=accepted.run_id,
                   url=f"/runs/{quote(accepted.run_id, safe='')}")


def _judge(text: str, model: Model | None = None) -> tuple[Verdict, str]:
    """The verdict on ``text``, its library scripts checked when the master answers (a note
    says so when it does not)."""
    names, unreachable = _library()
    if names is not None and model is not None:
        names = [info["name"] for info in names] + list(uploads(model))
    elif names is not None:
        names = [info["name"] for info in names]
    note = f"the script library was not checked: {unreachable}" if unreachable else ""
    return check_yaml(text, names), note


def _problems(verdict: Verdict, model: Model, text: str) -> list[dict[str, Any]]:
    """Each problem with the keys of the nodes it is about: by its line in the generated
    YAML, else by the job ids it names."""
    owner = _line_owners(text, model)
    by_id: dict[str, list[str]] = {}
    for node in model.nodes:
        by_id.setdefault(node.id, []).append(node.key)
    out = []
    for problem in verdict.problems:
        keys = [owner[problem.line]] if problem.line in owner else [
            key for job in problem.jobs for key in by_id.get(job, [])]
        out.append(problem.as_json(tuple(dict.fromkeys(keys))))
    return out


def _line_owners(text: str, model: Model) -> dict[int, str]:
    """{line number: node key} for the lines of each job in the YAML ``to_yaml`` wrote."""
    owners: dict[int, str] = {}
    index = -1
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("  - "):
            index += 1
        if index >= 0 and line.startswith("  ") and index < len(model.nodes):
            owners[number] = model.nodes[index].key
    return owners


# -- the script library -------------------------------------------------------------------------

@bp.route("/constructor/scripts")
def scripts():
    found, unreachable = _library()
    return jsonify(ok=found is not None, scripts=found or [], error=unreachable)


@bp.route("/constructor/scripts", methods=["POST"])
def upload_script():
    """A script for the library: a file (multipart ``file``, optional ``name``) or JSON
    {name, content}. A name the library has is replaced only with ``replace`` set."""
    if request.files.get("file") is not None:
        sent = request.files["file"]
        name = request.form.get("name") or sent.filename or ""
        content, replace = sent.read(), request.form.get("replace") == "1"
    else:
        data = _json()
        name, content = str(data.get("name") or ""), str(data.get("content") or "").encode()
        replace = data.get("replace") is True
    check_name(name.strip(), "script name")
    name = name.strip()
    with console().pool.client() as client:
        present = {info.name for info in list_files(client, FileArea.SCRIPTS)}
        if name in present and not replace:
            return jsonify(ok=False, exists=True, name=name,
                           error=f"the library has a script {name!r} already"), 409
        info = upload_bytes(client, content, name, FileArea.SCRIPTS)
    return jsonify(ok=True, name=info.name, size=info.size, digest=info.digest)


def _library() -> tuple[list[dict[str, Any]] | None, str]:
    """The library's scripts ({name, size, stored_at}), or (None, why) when the master does
    not answer."""
    try:
        with console().pool.client() as client:
            found = list_files(client, FileArea.SCRIPTS)
    except TitanError as error:
        return None, str(error) or type(error).__name__
    return [{"name": f.name, "size": f.size, "stored_at": f.stored_at} for f in found], ""


# -- drafts -------------------------------------------------------------------------------------

def _drafts() -> Drafts:
    return Drafts(console().options.web_dir / "drafts")


@bp.route("/constructor/drafts")
def drafts():
    return jsonify(ok=True, drafts=[d.as_json() for d in _drafts().list()])


@bp.route("/constructor/drafts", methods=["POST"])
def save_draft():
    data = _json()
    info = _drafts().save(str(data.get("name") or ""), data.get("model"))
    return jsonify(ok=True, draft=info.as_json())


@bp.route("/constructor/drafts/<path:name>")
def load_draft(name: str):
    return jsonify(ok=True, name=name, model=_drafts().load(name))


@bp.route("/constructor/drafts/<path:name>/delete", methods=["POST"])
def delete_draft(name: str):
    _drafts().delete(name)
    return jsonify(ok=True)


# -- requests -----------------------------------------------------------------------------------

def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise UsageError("expected a JSON object (Content-Type: application/json)")
    return data


def _yaml_text() -> str:
    """The YAML of a request: JSON {yaml}, a form field ``yaml``, or the body as text."""
    if request.is_json:
        text = _json().get("yaml")
    elif "yaml" in request.form:
        text = request.form["yaml"]
    else:
        text = request.get_data(as_text=True)
    if not isinstance(text, str) or not text.strip():
        raise UsageError("no YAML: paste a pipeline or choose a .yaml file")
    return text

