"""The Constructor's texts: the YAML pipeline and the native SDK code of a canvas model.

Both come from one list of (key, value) per job (:func:`job_values`): only what differs from
the defaults, only the keys the job's kind takes, in a fixed order. So the YAML is canonical:
loading it (``constructor_model.from_spec``) and writing it again gives the same text.

A field that does not read as its type (``priority: abc``) is written as a quoted string, so
the pipeline's own checks report it with its line instead of the constructor hiding it.
Strings are written plain when that cannot change their meaning, else double-quoted with
every character outside printable Unicode escaped (a raw U+0085 or U+2028 would be read as a
line break).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from titan_actors.scheduler.model import DEFAULT_REQUIREMENT, JobKind, JobSpec

from .constructor_model import Model, Node, pasted_name

__all__ = ["PASTED", "job_values", "to_python", "to_yaml", "uploads", "yaml_string"]

PASTED = "pasted: deploy uploads it to the library"
_DEFAULTS = JobSpec(id="defaults")
_INTS = ("priority", "retries", "port", "max_restarts")
_SECONDS = ("delay", "timeout", "max_wait_seconds")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_RESERVED = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan",
                       "inf"})
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_PYTHON_NAMES = {"type": "kind", "script": "library", "depends_on": "parents"}
_WIDTH = 99


class Raw(str):
    """A field's text that does not read as its type: written quoted, for the checks to
    report."""


def uploads(model: Model) -> dict[str, bytes]:
    """The pasted scripts deploy uploads to the library: {library name: content}."""
    return {pasted_name(node): node.content.encode() for node in model.nodes
            if node.kind != JobKind.GATE.value and node.source == "paste" and node.content}


def job_values(model: Model, node: Node) -> list[tuple[str, Any]]:
    """The YAML keys of one job and their values (str, int, float, bool, list, dict or Raw),
    in the order they are written. ``script`` of a pasted script is its library name."""
    kind = node.kind
    out: list[tuple[str, Any]] = [("id", node.id)]
    if kind != JobKind.RUN.value:
        out.append(("type", kind))
    if kind != JobKind.GATE.value:
        out.extend(_what_runs(node))
        if node.args.strip():
            out.append(("args", _joined(node.args)))
    parents = [p.id for p in model.parents(node)] + node.external.split()
    if parents:
        out.append(("depends_on", parents))
    out.extend(_number(node, name) for name in ("priority", "delay"))
    if node.requirement and node.requirement != DEFAULT_REQUIREMENT:
        out.append(("requirement", node.requirement))
    if node.affinity:
        out.append(("affinity", True))
    if node.worker:
        out.append(("worker", node.worker))
    out.extend(_number(node, name) for name in ("retries", "timeout"))
    env = _env(node.env)
    if env:
        out.append(("env", env))
    if kind == JobKind.SERVICE.value:
        out.extend(_number(node, name) for name in ("port", "max_restarts"))
        if node.health.strip():
            out.append(("health", _argv(node.health)))
    if kind == JobKind.GATE.value:
        if node.message:
            out.append(("message", node.message))
    elif node.hitl_message:
        out.append(("hitl_message", node.hitl_message))
    if kind == JobKind.GATE.value or node.hitl_message:
        out.append(_number(node, "max_wait_seconds"))
    return [(key, value) for key, value in out if value is not None]


def _what_runs(node: Node) -> list[tuple[str, Any]]:
    if node.source == "library" and node.library:
        return [("script", node.library)]
    if node.source == "paste" and node.content:
        return [("script", pasted_name(node))]
    if node.source == "command" and node.command.strip():
        return [("command", _argv(node.command))]
    return []


def _number(node: Node, name: str) -> tuple[str, Any]:
    text = getattr(node, name).strip()
    default = getattr(_DEFAULTS, name)
    if not text:
        return name, None
    if name in _INTS:
        value: Any = int(text) if _INT.fullmatch(text) else None
    else:
        value = float(text) if _FLOAT.fullmatch(text) else None
        if value is not None and value.is_integer() and abs(value) < 1e15:
            value = int(value)
    if value is None or value in (float("inf"), float("-inf")):
        return name, Raw(text)
    return name, None if value == default else value


def _argv(text: str) -> list[str] | Raw:
    try:
        return shlex.split(text)
    except ValueError:
        return Raw(text)


def _joined(text: str) -> str:
    """Arguments as one string, respaced the way a shell would split them."""
    try:
        return shlex.join(shlex.split(text))
    except ValueError:
        return Raw(text)


def _env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.partition("=")
            env[name.strip()] = value
    return env


# -- YAML -------------------------------------------------------------------------------------

def to_yaml(model: Model) -> str:
    """The pipeline as ``titanctl submit`` takes it (COMPAT.md, "YAML pipelines")."""
    lines = ["# Built in the Titan console's Constructor.",
             "# Submit it with: titanctl submit pipeline.yaml",
             f"name: {yaml_string(model.name)}", 'version: "1.0"']
    if not model.nodes:
        return "\n".join([*lines, "jobs: []"]) + "\n"
    lines.append("jobs:")
    for node in model.nodes:
        pasted = node.source == "paste" and node.kind != JobKind.GATE.value
        for i, (key, value) in enumerate(job_values(model, node)):
            lead = "  - " if i == 0 else "    "
            if isinstance(value, dict):
                lines.append(f"{lead}{key}:")
                lines.extend(f"      {yaml_string(k)}: {yaml_string(v)}"
                             for k, v in value.items())
                continue
            note = f"  # {PASTED}" if pasted and key == "script" else ""
            lines.append(f"{lead}{key}: {_yaml_value(value)}{note}")
    return "\n".join(lines) + "\n"


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Raw):
        return _quoted(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_string(item) for item in value) + "]"
    return yaml_string(value)


def yaml_string(text: str) -> str:
    """``text`` as a YAML scalar that reads back as exactly that string."""
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return _quoted(text)


def _quoted(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _printable(code):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def _printable(code: int) -> bool:
    """Kept as it is inside double quotes: printable, and not a character YAML reads as a
    line break (U+0085, U+2028, U+2029) or a byte-order mark."""
    if code in (0x2028, 0x2029, 0xFEFF):
        return False
    return (0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or code >= 0x10000)


# -- Python -----------------------------------------------------------------------------------

def to_python(model: Model) -> str:
    """The same pipeline as native SDK code (``titan_sdk.Job`` / ``Pipeline`` / ``Titan``)."""
    jobs = []
    for node in model.nodes:
        values = job_values(model, node)
        arguments = [repr(node.id)] + [f"{_PYTHON_NAMES.get(key, key)}={_python(value)}"
                                       for key, value in values[1:]]
        if node.source == "paste" and node.kind != JobKind.GATE.value and node.content:
            jobs.append(f"    # {PASTED}")
        one_line = f"    Job({', '.join(arguments)}),"
        if len(one_line) <= _WIDTH:
            jobs.append(one_line)
        else:
            jobs.append("    Job(" + (",\n" + " " * 8).join(arguments) + "),")
    body = "[\n" + "\n".join(jobs) + "\n]" if jobs else "[]"
    return (
        "# Built in the Titan console's Constructor: the same pipeline as the YAML.\n"
        "from titan_sdk import Job, Pipeline, Titan\n\n"
        f"pipeline = Pipeline({model.name!r}, {body})\n\n"
        "with Titan() as titan:  # the master at TITAN_HOST:TITAN_PORT\n"
        "    run = titan.submit(pipeline)\n"
        "    result = run.wait()  # raises RunFailed if a job failed\n"
        "    print(run.run_id, result.state.value)\n")


def _python(value: Any) -> str:
    if isinstance(value, Raw):
        return repr(str(value))
    return repr(value)
