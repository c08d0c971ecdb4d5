"""Validation of a submission: every problem found at once, each saying where it is.

Checks each job's fields, that ids are unique (within the submission and against the jobs the
run already has), that every parent is known, and that the jobs form no cycle. Iterative
throughout (Kahn's algorithm), so a 10k-deep chain needs no recursion and a 100k-job DAG
validates in linear time.

A job id names files and directories (the master's ``<id>.log``, the worker's script folder),
so it is printable, without whitespace or '/', and at most :data:`MAX_ID_BYTES` bytes of UTF-8.
Nothing a process is started with (command, args, health, env) may hold a NUL, which no
argument or variable can carry: refused here, not when the job fails to start.
"""

from __future__ import annotations

import difflib
import gc
import math
import re
from collections import deque
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import SubmissionError
from ..job_limits import limit_problems
from .model import JobKind, JobSpec

__all__ = ["MAX_ID_BYTES", "Plan", "check_jobs", "collector_held", "field_problems"]

MAX_ID_BYTES = 200  # "<id>.log" and "hitl-gate-<id>" stay well under a file name's 255 bytes

_MAX_LISTED = 50  # problems spelled out in the message; the rest are counted
_CYCLE_SHOWN = (10, 5)  # a long cycle shows its first and last jobs
_BAD_ID = re.compile(r"[\s/]")
_SPACE = re.compile(r"\s")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_PLAIN_NUMBERS = (int, float)  # exactly: bool (an int) is no number of seconds
_HUGE = 1e308  # below it a plain number is finite (larger ones take the long way)
_SUGGEST_AMONG = 5000  # ids a "did you mean" looks through (difflib is quadratic-ish)
# the hint runs in the master's actor: bounded so that no submission can stall it (measured
# before the bounds: 50 unknown parents among 5,000 ids of 190 characters took 614 s)
_MAX_HINTS = 3          # unknown parents that get a hint
_HINT_MAX_LENGTH = 64   # longer ids get none
_HINT_CANDIDATES = 500  # ids of about the same length compared, at most
_SHOWN_ID = 60  # characters of a bad id quoted in a message


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid submission: ``order`` lists the new job ids, parents before children;
    ``parents`` maps each parent id found outside the submission (and the run) to its run."""

    order: tuple[str, ...]
    parents: dict[str, str]


def check_jobs(jobs: Sequence[JobSpec], *, resolve: Callable[[str], str | None],
               existing: Container[str] = frozenset(), what: str = "submission") -> Plan:
    """Validate ``jobs`` and return their plan.

    Args:
        jobs: the new jobs.
        resolve: maps a parent id that is neither a new job nor in ``existing`` to the run that
            holds it, or None when no run does.
        existing: the ids the run already has (when jobs are added to a run): they may be
            parents, and no new job may reuse them.
        what: how the message names the submission (e.g. ``run 'nightly'``).

    Raises SubmissionError listing every problem.
    """
    problems: list[str] = []
    if not jobs:
        problems.append("no jobs: a submission needs at least one job")
    ids: dict[str, JobSpec] = {}
    for number, spec in enumerate(jobs, 1):
        problems.extend(field_problems(spec, number))
        if spec.id in ids:
            problems.append(f"job '{spec.id}': the id is used twice in this submission")
        elif spec.id in existing:
            problems.append(f"job '{spec.id}': the id is already used in this run")
        else:
            ids[spec.id] = spec
    parents = _resolve_parents(ids, existing, resolve, problems)
    order, cycle = _topological(ids)
    if cycle:
        problems.append("cycle: " + " -> ".join(cycle) + " (each job waits for the one before)")
    if problems:
        raise SubmissionError(_message(what, problems), tuple(problems))
    return Plan(order, parents)


@contextmanager
def collector_held() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a submission is validated and added.

    A big submission allocates objects that all live on (jobs, keys, indexes), so the
    collector, started by the count of allocations, would walk the whole growing heap again
    and again meanwhile: measured, about a third of a 100,000-job submission's time. Nothing
    inside yields, so no other greenlet runs while it is held; it runs as before right after
    (and stays off when it was off).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def field_problems(spec: JobSpec, number: int = 0) -> list[str]:
    """The problems of one job's own fields (not its relations), each naming the job."""
    if not spec.id:
        return [f"job #{number}: the id is empty"]
    out: list[str] = []
    if _BAD_ID.search(spec.id):
        where = f"job {_shown(spec.id)}"
        out.append(f"{where}: the id must not contain whitespace or '/'")
    elif spec.id in (".", ".."):
        where = f"job {_shown(spec.id)}"
        out.append(f"{where}: the id names files of the job (its log, its script): '.' and "
                   f"'..' cannot")
    elif not spec.id.isprintable():
        where = f"job {_shown(spec.id)}"
        out.append(f"{where}: the id must not contain control or other unprintable "
                   "characters (NUL, escapes, direction marks)")
    elif len(spec.id) > MAX_ID_BYTES // 4 and len(spec.id.encode()) > MAX_ID_BYTES:
        where = f"job {_shown(spec.id)}"
        out.append(f"{where}: the id is {len(spec.id.encode())} bytes long (UTF-8); at most "
                   f"{MAX_ID_BYTES}")
    else:
        where = f"job '{spec.id}'"
    has_script = bool(spec.script_name or spec.script or spec.library or spec.archive)
    if spec.kind is JobKind.GATE:
        out.extend(_gate_problems(spec, where, has_script))
    else:
        out.extend(_file_problems(spec, where))
        if has_script and spec.command:
            out.append(f"{where}: has both a script and a command; give one of them")
        elif not has_script and not spec.command:
            out.append(f"{where}: needs a script (file) or a command")
        if spec.command and not spec.command[0]:
            out.append(f"{where}: the command's program (command[0]) is empty")
    out.extend(_nul_problems(spec, where))
    out.extend(_service_problems(spec, where))
    out.extend(limit_problems(spec.limits, where))
    out.extend(_number_problems(spec, where))
    if not spec.requirement or _SPACE.search(spec.requirement):
        out.append(f"{where}: requirement must be one tag without whitespace, "
                   f"got {spec.requirement!r}")
    if _BAD_ID.search(spec.worker):
        out.append(f"{where}: worker must be a worker name, got {spec.worker!r}")
    if len(set(spec.parents)) != len(spec.parents) or "" in spec.parents:
        seen: set[str] = set()
        for parent in spec.parents:
            if not parent:
                out.append(f"{where}: a parent id is empty")
            elif parent in seen:
                out.append(f"{where}: parent '{parent}' is listed twice")
            seen.add(parent)
    return out


