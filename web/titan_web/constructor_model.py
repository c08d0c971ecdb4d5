"""The Constructor's canvas model: what the browser sends and gets back, as plain JSON.

A model is ``{"name": str, "nodes": [node, ...], "edges": [{"source": key, "target": key}]}``.
A node is keyed by ``key`` (its identity on the canvas, stable while its job id is edited); its
fields hold what the user typed, as text (``""``: the default), so that a half-typed number
still round-trips to the form and is reported, not lost:

* ``id``, ``kind`` (``run`` | ``service`` | ``gate``);
* what it runs, by ``source``: ``library`` (``library``: a script of the master's library),
  ``paste`` (``content`` saved as ``content_name``: uploaded to the library on deploy) or
  ``command`` (``command``: an argv, split like a shell would);
* ``args``, ``requirement``, ``priority``, ``delay``, ``retries``, ``timeout``, ``affinity``
  (a bool), ``worker``, ``env`` (``NAME=value`` lines), ``hitl_message``,
  ``max_wait_seconds``, ``port``, ``max_restarts``, ``health`` (a command), ``message``;
* ``external``: parents outside the canvas (jobs of earlier runs), separated by spaces;
* ``x``, ``y``: its place on the canvas (kept in drafts, not in the pipeline).

:func:`normalize` reads an untrusted model (bounded, unknown keys dropped); :func:`from_spec`
makes the model of a parsed pipeline. The YAML and Python texts are ``constructor_emit``'s.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any

from titan_actors.errors import UsageError
from titan_actors.scheduler.model import DEFAULT_REQUIREMENT, JobKind, JobSpec, RunSpec

__all__ = ["MAX_NODES", "Model", "Node", "from_spec", "normalize", "pasted_name"]

MAX_NODES = 1000
_MAX_TEXT = 256 * 1024        # one field (a pasted script is the long one)
_KINDS = {kind.value for kind in JobKind}
_SOURCES = ("library", "paste", "command")
_DEFAULTS = JobSpec(id="defaults")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Node:
    """One job on the canvas (see the module docstring); text fields as typed."""

    key: str
    id: str = ""
    kind: str = JobKind.RUN.value
    source: str = "library"
    library: str = ""
    content: str = ""
    content_name: str = ""
    command: str = ""
    args: str = ""
    requirement: str = ""
    priority: str = ""
    delay: str = ""
    retries: str = ""
    timeout: str = ""
    affinity: bool = False
    worker: str = ""
    env: str = ""
    hitl_message: str = ""
    max_wait_seconds: str = ""
    port: str = ""
    max_restarts: str = ""
    health: str = ""
    message: str = ""
    external: str = ""
    x: float | None = None
    y: float | None = None

    def as_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.x is None or self.y is None:
            del out["x"], out["y"]
        return out


_TEXT_FIELDS = tuple(f.name for f in fields(Node)
                     if f.name not in ("key", "kind", "source", "affinity", "x", "y"))


@dataclass
class Model:
    """A pipeline on the canvas: its name, its nodes in order, its edges (parent, child) by
    node key, in the order they were drawn (a child's ``depends_on`` follows that order)."""

    name: str = ""
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def parents(self, node: Node) -> list[Node]:
        by_key = {n.key: n for n in self.nodes}
        return [by_key[parent] for parent, child in self.edges if child == node.key]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "nodes": [n.as_json() for n in self.nodes],
                "edges": [{"source": s, "target": t} for s, t in self.edges]}


def normalize(data: Any) -> Model:
    """The model in ``data`` (decoded JSON from the browser or a draft file), made safe: text
    fields are strings of bounded length, unknown keys and values are dropped, edges name
    nodes of the model (each pair once, never a node to itself).

    Raises:
        UsageError: ``data`` is not a model (not a mapping, nodes not a list, too many
            nodes, a node without a key or with a key used twice).
    """
    if not isinstance(data, dict):
        raise UsageError("the pipeline must be a JSON object with name, nodes and edges")
    raw_nodes = data.get("nodes") or []
    if not isinstance(raw_nodes, list):
        raise UsageError("'nodes' must be a list")
    if len(raw_nodes) > MAX_NODES:
        raise UsageError(f"the pipeline has {len(raw_nodes)} jobs; the constructor takes at "
                         f"most {MAX_NODES} (submit bigger pipelines with titanctl)")
    nodes = [_node(raw, i) for i, raw in enumerate(raw_nodes, 1)]
    keys = [n.key for n in nodes]
    if len(set(keys)) != len(keys):
        raise UsageError("two nodes have the same key; reload the constructor")
    known = set(keys)
    edges: list[tuple[str, str]] = []
    raw_edges = data.get("edges") or []
    for raw in raw_edges if isinstance(raw_edges, list) else []:
        if not isinstance(raw, dict):
            continue
        pair = (str(raw.get("source", "")), str(raw.get("target", "")))
        if pair[0] in known and pair[1] in known and pair[0] != pair[1] and pair not in edges:
            edges.append(pair)
    return Model(_text(data.get("name")), nodes, edges)


