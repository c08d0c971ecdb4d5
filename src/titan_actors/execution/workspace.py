"""Per-run working directories on a worker, the scripts jobs run, and their retention.

Layout under the worker's data directory (``worker_dir``)::

    runs/<run_id>/                                          the jobs' working directory
    runs/<run_id>/.titan/scripts/<job_id>/<attempt>/<name>  a job's script, mode 0700

Every job of one run on one worker runs in the same ``runs/<run_id>/``, so a file a parent
wrote is there for a child that runs on the same worker (COMPAT.md). Directories are 0700: only
the worker's user runs jobs. The ids become path components, so each must be one plain name (no
``/``, NUL, ``.`` or ``..``); UsageError names the field otherwise.

These functions do blocking file I/O: a gevent worker calls the slow ones (``remove_run``,
``prune_runs`` on big trees) in its threadpool. Nothing is fsynced: a script lost to a power cut
is written again by the next attempt, and the jobs died with the machine anyway.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path

from titan_actors.errors import UsageError

__all__ = [
    "RUNS_DIR",
    "RunWorkspace",
    "list_runs",
    "prepare_run",
    "prune_runs",
    "remove_run",
    "run_dir",
    "script_path",
    "write_script",
]

RUNS_DIR = "runs"
_SCRIPTS = (".titan", "scripts")
_MAX_NAME_BYTES = 255


@dataclass(frozen=True, slots=True)
class RunWorkspace:
    """One run's directory and when it was last used (its mtime, epoch seconds)."""

    run_id: str
    path: Path
    last_used: float


def _component(field: str, value: str) -> str:
    if (not value or value in (".", "..") or "/" in value or "\0" in value
            or len(value.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES):
        raise UsageError(f"{field} {value!r} cannot name a directory or file: it must be one "
                         f"plain name (not empty, '.' or '..'; no '/' or NUL; at most "
                         f"{_MAX_NAME_BYTES} bytes)")
    return value


def run_dir(worker_dir: str | os.PathLike[str], run_id: str) -> Path:
    """Return ``<worker_dir>/runs/<run_id>`` (not created). Raises UsageError for a bad id."""
    return Path(worker_dir) / RUNS_DIR / _component("run id", run_id)


def prepare_run(worker_dir: str | os.PathLike[str], run_id: str) -> Path:
    """Create (or reuse) the run's directory, mark it used now, and return it."""
    path = run_dir(worker_dir, run_id)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.utime(path)  # retention counts from the last attempt started here
    return path


def script_path(worker_dir: str | os.PathLike[str], run_id: str, job_id: str, attempt: int,
                script_name: str) -> Path:
    """Return where :func:`write_script` puts a script (not created)."""
    if type(attempt) is not int or attempt < 0:
        raise UsageError(f"attempt {attempt!r} must be a non-negative int")
    return (run_dir(worker_dir, run_id).joinpath(*_SCRIPTS) / _component("job id", job_id)
            / str(attempt) / _component("script name", script_name))


def write_script(worker_dir: str | os.PathLike[str], run_id: str, job_id: str, attempt: int,
                 script_name: str, content: bytes) -> Path:
    """Write a job's script, mode 0700 (executable: a script run directly needs it), and return
    its path. The run directory is created if needed. The file is replaced atomically, so a
    retried attempt never runs half a script.

    Raises UsageError for an id or name that is not one plain name; OSError from the file system.
    """
    path = script_path(worker_dir, run_id, job_id, attempt, script_name)
    prepare_run(worker_dir, run_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o700)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o700)  # the umask may have narrowed it
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_run(worker_dir: str | os.PathLike[str], run_id: str) -> bool:
    """Delete a run's directory and everything in it; return False when it did not exist.

    Read-only directories a job left behind are made writable first. Raises OSError when
    something still cannot be removed.
    """
    path = run_dir(worker_dir, run_id)
    if not path.exists():
        return False
    shutil.rmtree(path, onerror=_make_writable_and_retry)
    return True


def list_runs(worker_dir: str | os.PathLike[str]) -> list[RunWorkspace]:
    """Return the run directories of a worker, least recently used first."""
    root = Path(worker_dir) / RUNS_DIR
    found: list[RunWorkspace] = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                found.append(RunWorkspace(entry.name, Path(entry.path),
                                          entry.stat(follow_symlinks=False).st_mtime))
        except FileNotFoundError:
            continue
    return sorted(found, key=lambda w: w.last_used)


def prune_runs(worker_dir: str | os.PathLike[str], older_than: float, *,
               keep: Container[str] = (), now: float | None = None) -> list[str]:
    """Remove every run directory unused for ``older_than`` seconds, except the runs in
    ``keep`` (those with jobs still here); return the removed run ids."""
    now = time.time() if now is None else now
    removed = []
    for ws in list_runs(worker_dir):
        if ws.run_id not in keep and now - ws.last_used >= older_than:
            remove_run(worker_dir, ws.run_id)
            removed.append(ws.run_id)
    return removed


def _make_writable_and_retry(func: Callable[[str], object], path: str, exc_info: object) -> None:
    parent = os.path.dirname(path)
    try:
        os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)
    except FileNotFoundError:
        return
    try:
        func(path)
    except FileNotFoundError:
        pass