def _shown(job_id: str) -> str:
    """A bad id as a message quotes it: escaped, and cut when long."""
    if len(job_id) <= _SHOWN_ID:
        return repr(job_id)
    return f"{job_id[:_SHOWN_ID]!r}... ({len(job_id)} characters)"


def _nul_problems(spec: JobSpec, where: str) -> list[str]:
    """What the job's process would be started with must be free of NULs (and env names of
    '='): checked as the worker would, at submission instead of at the start."""
    out = [f"{where}: {key}[{index}] holds a NUL character, which no program argument can "
           "carry" for key in ("command", "args", "health")
           for index, value in enumerate(getattr(spec, key)) if "\0" in value]
    for name, value in spec.env.items() if spec.env else ():
        if not name or "=" in name or "\0" in name or "\0" in value:
            out.append(f"{where}: env variable {name!r} is invalid (a name must be non-empty "
                       "without '=' or NUL; a value without NUL)")
    return out


def _gate_problems(spec: JobSpec, where: str, has_script: bool) -> list[str]:
    """A gate runs nothing and waits a positive time for its decision."""
    out = []
    if has_script or spec.command:
        out.append(f"{where}: a gate runs no process; remove its script or command")
    if spec.hitl_message:
        out.append(f"{where}: a gate cannot have hitl_message (it is a gate already)")
    if not (isinstance(spec.max_wait_seconds, int | float) and spec.max_wait_seconds > 0
            and math.isfinite(spec.max_wait_seconds)):
        out.append(f"{where}: max_wait_seconds must be a number of seconds > 0, got "
                   f"{spec.max_wait_seconds!r}")
    return out


def _service_problems(spec: JobSpec, where: str) -> list[str]:
    out = []
    if type(spec.port) is not int or not 0 <= spec.port <= 65535:
        out.append(f"{where}: port must be 0 (any free port) to 65535, got {spec.port!r}")
    if type(spec.max_restarts) is not int or spec.max_restarts < -1:
        out.append(f"{where}: max_restarts must be a whole number >= 0, or -1 for no limit, "
                   f"got {spec.max_restarts!r}")
    if spec.kind is not JobKind.SERVICE and (spec.port or spec.health):
        key = "port" if spec.port else "health"
        out.append(f"{where}: {key} is for services (type: service)")
    if spec.health and not spec.health[0]:
        out.append(f"{where}: the health command's program (health[0]) is empty")
    if spec.hitl_message and spec.max_wait_seconds <= 0:
        out.append(f"{where}: max_wait_seconds must be > 0 for its gate")
    return out


def _file_problems(spec: JobSpec, where: str) -> list[str]:
    """An archive job names its archive and an entry inside it; a library job only its name."""
    out = []
    if spec.archive:
        if spec.library or spec.script or spec.command:
            out.append(f"{where}: an archive job runs an entry of its archive; it has no "
                       "script content, library script or command of its own")
        entry = spec.script_name
        if not entry:
            out.append(f"{where}: archive job needs the entry to run inside {spec.archive!r} "
                       f"(filename '{spec.archive}/path/main.py')")
        elif (entry.startswith("/") or "\\" in entry or "\0" in entry
              or any(part in ("", ".", "..") for part in entry.split("/"))):
            out.append(f"{where}: archive entry {entry!r} must be a relative path inside the "
                       "archive without '.', '..' or empty parts")
        if "/" in spec.archive or spec.archive in (".", ".."):
            out.append(f"{where}: archive {spec.archive!r} must be the name of an uploaded "
                       "file, without '/'")
    elif spec.file_digest and not spec.library:
        out.append(f"{where}: file_digest is set without an archive or a library script")
    if spec.file_digest and not _DIGEST.fullmatch(spec.file_digest):
        out.append(f"{where}: file_digest must be a SHA-256 (64 lowercase hex digits)")
    if spec.library:
        if spec.script or spec.command:
            out.append(f"{where}: has a library script and its own script or command; give "
                       "one of them")
        if "/" in spec.library or spec.library in (".", ".."):
            out.append(f"{where}: library script {spec.library!r} must be a script name "
                       "without '/'")
    return out


