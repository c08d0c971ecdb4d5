"""The native SDK's typed job and pipeline: :class:`Job` and :class:`Pipeline`.

A :class:`Job` is validated when it is made, with the master's own field rules
(``titan_actors.scheduler.dag.field_problems``), so a bad job raises
:class:`~titan_sdk.errors.InvalidJob` listing every problem before anything is sent; relations
between jobs (unknown parents, cycles, duplicate ids) are the master's to judge at submission
(:class:`~titan_sdk.errors.SubmissionRefused`).

Units differ from the COMPAT ``TitanJob`` on purpose: ``delay`` and ``timeout`` are seconds, as
in YAML pipelines.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from titan_actors.errors import ConfigError, PipelineError
from titan_actors.execution.command import opt_out_of_warm, warm_allowed
from titan_actors.job_limits import parse_limit
from titan_actors.scheduler.dag import field_problems
from titan_actors.scheduler.model import DEFAULT_REQUIREMENT, JobKind, JobSpec, RunSpec

from .errors import InvalidJob

__all__ = ["Job", "Pipeline"]

_DEFAULT_SCRIPT_NAME = "script.py"
DEFAULT_MAX_WAIT = JobSpec(id="defaults").max_wait_seconds  # 48 h


@dataclass(frozen=True)
class Job:
    """One job. Give exactly one thing to run:

    - ``file``: a local script, read now (a missing file is an InvalidJob naming the path); it
      runs by its suffix (``.py`` with Python, ``.sh`` with bash, anything else directly);
    - ``script``: a script's content (``str`` or ``bytes``), run as ``script_name``
      (default ``script.py``: Python);
    - ``command``: an argv list, run without a shell;
    - ``library``: the name of a script in the master's script library (``deploy_script``).

    With ``archive`` (an uploaded project archive, ``Titan.upload(folder)``), ``file`` is the
    entry to run inside it (``jobs/main.py``), not a local file: the job runs from inside the
    unpacked project.

    ``args``: the script's arguments, a list or one string split like a shell would (kept as a
    tuple). ``parents``: job ids this job waits for; an id not among the jobs submitted with it
    resolves to the job of that id in the submitting job's run, then to the latest run holding
    it; a parent that already completed counts as satisfied. ``priority``: higher runs first.
    ``delay`` and ``timeout``: seconds (0: none). ``requirement``: the tag a worker must have.
    ``affinity``: prefer the worker that ran a parent. ``worker``: pin to a named worker.
    ``retries``: extra attempts after the first. ``env``: extra environment variables.
    ``warm``: False keeps a Python job off the worker's warm executor (a fresh interpreter is
    spawned for it; the same as ``TITAN_WARM=0`` in ``env``). ``limits``: resource limits of
    its process, ``{"memory": "512MiB", "cpu": 60, "open_files": 256, "file_size": "1G"}``.

    ``kind``: ``"run"`` (default), ``"service"`` or ``"gate"`` (or a ``JobKind``). A service
    runs until stopped (``Titan.stop_service``): ``port`` (0: the worker picks a free one; the
    process gets it as ``PORT``), ready when the port accepts connections or when ``health``
    (an argv) exits 0, restarted at most ``max_restarts`` times (-1: no limit); its children
    start once it is ready and find it in ``TITAN_SERVICE_<ID>`` (host:port). A gate runs
    nothing (give no file, script, command or library): it waits at most ``max_wait_seconds``
    for a person to approve or reject it (``Titan.approve``), asking ``message``.
    ``hitl_message`` on a run or a service puts a gate ``hitl-gate-<id>`` right after it (its
    deadline: ``max_wait_seconds``); the jobs that name it as a parent wait for that gate.

    Raises InvalidJob (a SubmissionRefused and a ValueError) listing every problem.
    """

    id: str
    file: str | os.PathLike[str] | None = None
    script: str | bytes | None = None
    script_name: str = ""
    command: Sequence[str] | None = None
    args: str | Sequence[str] = ()
    parents: Sequence[str] = ()
    priority: int = 1
    delay: float = 0.0
    requirement: str = DEFAULT_REQUIREMENT
    affinity: bool = False
    worker: str = ""
    retries: int = 3
    timeout: float = 0.0
    env: Mapping[str, str] = field(default_factory=dict)
    archive: str = ""
    library: str = ""
    kind: JobKind | str = JobKind.RUN
    port: int = 0
    max_restarts: int = -1
    health: Sequence[str] = ()
    message: str = ""
    max_wait_seconds: float = DEFAULT_MAX_WAIT
    hitl_message: str = ""
    warm: bool = True
    limits: Mapping[str, int | str] = field(default_factory=dict)
    _spec: JobSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        where = f"job {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise InvalidJob(f"a job needs a non-empty string id, got {self.id!r}",
                             [f"job id {self.id!r}: must be a non-empty string"])
        kind = self._kind(where, problems)
        given = [name for name in ("file", "script", "command", "library")
                 if getattr(self, name) not in (None, "")]
        if kind is JobKind.GATE:
            problems.extend(f"{where}: a gate runs no process; remove {name}" for name in given)
        elif len(given) != 1:
            problems.append(f"{where}: give exactly one of file, script, command or library"
                            + (f" (got {', '.join(given)})" if given else ""))
        problems.extend(_kind_problems(self, kind, where))
        health = _argv(self.health, f"{where}: health", problems)
        content, script_name = self._script(where, problems)
        args = self._args(where, problems)
        command = tuple(self.command) if self.command is not None else ()
        if isinstance(self.command, str):
            problems.append(f"{where}: command must be a list of strings (an argv), "
                            f"got the string {self.command!r}")
        if not all(isinstance(p, str) for p in self.parents) or isinstance(self.parents, str):
            problems.append(f"{where}: parents must be a list of job ids, got {self.parents!r}")
        env = dict(self.env) if self.warm is not False else opt_out_of_warm(self.env)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            problems.append(f"{where}: env must map strings to strings")
        limits = _limits(self.limits, where, problems)
        spec = JobSpec(id=self.id, script_name=script_name, script=content, command=command,
                       args=args, parents=tuple(self.parents), priority=self.priority,
                       delay=self.delay, requirement=self.requirement,
                       affinity=self.affinity, worker=self.worker, retries=self.retries,
                       timeout=self.timeout, env=env, archive=self.archive,
                       library=self.library, kind=kind or JobKind.RUN, port=self.port,
                       max_restarts=self.max_restarts, health=health, message=self.message,
                       max_wait_seconds=self.max_wait_seconds, hitl_message=self.hitl_message,
                       limits=limits)
        if not problems:
            problems.extend(field_problems(spec))
        if not isinstance(self.affinity, bool):
            problems.append(f"{where}: affinity must be true or false, got {self.affinity!r}")
        if not isinstance(self.warm, bool):
            problems.append(f"{where}: warm must be true or false, got {self.warm!r}")
        if problems:
            raise InvalidJob(f"{where} is invalid:\n" + "\n".join(f"  {p}" for p in problems),
                             problems)
        for name, value in (("args", args), ("command", self.command and command),
                            ("parents", tuple(self.parents)), ("env", env),
                            ("kind", kind), ("health", health),
                            ("script_name", script_name or self.script_name),
                            ("limits", limits), ("_spec", spec)):
            object.__setattr__(self, name, value)

    def _script(self, where: str, problems: list[str]) -> tuple[bytes, str]:
        """The script's content and name ((b"", "") for a command)."""
        if self.file is not None and self.archive:
            return b"", Path(self.file).as_posix()  # an entry of the archive, checked there
        if self.file is not None:
            path = Path(self.file)
            try:
                content = path.read_bytes()
            except FileNotFoundError:
                problems.append(f"{where}: file {os.fspath(self.file)} does not exist "
                                f"(looked for {path.resolve()})")
                return b"", ""
            except OSError as error:
                problems.append(f"{where}: file {os.fspath(self.file)} cannot be read: "
                                f"{error.strerror or error}")
                return b"", ""
            return content, self.script_name or path.name
        if self.script is not None:
            if not isinstance(self.script, str | bytes):
                problems.append(f"{where}: script must be the script's text (str or bytes)")
                return b"", ""
            content = self.script.encode() if isinstance(self.script, str) else self.script
            return content, self.script_name or _DEFAULT_SCRIPT_NAME
        return b"", ""

    def _kind(self, where: str, problems: list[str]) -> JobKind | None:
        try:
            return JobKind(str(self.kind).lower())
        except ValueError:
            problems.append(f"{where}: kind must be one of "
                            f"{', '.join(k.value for k in JobKind)}, got {self.kind!r}")
            return None

    def _args(self, where: str, problems: list[str]) -> tuple[str, ...]:
        if isinstance(self.args, str):
            try:
                return tuple(shlex.split(self.args))
            except ValueError as error:
                problems.append(f"{where}: args {self.args!r} do not split like a shell would "
                                f"({error})")
                return ()
        if not all(isinstance(a, str) for a in self.args):
            problems.append(f"{where}: args must be one string or a list of strings")
            return ()
        return tuple(self.args)

    @classmethod
    def from_spec(cls, spec: JobSpec) -> Job:
        """The job a master-side spec describes (a YAML pipeline's, a COMPAT ``TitanJob``'s),
        kept exactly as it is (kinds and fields this class does not show included)."""
        job = object.__new__(cls)
        shown = {"id": spec.id, "file": None, "script": spec.script if spec.script else None,
                 "script_name": spec.script_name, "command": spec.command or None,
                 "args": spec.args, "parents": spec.parents, "priority": spec.priority,
                 "delay": spec.delay, "requirement": spec.requirement,
                 "affinity": spec.affinity, "worker": spec.worker, "retries": spec.retries,
                 "timeout": spec.timeout, "env": dict(spec.env), "archive": spec.archive,
                 "library": spec.library, "kind": spec.kind, "port": spec.port,
                 "max_restarts": spec.max_restarts, "health": spec.health,
                 "message": spec.message, "max_wait_seconds": spec.max_wait_seconds,
                 "hitl_message": spec.hitl_message, "_spec": spec,
                 "warm": warm_allowed(spec.env), "limits": dict(spec.limits)}
        for each in fields(cls):
            object.__setattr__(job, each.name, shown[each.name])
        return job

    def to_spec(self) -> JobSpec:
        """The job as the master takes it."""
        return self._spec


