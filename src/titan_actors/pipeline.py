"""YAML pipelines: a file of jobs read into a validated :class:`RunSpec`.

The schema is Titan's (see COMPAT.md, "YAML pipelines")::

    name: nightly-report        # required: the DAG's name
    version: "1.0"              # informational
    project: false              # true: upload this folder as <name>.zip, run files inside it
    jobs:
      - id: fetch               # required, unique in the file
        file: jobs/fetch.py     # relative to this file's folder, read when the pipeline loads
        args: "--day today"     # split like a shell would, without a shell (or a list)
        depends_on: [other]     # or one id; an id not in the file is resolved by the master
        priority: 7             # higher runs first
        delay: 3                # seconds (the SDK's delay is milliseconds)
        requirement: GPU        # the tag a worker must have
        affinity: true          # prefer the worker that ran the parent
        retries: 2              # extra attempts after the first
        timeout: 60             # seconds
        env: {MODE: fast}
        worker: gpu-box-1       # pin to a named worker
        hitl_message: "Publish?"  # a human approval gate hitl-gate-fetch right after this job
        max_wait_seconds: 900   # the gate's deadline (default 48 h): then its children skip
      - id: api
        type: service           # run (default) | service | gate
        file: api.py            # runs until stopped; children go ahead once it is ready
        port: 8123              # optional: without it the worker gives it a free one (PORT)
        max_restarts: 3         # restarts after it exits (default: no limit)
        health: [curl, -fs, "http://127.0.0.1:8123/health"]  # ready when this exits 0
                                # (default: when the port accepts connections)
      - id: ship-it
        type: gate              # runs nothing: waits for a person's approve or reject
        message: "Deploy to production?"
        max_wait_seconds: 3600
        depends_on: [api]
      - id: report
        script: report.py       # a script of the master's library (deploy_script)
      - id: clean
        command: [rm, -f, tmp.txt]   # an argv instead of a file

Every problem in the file is collected and raised as one
:class:`~titan_actors.errors.PipelineError`, one problem per line, each naming the file, the line
and the key, and what would be right: among them, a key on a job of the wrong kind (``port`` on
a run, ``message`` on a run, ``hitl_message`` on a gate, ``max_wait_seconds`` without a gate).

Project mode (``project: true``): each ``file`` must lie inside the pipeline's folder; the job
becomes an archive job running that entry of ``<name>.zip`` from inside the unpacked project.
:func:`pipeline_project` tells the submitter which folder to upload under which name first.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from titan_actors.errors import PipelineError
from titan_actors.pipeline_job import KEYS as JOB_KEYS
from titan_actors.pipeline_job import ParsedJob, as_name, display_base, parse_job
from titan_actors.pipeline_yaml import (
    Bad,
    Entry,
    Problems,
    as_bool,
    compose,
    entries,
    line_of,
    shown,
    unknown_keys,
)
from titan_actors.scheduler.gates import GATE_PREFIX
from titan_actors.scheduler.model import DEFAULT_REQUIREMENT, JobKind, JobSpec, RunSpec

__all__ = ["JOB_KEYS", "TOP_KEYS", "describe_pipeline", "load_pipeline", "parse_pipeline",
           "pipeline_project"]

TOP_KEYS = ("name", "version", "project", "jobs")
_T = TypeVar("_T")
_DEFAULTS = JobSpec(id="defaults")


def load_pipeline(path: str | os.PathLike[str]) -> RunSpec:
    """Read and validate the YAML pipeline at ``path``; see :func:`parse_pipeline`.

    Raises:
        PipelineError: the file is missing, unreadable, not UTF-8, not valid YAML, or invalid
            as a pipeline; the message names the file (and line) and says what would be right.
    """
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{source}: pipeline file does not exist "
                            f"(looked for {os.path.abspath(source)})") from None
    except IsADirectoryError:
        raise PipelineError(f"{source}: is a folder; give the pipeline's YAML file "
                            f"(such as {os.path.join(source, 'pipeline.yaml')})") from None
    except OSError as e:
        raise PipelineError(f"{source}: cannot be read: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PipelineError(f"{source}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                            "save the file as UTF-8") from None
    return parse_pipeline(text, source)


def parse_pipeline(text: str, source_path: str | os.PathLike[str]) -> RunSpec:
    """Validate the YAML pipeline ``text`` that was read from ``source_path``.

    ``source_path`` names the file in every message and its folder is where ``file`` paths are
    looked up (relative to the current directory when it is relative). Scripts are read now,
    so the returned spec carries their content.

    Returns:
        The run: its name, its jobs in file order (parents as written; a parent that is not in
        the file is left for the master to resolve) and ``source`` = ``source_path``.

    Raises:
        PipelineError: listing every problem, one per line, as ``file:line: job 'x': ...``.
    """
    source = os.fspath(source_path)
    problems = Problems(source)
    root = _root(text, source)
    top = entries(root, problems, "")
    unknown_keys(top, TOP_KEYS, problems, "")
    if "name" not in top:
        problems.add(line_of(root), "'name' is missing; give the pipeline a name "
                                    "(name: nightly-report)")
    name = _top_value(top, "name", as_name, problems)
    _check_version(top.get("version"), problems)
    project = _top_value(top, "project", as_bool, problems)
    archive = f"{name}.zip" if project and name else ""
    jobs = _jobs(top.get("jobs"), line_of(root), display_base(source), problems, archive)
    problems.raise_if_any()  # so name was read, and every job has its spec
    return RunSpec(name=str(name), jobs=tuple(job.spec for job in jobs if job.spec is not None),
                   source=source)


def pipeline_project(spec: RunSpec) -> tuple[Path, str] | None:
    """(folder, archive name) to upload before submitting a project-mode pipeline, else None."""
    archive = f"{spec.name}.zip"
    if spec.source and any(job.archive == archive for job in spec.jobs):
        return display_base(spec.source), archive
    return None


def _root(text: str, source: str) -> MappingNode:
    root = compose(text, source)
    if root is None:
        raise PipelineError(f"{source}: the file is empty; a pipeline needs 'name' and 'jobs'")
    if not isinstance(root, MappingNode):
        raise PipelineError(f"{source}:{line_of(root)}: a pipeline must be a mapping with 'name' "
                            f"and 'jobs' at the top, got {shown(root)}")
    return root


def _top_value(top: dict[str, Entry], key: str, read: Callable[[str, Node], _T],
               problems: Problems) -> _T | None:
    entry = top.get(key)
    if entry is None:
        return None
    try:
        return read(key, entry.value)
    except Bad as e:
        problems.add(entry.line, e.message)
        return None


def _check_version(entry: Entry | None, problems: Problems) -> None:
    if entry is not None and isinstance(entry.value, MappingNode | SequenceNode):
        problems.add(entry.line, f"'version' must be a string such as \"1.0\", "
                                 f"got {shown(entry.value)}")


def _jobs(entry: Entry | None, root_line: int, base: Path, problems: Problems,
          archive: str = "") -> list[ParsedJob]:
    if entry is None:
        problems.add(root_line, "'jobs' is missing; a pipeline needs a list of jobs "
                                "(jobs: [- id: hello, file: hello.py])")
        return []
    if not isinstance(entry.value, SequenceNode) or not entry.value.value:
        got = "an empty list" if isinstance(entry.value, SequenceNode) else shown(entry.value)
        problems.add(entry.line, "'jobs' must be a non-empty list of jobs (- id: ..., file: ...), "
                                 f"got {got}")
        return []
    jobs = [parse_job(node, i, base, problems, archive)
            for i, node in enumerate(entry.value.value, 1)]
    first: dict[str, int] = {}
    for job in jobs:
        if job.id is None:
            continue
        if job.id in first:
            problems.add(job.line, f"job id '{job.id}' is used twice (first on line "
                                   f"{first[job.id]}); job ids must be unique")
        else:
            first[job.id] = job.line
    _report_cycles(jobs, problems)
    return jobs


def _report_cycles(jobs: list[ParsedJob], problems: Problems) -> None:
    """Report each cycle among the jobs of the file once, at the dependency that closes it
    (self-dependencies are reported apart). Iterative, so a long chain needs no recursion."""
    edges = {job.id: [(p, line) for p, line in job.parents if p != job.id]
             for job in jobs if job.id is not None}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if root in state:
            continue
        state[root] = 1
        path, stack = [root], [iter(edges[root])]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            parent, line = step
            if state.get(parent) == 1:
                cycle = " -> ".join([*path[path.index(parent):], parent])
                problems.add(line, f"job '{path[-1]}': 'depends_on' makes a cycle ({cycle}, "
                                   "each waiting for the next); remove one of these dependencies")
            elif parent in edges and parent not in state:
                state[parent] = 1
                path.append(parent)
                stack.append(iter(edges[parent]))


def describe_pipeline(spec: RunSpec) -> str:
    """Return a short human summary of a run: a line for the run (jobs and edges counted), then
    one per job in file order saying what it runs, its settings that differ from the defaults,
    and the jobs it waits for (its incoming edges)."""
    ids = {job.id for job in spec.jobs}
    edges = [(parent, job.id) for job in spec.jobs for parent in job.parents]
    lines = [f"pipeline '{spec.name}'" + (f" ({spec.source})" if spec.source else "")
             + f": {len(spec.jobs)} job{'s' * (len(spec.jobs) != 1)}, "
             + f"{len(edges)} edge{'s' * (len(edges) != 1)}"]
    width = max((len(job.id) for job in spec.jobs), default=0)
    for job in spec.jobs:
        lines.append(f"  {job.id:<{width}}  {_describe_job(job)}")
    outside = sorted({parent for parent, _ in edges if parent not in ids})
    if outside:
        lines.append("parents outside this file (resolved by the master at submit): "
                     + ", ".join(outside))
    return "\n".join(lines)


def _describe_job(job: JobSpec) -> str:
    what = [job.kind.value]
    if job.kind is JobKind.GATE:
        what.append(repr(job.message) if job.message else "(no message)")
    if job.archive:
        what.append(f"{job.archive}/{job.script_name}")
    elif job.library:
        what.append(f"library script {job.library}")
    elif job.script_name:
        what.append(job.script_name)
    if job.command:
        what.append(shlex.join(job.command))
    if job.args:
        what.append(shlex.join(job.args))
    details = [f"priority {job.priority}" if job.priority != _DEFAULTS.priority else "",
               f"delay {job.delay:g}s" if job.delay else "",
               f"needs {job.requirement}" if job.requirement != DEFAULT_REQUIREMENT else "",
               "affinity" if job.affinity else "",
               f"on worker {job.worker}" if job.worker else "",
               f"timeout {job.timeout:g}s" if job.timeout else "",
               f"retries {job.retries}" if job.retries != _DEFAULTS.retries else "",
               f"env {', '.join(sorted(job.env))}" if job.env else "",
               f"port {job.port}" if job.port else "",
               f"max restarts {job.max_restarts}" if job.max_restarts >= 0 else "",
               f"health {shlex.join(job.health)}" if job.health else "",
               f"then gate {GATE_PREFIX}{job.id} {job.hitl_message!r}" if job.hitl_message
               else "",
               f"waits {job.max_wait_seconds:g}s for a decision"
               if (job.kind is JobKind.GATE or job.hitl_message)
               and job.max_wait_seconds != _DEFAULTS.max_wait_seconds else "",
               f"after {', '.join(job.parents)}" if job.parents else ""]
    shown_details = "; ".join(d for d in details if d)
    return " ".join(what) + (f"  [{shown_details}]" if shown_details else "")