def _number_problems(spec: JobSpec, where: str) -> list[str]:
    delay, timeout = spec.delay, spec.timeout
    if (type(spec.priority) is int and spec.priority >= 0 and type(spec.retries) is int
            and spec.retries >= 0 and type(delay) in _PLAIN_NUMBERS and 0 <= delay < _HUGE
            and type(timeout) in _PLAIN_NUMBERS and 0 <= timeout < _HUGE):
        return []  # (every job of a big submission: the checks below, without their loops)
    out = []
    for name in ("priority", "retries"):
        value = getattr(spec, name)
        if type(value) is not int or value < 0:
            out.append(f"{where}: {name} must be a whole number >= 0, got {value!r}")
    for name in ("delay", "timeout"):
        value = getattr(spec, name)
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not math.isfinite(value) or value < 0):
            out.append(f"{where}: {name} must be a number of seconds >= 0, got {value!r}")
    return out


def _resolve_parents(ids: dict[str, JobSpec], existing: Container[str],
                     resolve: Callable[[str], str | None], problems: list[str]) -> dict[str, str]:
    resolved: dict[str, str | None] = {}
    unknown = 0
    for spec in ids.values():
        for parent in spec.parents:
            if not parent or parent in ids or parent in existing:
                continue
            if parent not in resolved:
                resolved[parent] = resolve(parent)
            if resolved[parent] is None:
                unknown += 1
                hint = _close_id(parent, ids, existing) if unknown <= _MAX_HINTS else ""
                problems.append(f"job '{spec.id}': parent '{parent}' is unknown: it is not in "
                                "this submission and no run holds a job of that id" + hint)
    return {parent: run for parent, run in resolved.items() if run is not None}


def _close_id(parent: str, ids: dict[str, JobSpec], existing: Container[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest id of the submission (or of the run, when
    ``existing`` can be listed), or "" when none is close or there are too many to look at."""
    if len(parent) > _HINT_MAX_LENGTH:
        return ""
    candidates = list(ids)
    if isinstance(existing, set | frozenset | dict | list | tuple):
        candidates.extend(existing)
    if len(candidates) > _SUGGEST_AMONG:
        return ""
    # difflib is quadratic in the lengths: only ids of about the same length are compared
    size = len(parent)
    candidates = [c for c in candidates if abs(len(c) - size) <= 2 and len(c) <= _HINT_MAX_LENGTH]
    close = difflib.get_close_matches(parent, candidates[:_HINT_CANDIDATES], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _topological(ids: dict[str, JobSpec]) -> tuple[tuple[str, ...], list[str]]:
    """Kahn's algorithm over the edges between new jobs: (order, one cycle or [])."""
    pending = dict.fromkeys(ids, 0)
    children: dict[str, list[str]] = {}
    for job_id, spec in ids.items():
        parents = spec.parents
        if not parents:
            continue
        count = 0
        for parent in dict.fromkeys(parents) if len(parents) > 1 else parents:
            if parent in ids:
                count += 1
                siblings = children.get(parent)
                if siblings is None:
                    children[parent] = [job_id]
                else:
                    siblings.append(job_id)
        pending[job_id] = count
    ready = deque(job_id for job_id, count in pending.items() if not count)
    order: list[str] = []
    while ready:
        job_id = ready.popleft()
        order.append(job_id)
        for child in children.get(job_id, ()):
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    if len(order) == len(ids):
        return tuple(order), []
    return tuple(order), _one_cycle(ids, pending)


def _one_cycle(ids: dict[str, JobSpec], pending: dict[str, int]) -> list[str]:
    """A cycle among the jobs Kahn left over (each of them has a left-over parent)."""
    left = {job_id for job_id, count in pending.items() if count > 0}
    node = next(job_id for job_id in ids if job_id in left)
    path: list[str] = []
    position: dict[str, int] = {}
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(p for p in ids[node].parents if p in left)
    loop = path[position[node]:] + [node]
    loop.reverse()  # walked child -> parent; show parent -> child
    head, tail = _CYCLE_SHOWN
    if len(loop) > head + tail + 1:
        loop[head:-tail] = [f"... ({len(loop) - head - tail} more jobs) ..."]
    return loop


def _message(what: str, problems: list[str]) -> str:
    count = len(problems)
    lines = [f"{what} refused ({count} problem{'s' if count != 1 else ''}):"]
    lines.extend(f"  {problem}" for problem in problems[:_MAX_LISTED])
    if count > _MAX_LISTED:
        lines.append(f"  ... and {count - _MAX_LISTED} more")
    return "\n".join(lines)
