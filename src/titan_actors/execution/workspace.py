"""Per-run working directories on a worker, the scripts jobs run, and their retention.

Layout under the worker's data directory (``worker_dir``)::

    runs/<run_id>/                                          the jobs' working directory
    runs/<run_id>/.titan/scripts/<job_id>/<attempt>/<name>  a job's script, mode 0700

Every job of one run on one worker runs in the same ``runs/<run_id>/``, so a file a parent
wrote is there for a child that runs on the same worker (COMPAT.md). Directories are 0700 when
jobs run as the worker's own user. The ids become path components, so each must be one plain
name (no ``/``, NUL, ``.`` or ``..``); UsageError names the field otherwise.

Jobs that run as another user (``owner``, see ``job_user``; the worker is root then): every
directory stays the worker's, so nothing the worker writes later goes through a link a job
planted, and the job's group gets what the job needs. ``worker_dir``, ``runs/``, ``.titan/`` and
the script folders are ``0710`` (the job group may pass, not list), the run directory is
``01770`` (the job creates its files there; the sticky bit keeps it from renaming or deleting
the worker's ``.titan``, created before any job runs), a script is the job user's own (``0700``),
and an unpacked project is handed over to it whole (:func:`hand_over`: it is the job's working
directory). :func:`open_to` makes the way there passable once, when the worker starts.

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

from titan_actors.errors import ConfigError, UsageError
from titan_actors.execution.job_user import JobUser

__all__ = [
    "RUNS_DIR",
    "RunWorkspace",
    "hand_over",
    "list_runs",
    "make_executable",
    "open_to",
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
_PASSABLE = 0o710   # another job user: the worker's directories its group may pass through
_SHARED = 0o1770    # another job user: the run directory (its group writes, sticky)


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


def prepare_run(worker_dir: str | os.PathLike[str], run_id: str,
                owner: JobUser | None = None) -> Path:
    """Create (or reuse) the run's directory, mark it used now, and return it. ``owner``: the
    user its jobs run as, when not the worker's own (see the module docstring)."""
    path = run_dir(worker_dir, run_id)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if owner is not None:
        _keep(path, owner, _SHARED)
        titan = path / _SCRIPTS[0]
        titan.mkdir(mode=0o700, exist_ok=True)
        _keep(titan, owner, _PASSABLE)
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
                 script_name: str, content: bytes, owner: JobUser | None = None) -> Path:
    """Write a job's script, mode 0700 (executable: a script run directly needs it), and return
    its path. The run directory is created if needed. The file is replaced atomically, so a
    retried attempt never runs half a script. ``owner``: the user the job runs as, when not the
    worker's own: the script is that user's (see the module docstring).

    Raises UsageError for an id or name that is not one plain name; OSError from the file system.
    """
    path = script_path(worker_dir, run_id, job_id, attempt, script_name)
    run = prepare_run(worker_dir, run_id, owner)
    if owner is None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:  # .titan/scripts/<job>/<attempt>, one at a time: the worker's, the job's group passes
        folder = run / _SCRIPTS[0]
        for part in path.parent.relative_to(folder).parts:
            folder = folder / part
            folder.mkdir(mode=0o700, exist_ok=True)
            _keep(folder, owner, _PASSABLE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o700)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o700)  # the umask may have narrowed it
            if owner is not None:
                os.fchown(f.fileno(), owner.uid, owner.gid)
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def open_to(worker_dir: str | os.PathLike[str], owner: JobUser) -> None:
    """Let ``owner`` (the user jobs run as, not the worker's) pass through to the run
    directories under ``worker_dir``: ``worker_dir`` and ``runs/`` get the job's group and mode
    0710; the data directory above them, when it is the worker's and gives its group nothing,
    gets the job's group and group search. Called once when the worker starts.

    Raises ConfigError naming the first directory on the way that ``owner`` cannot pass (a
    home directory of mode 0700 above the data directory, say), and what to do about it.
    """
    worker = Path(worker_dir).resolve()
    runs = worker / RUNS_DIR
    data_dir = worker.parent
    info = os.stat(data_dir)
    # the worker's own data directory that gives its group nothing: the job's group may pass
    opened = (not _passable(info, owner) and info.st_uid == os.geteuid()
              and not info.st_mode & 0o070)
    for folder in [*reversed(data_dir.parents), *(() if opened else (data_dir,))]:
        here = os.stat(folder)  # (checked before anything changes: a refusal changes nothing)
        if not _passable(here, owner):
            raise ConfigError(
                f"jobs run as {owner.describe()}, who cannot reach the run directories in "
                f"{runs}: {folder} (mode {stat.S_IMODE(here.st_mode):04o}, owner uid "
                f"{here.st_uid}, group gid {here.st_gid}) does not let it pass; choose a "
                f"--data-dir it can reach (e.g. under /var/lib or /srv), `chmod o+x {folder}`, "
                "or set --job-user / TITAN_JOB_USER")
    if opened:
        os.chown(data_dir, -1, owner.gid)
        os.chmod(data_dir, stat.S_IMODE(info.st_mode) | stat.S_IXGRP)
    runs.mkdir(mode=0o700, exist_ok=True)
    _keep(worker, owner, _PASSABLE)
    _keep(runs, owner, _PASSABLE)


def hand_over(path: str | os.PathLike[str], owner: JobUser) -> None:
    """Give the tree at ``path`` (an unpacked project, the worker's until now) to ``owner``,
    bottom up, never following a link: a folder still the worker's cannot be changed by a job
    while what is in it is handed over."""
    for here, folders, files in os.walk(path, topdown=False):
        for name in (*files, *folders):
            os.chown(os.path.join(here, name), owner.uid, owner.gid, follow_symlinks=False)
    os.chown(path, owner.uid, owner.gid, follow_symlinks=False)


def make_executable(path: str | os.PathLike[str], owner_uid: int | None = None) -> None:
    """Add the owner's execute bit to the regular file at ``path``, never through a link (the
    file may be in a project its job user can change). With ``owner_uid`` (jobs run as another
    user) the file must be that user's: a folder on the way swapped for a link to a file of
    someone else's is refused, not changed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path} is not a regular file")
        if owner_uid is not None and info.st_uid != owner_uid:
            raise UsageError(f"{path} is not the job user's file (uid {info.st_uid}); "
                             f"refusing to make it executable")
        os.fchmod(fd, stat.S_IMODE(info.st_mode) | stat.S_IXUSR)
    finally:
        os.close(fd)


def _keep(folder: Path, owner: JobUser, mode: int) -> None:
    """Have the worker's directory ``folder`` in the group of ``owner`` with ``mode``. Raises
    OSError when it is not a directory of the worker's (a link, say: nothing is changed)."""
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise OSError(f"{folder} is not a directory of the worker's user; refusing to use it")
    if info.st_gid != owner.gid:
        os.chown(folder, -1, owner.gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(folder, mode)  # lstat saw a directory; its parent is the worker's


def _passable(info: os.stat_result, owner: JobUser) -> bool:
    """Whether ``owner`` (no supplementary groups) may search the directory of ``info``."""
    if info.st_uid == owner.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == owner.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


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