def _node(raw: Any, index: int) -> Node:
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or not raw["key"]:
        raise UsageError(f"node #{index} has no key")
    node = Node(key=raw["key"][:64])
    for name in _TEXT_FIELDS:
        setattr(node, name, _text(raw.get(name)))
    kind = _text(raw.get("kind")).lower()
    node.kind = kind if kind in _KINDS else JobKind.RUN.value
    source = _text(raw.get("source"))
    node.source = source if source in _SOURCES else "library"
    node.affinity = raw.get("affinity") is True
    x, y = raw.get("x"), raw.get("y")
    if all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
           for v in (x, y)):
        node.x, node.y = float(x), float(y)
    return node


def _text(value: Any) -> str:
    """A field's text: strings as they are (lone surrogates replaced), numbers written out,
    anything else empty."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return _number(value) if math.isfinite(value) else ""
    if not isinstance(value, str):
        return ""
    value = value[:_MAX_TEXT]
    return value.encode("utf-8", "replace").decode("utf-8")  # "\ud800" -> "?"


def pasted_name(node: Node) -> str:
    """The library name a pasted script is uploaded as: the name given for it (default
    ``<id>.py``) with the first 8 hex digits of its SHA-256 before the suffix, so that the
    YAML shows, before deploy, exactly the name deploy uploads, and a changed script never
    replaces the one an earlier run used."""
    given = PurePosixPath(node.content_name.strip() or f"{node.id.strip() or 'script'}.py").name
    suffix = PurePosixPath(given).suffix
    stem = _SAFE_NAME.sub("-", given[: len(given) - len(suffix)] if suffix else given)
    stem = stem.strip("-.") or "script"
    digest = hashlib.sha256(node.content.encode()).hexdigest()[:8]
    suffix = _SAFE_NAME.sub("", suffix) if suffix != "." else ""
    return f"{stem[:80]}-{digest}{suffix[:16]}"


# -- from a parsed pipeline ---------------------------------------------------------------------

def from_spec(spec: RunSpec) -> Model:
    """The canvas model of a parsed pipeline: one node per job (keys ``n1``, ``n2``, ...),
    an edge per parent in the pipeline, the other parents in ``external``. Fields at their
    default are empty, so loading the YAML the constructor wrote gives back its model."""
    key_of = {job.id: f"n{i}" for i, job in enumerate(spec.jobs, 1)}
    nodes, edges = [], []
    for job in spec.jobs:
        nodes.append(_node_of(job, key_of[job.id], [p for p in job.parents
                                                     if p not in key_of]))
        edges.extend((key_of[p], key_of[job.id]) for p in job.parents if p in key_of)
    return Model(spec.name, nodes, edges)


def _node_of(job: JobSpec, key: str, external: list[str]) -> Node:
    node = Node(key=key, id=job.id, kind=job.kind.value, affinity=job.affinity,
                worker=job.worker, hitl_message=job.hitl_message, message=job.message,
                external=" ".join(external))
    if job.library:
        node.source, node.library = "library", job.library
    elif job.command:
        node.source, node.command = "command", shlex.join(job.command)
    elif job.script:
        node.source, node.content_name = "paste", job.script_name
        node.content = job.script.decode("utf-8", "replace")
    node.args = shlex.join(job.args)
    node.health = shlex.join(job.health)
    node.env = "\n".join(f"{name}={value}" for name, value in job.env.items())
    node.requirement = "" if job.requirement == DEFAULT_REQUIREMENT else job.requirement
    for name in ("priority", "delay", "retries", "timeout", "port", "max_restarts",
                 "max_wait_seconds"):
        value = getattr(job, name)
        setattr(node, name, "" if value == getattr(_DEFAULTS, name) else _number(value))
    return node


def _number(value: int | float) -> str:
    """A number as the YAML and the form show it: ``3`` for 3.0, ``0.5``, ``1e-05``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