def _kind_problems(job: Job, kind: JobKind | None, where: str) -> list[str]:
    """Keys of one kind of job given to another (the master's field rules check the rest)."""
    if kind is None:
        return []
    out = []
    if kind is not JobKind.SERVICE and job.max_restarts != -1:
        out.append(f"{where}: max_restarts is for services (kind='service')")
    if kind is not JobKind.GATE and job.message:
        out.append(f"{where}: message is a gate's question (kind='gate'); to ask for approval "
                   "after this job, give hitl_message")
    if (kind is not JobKind.GATE and not job.hitl_message
            and job.max_wait_seconds != DEFAULT_MAX_WAIT):
        out.append(f"{where}: max_wait_seconds is a gate's deadline: give hitl_message too, or "
                   "make the job a gate (kind='gate')")
    for name in ("message", "hitl_message"):
        if not isinstance(getattr(job, name), str):
            out.append(f"{where}: {name} must be a string, got {getattr(job, name)!r}")
    wait = job.max_wait_seconds
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait < math.inf:
        out.append(f"{where}: max_wait_seconds must be a number of seconds > 0, got {wait!r}")
    return out


def _argv(value: object, where: str, problems: list[str]) -> tuple[str, ...]:
    """A list of strings as a tuple (a lone string is refused: it would be split by letter)."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable) or not all(
            isinstance(a, str) for a in value):
        problems.append(f"{where} must be a list of strings (an argv), got {value!r}")
        return ()
    return tuple(value)


@dataclass(frozen=True)
class Pipeline:
    """A named DAG of jobs, submitted as one run with :meth:`titan_sdk.Titan.submit`.

    ``agent_run_id`` groups runs of one agent's session (inside a job, a submission without
    one inherits the job's). ``source`` names where it came from in the master's messages.
    Raises InvalidJob for an empty name or job list, or an entry that is not a Job.
    """

    name: str
    jobs: Sequence[Job]
    agent_run_id: str = ""
    source: str = "sdk"

    def __post_init__(self) -> None:
        jobs = tuple(Job.from_spec(j) if isinstance(j, JobSpec) else j for j in self.jobs)
        problems = [f"jobs[{i}]: {j!r} is not a titan_sdk.Job" for i, j in enumerate(jobs)
                    if not isinstance(j, Job)]
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"the pipeline needs a non-empty name, got {self.name!r}")
        if not jobs:
            problems.append("the pipeline has no jobs: give at least one")
        if problems:
            raise InvalidJob(f"pipeline {self.name!r} is invalid:\n"
                             + "\n".join(f"  {p}" for p in problems), problems)
        object.__setattr__(self, "jobs", jobs)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], agent_run_id: str = "") -> Pipeline:
        """The YAML pipeline at ``path`` (COMPAT.md, "YAML pipelines"), its scripts read now.

        Raises InvalidJob whose ``problems`` each name the file, the line and the key."""
        from titan_actors.pipeline import load_pipeline  # needs ruamel.yaml: load on use
        try:
            spec = load_pipeline(path)
        except PipelineError as error:  # one problem a line, each naming file and line
            raise InvalidJob(str(error), str(error).splitlines()) from error
        return cls(spec.name, [Job.from_spec(j) for j in spec.jobs],
                   agent_run_id or spec.agent_run_id, spec.source or os.fspath(path))

    def to_spec(self) -> RunSpec:
        """The run as the master takes it."""
        return RunSpec(self.name, tuple(j.to_spec() for j in self.jobs), self.agent_run_id,
                       self.source)


def _limits(given: object, where: str, problems: list[str]) -> dict[str, int]:
    """``limits`` checked and read (sizes in bytes), each problem said."""
    if not isinstance(given, Mapping):
        problems.append(f"{where}: limits must be a mapping such as {{'memory': '512MiB'}}, "
                        f"got {given!r}")
        return {}
    out = {}
    for name, value in given.items():
        try:
            out[str(name)] = parse_limit(str(name), value)
        except ConfigError as error:
            problems.append(f"{where}: {error}")
    return out
