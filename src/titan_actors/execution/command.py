"""Turn a JobSpec into the argv and environment of its process (pure: no I/O but lookups).

argv, by what the job runs (COMPAT.md, "What a job's process sees"):

* ``script_name`` ending in ``.py``: ``[python, "-u", script, *args]`` with the worker's own
  interpreter (absolute path, unbuffered), so ``titan_sdk`` is importable;
* ``.sh``: ``[bash, script, *args]``, bash's absolute path looked up once;
* any other script: ``[script, *args]`` (``workspace.write_script`` makes it executable; it
  needs its own ``#!`` line);
* ``command``: ``[*command, *args]``; a program name without a slash is resolved on the job's
  PATH here, so the job's PATH (not the launcher's) decides.

The environment is built, never inherited: the worker's variables named in
:data:`ENV_ALLOWLIST` (exact names, or prefixes ending in ``*``), minus any whose name looks like
a secret (:data:`SECRET_MARKERS`: KEY, SECRET, TOKEN, PASSWORD, PASSWD, CREDENTIAL anywhere in the
name, e.g. TITAN_KEY_FILE), then the job's own ``env`` (the submitter chose it: passed as is),
then the TITAN_* variables given by the caller, which win over both.

Why these: PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TMPDIR and TERM are what a
program expects of a login environment and carry no secret. PYTHONPATH is passed so a Python job
imports what the worker's interpreter imports (the SDK included) when the worker itself runs from
a PYTHONPATH. Not passed: proxies (``http_proxy`` may hold a password), ``LD_*``,
``PYTHONSTARTUP`` / ``PYTHONHOME``, ``VIRTUAL_ENV``, cloud and CI variables; a job that needs
them sets them in its own ``env``.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from titan_actors.config_parse import is_off
from titan_actors.errors import UsageError
from titan_actors.scheduler.model import JobKind, JobSpec

__all__ = [
    "ENV_ALLOWLIST",
    "SECRET_MARKERS",
    "Command",
    "TitanEnv",
    "build_command",
    "build_env",
    "passed_env",
    "is_secret_name",
    "job_argv",
    "opt_out_of_warm",
    "wants_warm",
    "warm_allowed",
]

ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
    "TERM", "PYTHONPATH",
)
SECRET_MARKERS: tuple[str, ...] = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
WARM_VAR = "TITAN_WARM"  # a job's own opt-out of the warm executor


@dataclass(frozen=True, slots=True)
class TitanEnv:
    """What a job is told about where it runs (set last, so nothing overrides it)."""

    host: str
    port: int
    token: str
    job_id: str
    run_id: str
    attempt: int
    worker: str = ""  # the worker's name

    def variables(self) -> dict[str, str]:
        """Return the TITAN_* variables."""
        variables = {"TITAN_HOST": self.host, "TITAN_PORT": str(self.port),
                     "TITAN_TOKEN": self.token, "TITAN_JOB_ID": self.job_id,
                     "TITAN_RUN_ID": self.run_id, "TITAN_ATTEMPT": str(self.attempt)}
        if self.worker:
            variables["TITAN_WORKER"] = self.worker
        return variables


@dataclass(frozen=True, slots=True)
class Command:
    """What to give ``Launcher.launch``: the argv and the whole environment."""

    argv: tuple[str, ...]
    env: dict[str, str]


def is_secret_name(name: str) -> bool:
    """True when an environment variable's name suggests it holds a secret."""
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def build_env(titan: TitanEnv, job_env: Mapping[str, str] | None = None, *,
              base: Mapping[str, str] | None = None,
              allowlist: tuple[str, ...] = ENV_ALLOWLIST) -> dict[str, str]:
    """Return a job's environment: allowlisted, non-secret ``base`` variables (default: this
    process's environment), then ``job_env``, then ``titan.variables()``.

    Variables of ``base`` whose name or value cannot be encoded as UTF-8 are left out (they
    could not travel to the launcher). Raises UsageError naming a ``job_env`` variable whose
    name is empty or holds ``=`` or a NUL, or whose value holds a NUL.
    """
    env = _passed(os.environ if base is None else base, allowlist)
    for name, value in (job_env or {}).items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise UsageError(f"job {titan.job_id!r}: env variable {name!r} is invalid (a name "
                             "must be non-empty without '=' or NUL; a value without NUL)")
        env[name] = value
    env.update(titan.variables())
    env.setdefault("PATH", _DEFAULT_PATH)
    return env


