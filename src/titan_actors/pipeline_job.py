"""One job of a YAML pipeline: its keys read into a :class:`JobSpec` (private to ``pipeline*``).

Each key has a reader (``pipeline_yaml``) that returns the typed value or says what would be
right. Then the keys are checked against the job's kind: ``port``, ``max_restarts`` and
``health`` are a service's, ``message`` is a gate's question, ``hitl_message`` puts a gate after
a run or a service (``max_wait_seconds``: that gate's deadline, or a gate's own).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from titan_actors.errors import ConfigError
from titan_actors.execution.archives import not_packed
from titan_actors.execution.command import opt_out_of_warm
from titan_actors.job_limits import parse_limit
from titan_actors.pipeline_yaml import (
    Bad,
    Entry,
    Problems,
    _scalar,
    as_argv,
    as_bool,
    as_int,
    as_list,
    as_seconds,
    as_text,
    entries,
    is_null,
    line_of,
    must,
    shown,
    unknown_keys,
)
from titan_actors.scheduler.model import JobKind, JobSpec

# the 16MiB a default frame carries; a bigger "script" is almost surely a data file named by mistake
MAX_SCRIPT_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_WAIT_SECONDS = 172800.0
_ID_RULE = "no spaces, '/' or control characters"  # the scheduler's rule (scheduler/dag.py)
_TAG = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# set by the worker for every job: a pipeline overriding them would break the job's identity
_RESERVED_ENV = frozenset({"TITAN_JOB_ID", "TITAN_RUN_ID", "TITAN_ATTEMPT", "TITAN_TOKEN",
                           "TITAN_WORKER"})


@dataclass(frozen=True, slots=True)
class ParsedJob:
    """What the pipeline needs of a job to check the DAG, with its spec when it had no problem."""

    id: str | None
    line: int
    parents: tuple[tuple[str, int], ...]  # (parent id, line written on)
    spec: JobSpec | None


def _kind(key: str, node: Node) -> JobKind:
    text = as_text(key, node).strip().lower()
    try:
        return JobKind(text)
    except ValueError:
        raise must(key, node, "one of " + ", ".join(k.value for k in JobKind)) from None


def _tag(key: str, node: Node) -> str:
    text = as_text(key, node)
    if not _TAG.fullmatch(text):
        raise must(key, node, "a worker tag such as GENERAL or GPU (letters, digits, '_', '.', "
                              "':' or '-')")
    return text


def as_name(key: str, node: Node) -> str:
    """A non-empty name on one line, without leading or trailing spaces."""
    text = as_text(key, node)
    if text != text.strip() or any(not c.isprintable() for c in text):
        raise must(key, node, "a name on one line, without control characters or spaces "
                              "around it")
    return text


def check_id(key: str, node: Node, text: str) -> str:
    """Return ``text`` when it is a valid job id, else raise Bad for ``node``."""
    if text in (".", ".."):
        raise Bad(f"'{key}' {text!r} is not a valid job id (it names the job's files)", node)
    if not text or "/" in text or any(c.isspace() or not c.isprintable() for c in text):
        raise Bad(f"'{key}' {text!r} is not a valid job id ({_ID_RULE})", node)
    return text


# key -> (JobSpec field or None for keys kept aside, reader)
_READERS: dict[str, tuple[str | None, Callable[[str, Node], Any]]] = {
    "type": ("kind", _kind),
    "file": (None, as_text),
    "command": ("command", as_argv(nonempty=True)),
    "script": ("library", as_text),
    "args": ("args", as_argv(nonempty=False)),
    "depends_on": (None, as_list),
    "priority": ("priority", as_int(0)),
    "requirement": ("requirement", _tag),
    "affinity": ("affinity", as_bool),
    "worker": ("worker", as_name),
    "delay": ("delay", as_seconds(positive=False)),
    "retries": ("retries", as_int(0)),
    "timeout": ("timeout", as_seconds(positive=True)),
    "env": ("env", lambda key, node: node),  # read by _env, which reports each entry
    "port": ("port", as_int(0, 65535)),
    "max_restarts": ("max_restarts", as_int(0)),
    "health": ("health", as_argv(nonempty=True)),
    "hitl_message": ("hitl_message", as_text),
    "max_wait_seconds": ("max_wait_seconds", as_seconds(positive=True)),
    "message": ("message", as_text),
    "warm": (None, as_bool),  # false: never from the warm executor (TITAN_WARM=0 in its env)
    "limits": ("limits", lambda key, node: node),  # read by _limits, which reports each entry
}
KEYS = ("id", *_READERS)


def parse_job(node: Node, index: int, base: Path, problems: Problems,
              archive: str = "") -> ParsedJob:
    """Read job number ``index`` (1-based) of the ``jobs`` list, reporting every problem.

    ``base`` is the absolute folder that ``file`` paths are relative to. In project mode
    ``archive`` names the archive the folder is uploaded as, and a ``file`` becomes an entry of
    it (checked to exist inside the folder) instead of a script carried with the job.
    """
    line = line_of(node)
    if not isinstance(node, MappingNode):
        problems.add(line, f"job #{index} must be a mapping (- id: name, then its keys), "
                           f"got {shown(node)}")
        return ParsedJob(None, line, (), None)
    before = len(problems.found)
    written_id = next((str(v.value) for k, v in node.value
                       if isinstance(k, ScalarNode) and k.value == "id"
                       and isinstance(v, ScalarNode) and v.value), None)
    found = entries(node, problems, f"job '{written_id}': " if written_id else f"job #{index}: ")
    job_id = _read_id(found, index, line, problems)
    where = f"job '{job_id}': " if job_id else f"job #{index}: "
    unknown_keys({k: e for k, e in found.items() if k != "id"}, KEYS, problems, where)
    values: dict[str, Any] = {}
    for key, entry in found.items():
        if key in _READERS:
            try:
                values[key] = _READERS[key][1](key, entry.value)
            except Bad as e:
                problems.add(line_of(e.node) if e.node is not None else entry.line,
                             where + e.message)
    parents = _parents(values.pop("depends_on", []), job_id, problems, where)
    if "env" in values:
        values["env"] = _env(found["env"], problems, where)
    if "limits" in values:
        values["limits"] = _limits(found["limits"], problems, where)
    _check_what_runs(found, values, line, problems, where)
    _check_kind_keys(found, values, problems, where)
    fields = {_READERS[k][0]: v for k, v in values.items() if _READERS[k][0]}
    if values.get("warm") is False:
        fields["env"] = opt_out_of_warm(fields.get("env", {}))
    if "file" in values:
        read = _entry if archive else _script
        fields.update(read(values["file"], found["file"].line, base, problems, where))
        if archive:
            fields["archive"] = archive
    if job_id is None or len(problems.found) > before:
        return ParsedJob(job_id, line, parents, None)
    spec = JobSpec(id=job_id, parents=tuple(p for p, _ in parents), **fields)
    return ParsedJob(job_id, line, parents, spec)


def _limits(entry: Entry, problems: Problems, where: str) -> dict[str, int]:
    """The ``limits:`` mapping (execution/limits.py), each bad entry reported on its line."""
    node = entry.value
    if not isinstance(node, MappingNode):
        problems.add(entry.line, f"{where}'limits' must be a mapping such as "
                                 f"{{memory: 512MiB, cpu: 60}}, got {shown(node)}")
        return {}
    out: dict[str, int] = {}
    for key_node, value_node in node.value:
        name = str(key_node.value)
        value = _scalar(value_node, ("int",))
        if value is None and isinstance(value_node, ScalarNode):
            value = str(value_node.value)  # a size with its unit, or a mistake parse_limit names
        try:
            out[name] = parse_limit(name, value)
        except ConfigError as error:
            problems.add(line_of(value_node), f"{where}{error}")
    return out


def _read_id(found: dict[str, Entry], index: int, line: int, problems: Problems) -> str | None:
    entry = found.get("id")
    if entry is None:
        problems.add(line, f"job #{index} has no 'id'; every job needs a unique id (id: fetch)")
        return None
    try:
        return check_id("id", entry.value, as_text("id", entry.value))
    except Bad as e:
        problems.add(entry.line, f"job #{index}: {e.message}")
        return None


def _parents(items: list[tuple[str, Node]], job_id: str | None, problems: Problems,
             where: str) -> tuple[tuple[str, int], ...]:
    parents: dict[str, int] = {}
    for text, node in items:
        try:
            check_id("depends_on", node, text)
        except Bad as e:
            problems.add(line_of(node), where + e.message)
            continue
        if text == job_id:
            problems.add(line_of(node), f"{where}'depends_on' names the job itself; a job "
                                        "cannot wait for itself (remove it)")
        elif text in parents:
            problems.add(line_of(node), f"{where}'depends_on' names '{text}' twice; keep one")
        else:
            parents[text] = line_of(node)
    return tuple(parents.items())


def _env(entry: Entry, problems: Problems, where: str) -> dict[str, str]:
    if is_null(entry.value):
        return {}
    if not isinstance(entry.value, MappingNode):
        bad = must("env", entry.value, "a mapping of names to strings (NAME: value)")
        problems.add(entry.line, where + bad.message)
        return {}
    env: dict[str, str] = {}
    for name, item in entries(entry.value, problems, f"{where}'env': ").items():
        if not _ENV_NAME.fullmatch(name):
            problems.add(item.line, f"{where}'env' name {name!r} is not a variable name "
                                    "(letters, digits and '_', not starting with a digit)")
        elif name in _RESERVED_ENV:
            problems.add(item.line, f"{where}'env' cannot set {name}: the worker sets it for "
                                    "each job")
        elif not isinstance(item.value, ScalarNode) or is_null(item.value):
            problems.add(item.line, f"{where}'env' {name} must be a string (quote it: "
                                    f"{name}: \"...\"), got {shown(item.value)}")
        elif "\0" in str(item.value.value):
            problems.add(item.line, f"{where}'env' {name} holds a NUL character, which no "
                                    "environment variable can carry")
        else:
            env[name] = str(item.value.value)
    return env


def _script(written: str, line: int, base: Path, problems: Problems,
            where: str) -> dict[str, Any]:
    """Read the script that ``file`` names now, so the job carries it to whichever worker."""
    path = base / written
    try:
        if path.is_dir():
            raise IsADirectoryError(written)
        size = path.stat().st_size
        if size > MAX_SCRIPT_BYTES:
            problems.add(line, f"{where}file {written!r} is {size} bytes, more than the "
                                     f"{MAX_SCRIPT_BYTES} bytes a job can carry; is it a script?")
            return {}
        return {"script_name": path.name, "script": path.read_bytes()}
    except FileNotFoundError:
        problems.add(line, f"{where}file {written!r} does not exist (looked in {base}); "
                                 "a file is relative to the pipeline's folder")
    except IsADirectoryError:
        problems.add(line, f"{where}file {written!r} is a folder (in {base}); expected a "
                                 "script file")
    except OSError as e:
        problems.add(line, f"{where}file {written!r} cannot be read: {e.strerror or e}")
    return {}


def _entry(written: str, line: int, base: Path, problems: Problems,
           where: str) -> dict[str, Any]:
    """Project mode: ``file`` is a path inside the pipeline's folder, run from the archive; it
    must be a file that packing the folder keeps (no link on its path, not inside a folder such
    as ``.git`` or ``venv``), or the job would not find it in the uploaded archive."""
    path = Path(os.path.normpath(base / written))
    if path == base or base not in path.parents:
        problems.add(line, f"{where}file {written!r} is outside the pipeline's folder ({base}); "
                           "in project mode every file is inside the project")
        return {}
    entry = path.relative_to(base).as_posix()
    left_out = not_packed(base, entry)
    if left_out is not None:
        problems.add(line, f"{where}file {written!r} would not be in the project's archive: "
                           f"{left_out}; move the script to a plain folder of the project")
        return {}
    if not path.is_file():
        problems.add(line, f"{where}file {written!r} does not exist (looked in {base})"
                     if not path.exists() else f"{where}file {written!r} is not a file")
        return {}
    return {"script_name": entry}


def _check_what_runs(found: dict[str, Entry], values: dict[str, Any], line: int,
                     problems: Problems, where: str) -> None:
    given = [k for k in ("file", "command", "script") if k in found]
    kind = values.get("type", JobKind.RUN if "type" not in found else None)
    if kind is JobKind.GATE:
        for key in given:
            problems.add(found[key].line, f"{where}a gate runs no process; remove '{key}'")
    elif len(given) > 1:
        problems.add(found[given[1]].line, f"{where}'{given[0]}' and '{given[1]}' are both "
                                           "given; a job runs exactly one of file, command or "
                                           "script")
    elif not given and kind is not None:  # with an unreadable type, "nothing to run" may be wrong
        problems.add(line, f"{where}nothing to run: give 'file' (a script next to the "
                           "pipeline), 'command' (an argv list) or 'script' (a library script)")


def _check_kind_keys(found: dict[str, Entry], values: dict[str, Any], problems: Problems,
                     where: str) -> None:
    """Each key that belongs to one kind of job is on a job of that kind. An unreadable
    ``type`` was reported already: nothing more is said about it."""
    kind = values.get("type", JobKind.RUN if "type" not in found else None)
    if kind is None:
        return

    def wrong(key: str, why: str) -> None:
        problems.add(found[key].line, f"{where}{why}")

    if kind is not JobKind.SERVICE:
        for key in ("port", "max_restarts", "health"):
            if key in values and (key != "port" or values[key]):  # port 0: Titan's default
                wrong(key, f"'{key}' is for services (type: service); this job is a {kind}")
    if kind is JobKind.GATE:
        if "hitl_message" in values:
            wrong("hitl_message", "a gate cannot have 'hitl_message' (it is a gate already); "
                                  "its question is 'message'")
        return
    if "message" in values:
        wrong("message", "'message' is a gate's question (type: gate); to ask for approval "
                         "after this job, give 'hitl_message'")
    if ("hitl_message" not in values
            and values.get("max_wait_seconds", DEFAULT_MAX_WAIT_SECONDS)
            != DEFAULT_MAX_WAIT_SECONDS):
        wrong("max_wait_seconds", "'max_wait_seconds' is a gate's deadline: give "
                                  "'hitl_message' too (a gate after this job), or make the job "
                                  "a gate (type: gate)")


def display_base(source_path: str | os.PathLike[str]) -> Path:
    """Return the absolute folder that a pipeline's ``file`` paths are relative to."""
    return Path(os.path.abspath(os.fspath(source_path))).parent
