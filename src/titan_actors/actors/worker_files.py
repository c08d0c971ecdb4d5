"""The worker's files: fetching the stored file a job runs (a project archive or a library
script), and answering the master's questions about a run's workspace.

A mixin of :class:`~titan_actors.actors.worker.WorkerActor`.

Stored files are cached by digest under ``<worker dir>/archives/<sha256>`` (fetched from the
master in chunks and checked against the digest). A library script is written into the run's
script folder like any script. An archive is unpacked once per run into
``runs/<run_id>/<project>/``, where ``<project>`` is the archive's name without its suffix (with
the digest added when another version already has that folder, or is being unpacked into it).
Jobs of the run that use the same archive share that folder, and wait for the one unpacking it;
the folder is their working directory and comes first on their PYTHONPATH. The fetch and the
unpacking run in an owned greenlet (file I/O in the threadpool), so the actor's loop keeps
going; the attempt counts as running meanwhile, and a kill stops it before launch. Whatever
goes wrong there fails the attempt ("could not start: ..."), never the worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import gevent

from ..errors import UsageError
from ..execution import archives, workspace
from ..offload import run_in_thread
from ..wire.messages import files as f
from ..wire.messages import worker as w
from .base import handles
from .future import Future

log = logging.getLogger("titan.worker")

_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar")
_RESERVED = frozenset({".titan", ".", ".."})
_FETCH_TIMEOUT = 60.0
_MARKER = ".titan-archive"


def _read_marker(path: Path) -> str:
    """The digest a project folder's marker holds; never through a link, never blocking on a
    FIFO or a device a job put there (the run directory is writable by its jobs): anything
    but a small regular file reads as "" (so the folder is not reused)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 256:
            return ""
        return os.read(fd, 256).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The stored file of a dispatch is in place: launch in ``cwd``, or fail with ``error``."""

    dispatch: w.Dispatch
    cwd: Path | None
    script: Path | None
    error: str = ""


def project_folder_name(archive: str, digest: str, run_dir: Path,
                        taken: dict[str, str] | None = None) -> str:
    """The folder an archive unpacks to inside a run: its name without the suffix, or with the
    digest added when another version is there (or in ``taken``: folder -> digest being
    unpacked), or the name is reserved (``.titan``)."""
    stem = archive
    for suffix in _SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[:-len(suffix)]
            break
    versioned = f"{stem}-{digest[:12]}"
    if stem in _RESERVED or (taken or {}).get(stem, digest) != digest:
        return versioned
    try:
        if _read_marker(run_dir / stem / _MARKER) != digest:
            return versioned
    except FileNotFoundError:
        if (run_dir / stem).exists():
            return versioned
    except OSError:
        return versioned
    return stem


@dataclass(frozen=True, slots=True)
class SweepWorkspaces:
    """Time for the retention of this worker's workspaces (the worker's timer sends it)."""


class WorkerFiles:
    """Stored-file preparation and workspace answers (see the module docstring)."""

    @handles(SweepWorkspaces)
    def _sweep_workspaces(self, msg: SweepWorkspaces) -> None:
        """Retention on this worker: remove run directories unused for the retention age (the
        file I/O runs in the threadpool so the loop keeps going)."""
        active = {ref.run_id for ref in self.attempts}
        self.spawn(self._sweep, active, self.clock.time())

    def _sweep(self, active: set[str], now: float) -> None:
        age = self.options.workspace_retention
        try:
            run_in_thread(workspace.prune_runs, self.options.data_dir, age, keep=active)
            run_in_thread(prune_archives, self.options.data_dir, age, now)
        except OSError as error:  # tried again at the next sweep
            log.warning("workspace retention: %s", error)

    def _prepare(self, msg: w.Dispatch) -> None:
        """Fetch what the dispatch runs, then launch it (as ``_Prepared``)."""
        if msg.spec.archive:
            self._prepare_project(msg)
        else:
            self.spawn(self._prepare_library, msg)

    def _prepare_library(self, msg: w.Dispatch) -> None:
        ref, spec = msg.ref, msg.spec
        try:
            blob = self._cached_file(f"library script {spec.library!r}", spec.file_digest)
            content = run_in_thread(blob.read_bytes)
            script = run_in_thread(workspace.write_script, self.options.data_dir, ref.run_id,
                                   ref.job_id, ref.attempt, spec.library, content,
                                   self.options.job_user)
            cwd = workspace.prepare_run(self.options.data_dir, ref.run_id, self.options.job_user)
        except Exception as error:  # the attempt fails, the worker goes on
            self.notify(_Prepared(msg, None, None, str(error)))
            return
        named = dataclasses.replace(msg, spec=dataclasses.replace(spec, script_name=spec.library))
        self.notify(_Prepared(named, cwd, script))

    def _prepare_project(self, msg: w.Dispatch) -> None:
        spec, run_id = msg.spec, msg.ref.run_id
        key = (run_id, spec.file_digest)
        pending = self._projects.get(key)
        if pending is None:
            run_dir = workspace.run_dir(self.options.data_dir, run_id)
            taken = {folder: digest for (run, folder), digest in self._folders.items()
                     if run == run_id}
            folder = project_folder_name(spec.archive, spec.file_digest, run_dir, taken)
            self._folders[(run_id, folder)] = spec.file_digest
            pending = self._projects[key] = Future(f"project {spec.archive}")
            self.spawn(self._unpack_for_run, msg, folder, pending)

        def ready(done: Future) -> None:
            if self._projects.get(key) is done:
                del self._projects[key]  # later jobs find the folder (or try again)
            if not done.successful():
                self.notify(_Prepared(msg, None, None, str(done.exception)))
                return
            project = done.value
            try:
                entry = _entry_path(project, spec.script_name)
            except Exception as error:  # the attempt fails, the worker goes on
                self.notify(_Prepared(msg, None, None, str(error)))
                return
            self.notify(_Prepared(_with_project_path(msg, project), project, entry))
        pending.add_done_callback(ready)

    def _unpack_for_run(self, msg: w.Dispatch, folder: str, result: Future) -> None:
        spec, run_id = msg.spec, msg.ref.run_id
        try:
            blob = self._cached_file(f"archive {spec.archive!r}", spec.file_digest)
            owner = self.options.job_user
            run_dir = workspace.prepare_run(self.options.data_dir, run_id, owner)
            project = run_dir / folder
            if not project.exists():
                count = run_in_thread(archives.unpack, blob, project,
                                      max_bytes=self.options.archive_max_bytes,
                                      max_entries=self.options.archive_max_entries)
                (project / _MARKER).write_text(spec.file_digest)
                if owner is not None:  # the job's working directory: its user's
                    run_in_thread(workspace.hand_over, project, owner)
                log.info("unpacked %s (%d files) for run %s", spec.archive, count, run_id)
            result.set(project)
        except Exception as error:  # the attempts fail, the worker goes on
            result.set_exception(error)
        finally:
            self._folders.pop((run_id, folder), None)

    def _cached_file(self, what: str, digest: str) -> Path:
        """The stored file ``digest`` in this worker's cache, fetched from the master if
        missing and checked against the digest."""
        cache = self.options.data_dir / "archives"
        path = cache / digest
        if path.exists():
            os.utime(path)  # the sweep removes files unused for the retention age
            return path
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.master is None:
            raise UsageError(f"{what} is not cached here and the master is not connected")
        tmp = cache / f".{digest}.{os.getpid()}.{id(gevent.getcurrent())}"
        hasher, offset = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                while True:
                    chunk = self.master.ask(f.FetchBlob(digest, offset, f.CHUNK),
                                            timeout=_FETCH_TIMEOUT)
                    out.write(chunk.data)
                    hasher.update(chunk.data)
                    offset += len(chunk.data)
                    if chunk.eof or not chunk.data:
                        break
            if hasher.hexdigest() != digest:
                raise UsageError(f"{what} arrived damaged (its SHA-256 is not {digest})")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @handles(_Prepared)
    def _prepared(self, msg: _Prepared) -> None:
        ref = msg.dispatch.ref
        attempt = self.attempts.get(ref)
        if attempt is None or attempt.exit_code is not None:
            return  # killed or cancelled while its file was being prepared
        if msg.cwd is None or msg.script is None:
            spec = msg.dispatch.spec
            what = f"archive {spec.archive!r}" if spec.archive else \
                f"library script {spec.library!r}"
            self._fail_to_start(attempt, f"{what}: {msg.error}")
            return
        if msg.script.suffix not in (".py", ".sh"):  # run directly: it must be executable
            try:
                owner = self.options.job_user
                workspace.make_executable(msg.script, None if owner is None else owner.uid)
            except (OSError, UsageError) as error:
                self._fail_to_start(attempt, f"{msg.script.name}: {error}")
                return
        self._launch(attempt, msg.dispatch, msg.cwd, msg.script)

    # -- the master's questions about a run's files ---------------------------------------------

    @handles(f.ListRunFiles)
    def _list_run_files(self, msg: f.ListRunFiles) -> f.RunFiles:
        root = workspace.run_dir(self.options.data_dir, msg.run_id)
        entries: list[f.WorkspaceEntry] = []
        truncated = False
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            if here == root:
                dirnames[:] = [d for d in dirnames if d != ".titan"]
            dirnames[:] = sorted(d for d in dirnames if _encodable(d))
            for name in sorted(filenames):
                path = here / name
                try:
                    info = path.lstat()
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode) or name == _MARKER or not _encodable(name):
                    continue
                if len(entries) >= msg.max_entries:
                    truncated = True
                    break
                entries.append(f.WorkspaceEntry(self.options.name,
                                                path.relative_to(root).as_posix(),
                                                info.st_size, info.st_mtime))
            if truncated:
                break
        return f.RunFiles(tuple(entries), truncated)

    @handles(f.ReadRunFile)
    def _read_run_file(self, msg: f.ReadRunFile) -> Future:
        root = workspace.run_dir(self.options.data_dir, msg.run_id)
        reply = Future("run file")

        def read() -> None:
            try:
                reply.set(run_in_thread(_read_inside, root, msg.path, max(msg.offset, 0),
                                        min(max(msg.limit, 0), f.CHUNK)))
            except Exception as error:  # the master's answer, not a crash of the worker
                reply.set_exception(error)
        self.spawn(read)
        return reply


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 (surrogate-escaped by os.walk)
        return False
    return True


def _read_inside(root: Path, relative: str, offset: int, limit: int) -> f.RunFileData:
    """Read ``root/relative`` opening one component at a time without following links (so a job
    swapping a folder or the file for a link, or the file for a FIFO, reads nothing outside);
    a missing or non-regular file is ``found=False``."""
    missing = f.RunFileData(False, 0, b"", True)
    try:
        parts = archives.check_entry(relative).split("/")
    except archives.ArchiveError:
        return missing
    if parts[0] == ".titan":
        return missing
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except FileNotFoundError:
        return missing
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    except (FileNotFoundError, NotADirectoryError, OSError):
        os.close(fd)
        return missing
    os.close(fd)
    with os.fdopen(file_fd, "rb") as src:
        info = os.fstat(src.fileno())
        if not stat.S_ISREG(info.st_mode):
            return missing
        src.seek(offset)
        data = src.read(limit)
    return f.RunFileData(True, info.st_size, data, offset + len(data) >= info.st_size)


def prune_archives(worker_dir: Path, older_than: float, now: float) -> list[str]:
    """Remove cached files unused for ``older_than`` seconds; return their digests."""
    removed = []
    try:
        cached = list(os.scandir(worker_dir / "archives"))
    except FileNotFoundError:
        return removed
    for entry in cached:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime >= older_than:
                os.unlink(entry.path)
                removed.append(entry.name)
        except FileNotFoundError:
            continue
    return removed


def _with_project_path(msg: w.Dispatch, project: Path) -> w.Dispatch:
    """The project's root goes first on PYTHONPATH, so ``jobs/x.py`` imports the project's
    packages as it would when run from the project's folder."""
    spec = msg.spec
    rest = spec.env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    path = os.pathsep.join(p for p in (str(project), rest) if p)
    return dataclasses.replace(msg, spec=dataclasses.replace(
        spec, env={**spec.env, "PYTHONPATH": path}))


def _entry_path(root: Path, relative: str) -> Path:
    """``root/relative`` when it is a regular file inside ``root`` reached without links.
    Raises UsageError naming the entry otherwise."""
    try:
        clean = archives.check_entry(relative)
    except archives.ArchiveError as error:
        raise UsageError(f"{relative!r} is not a path inside the project: {error}") from None
    path = root / clean
    real_root = os.path.realpath(root)
    if os.path.realpath(path) != os.path.join(real_root, *clean.split("/")):
        raise UsageError(f"{relative!r} goes through a link; refused")
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise UsageError(f"{relative!r} does not exist in {root.name}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{relative!r} in {root.name} is not a regular file")
    return path