def _passed(base: Mapping[str, str], allowlist: tuple[str, ...]) -> dict[str, str]:
    """The variables of ``base`` a job gets: allowlisted, not secret, encodable."""
    return {name: value for name, value in base.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in allowlist)
            and not is_secret_name(name) and _encodable(name) and _encodable(value)}


def passed_env(allowlist: tuple[str, ...] = ENV_ALLOWLIST) -> dict[str, str]:
    """The variables of this process's environment that every job gets: a worker takes them
    once at start and gives them as ``base_env`` (reading ``os.environ`` costs ~30 us a job)."""
    return _passed(os.environ, allowlist)


def job_argv(spec: JobSpec, script_path: str | None = None, *, python: str | None = None,
             path: str | None = None) -> tuple[str, ...]:
    """Return the argv of ``spec`` (see the module docstring).

    ``script_path``: where the script was written (``workspace.write_script``), required when
    the job has a script. ``python``: the interpreter for ``.py`` (default: this one).
    ``path``: the PATH to resolve a bare command name on (default: this process's).
    Raises UsageError naming the job when it has neither a script nor a command, or when the
    script was not written, or bash cannot be found for a ``.sh``.
    """
    args = tuple(spec.args)
    if spec.script_name:
        if not script_path:
            raise UsageError(f"job {spec.id!r}: its script {spec.script_name!r} was not written "
                             "to the workspace")
        script = os.path.abspath(script_path)
        if spec.script_name.endswith(".py"):
            return (os.path.abspath(python or sys.executable), "-u", script, *args)
        if spec.script_name.endswith(".sh"):
            return (_bash(), script, *args)
        return (script, *args)
    if spec.command:
        program = spec.command[0]
        if "/" not in program:
            program = shutil.which(program, path=path) or program  # unresolved: spawn says why
        return (program, *spec.command[1:], *args)
    raise UsageError(f"job {spec.id!r} has neither a script (script_name) nor a command")


def build_command(spec: JobSpec, titan: TitanEnv, script_path: str | None = None, *,
                  python: str | None = None,
                  base_env: Mapping[str, str] | None = None) -> Command:
    """Return the argv and environment for one attempt of ``spec``; see :func:`job_argv` and
    :func:`build_env` (a bare command name is resolved on the job's final PATH)."""
    env = build_env(titan, spec.env, base=base_env)
    return Command(job_argv(spec, script_path, python=python, path=env.get("PATH")), env)


@functools.cache
def _bash() -> str:
    found = shutil.which("bash") or next(
        (p for p in ("/bin/bash", "/usr/bin/bash") if os.access(p, os.X_OK)), None)
    if found is None:
        raise UsageError("a .sh job needs bash, and bash is not on this worker's PATH")
    return os.path.abspath(found)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\0" not in text


def wants_warm(spec: JobSpec, command: Command) -> bool:
    """Whether the job may start from the warm executor: a ``.py`` script run to completion,
    unless its environment opts out (:func:`warm_allowed`)."""
    return (spec.kind is JobKind.RUN and spec.script_name.endswith(".py")
            and warm_allowed(command.env))


def warm_allowed(env: Mapping[str, str]) -> bool:
    """False when ``env`` says ``TITAN_WARM=0`` (or false/no/off): the job opted out."""
    return not is_off(env.get(WARM_VAR, ""))


def opt_out_of_warm(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the job's opt-out of the warm executor (YAML ``warm: false``)."""
    return {**env, WARM_VAR: "0"}
