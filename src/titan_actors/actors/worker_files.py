"""The worker's files: unpacking the archive an archive job runs in, and answering the master's
questions about a run's workspace.

A mixin of :class:`~titan_actors.actors.worker.WorkerActor`.

Archives are cached by digest under ``<worker dir>/archives/<sha256>`` (fetched from the master
in chunks and checked against the digest) and unpacked once per run into
``runs/<run_id>/<project>/``, where ``<project>`` is the archive's name without its suffix. Jobs
of the run that use the same archive share that folder, and wait for the one unpacking it; the
folder is their working directory and comes first on their PYTHONPATH. The
fetch and the unpacking run in an owned greenlet (file I/O in the threadpool), so the actor's
loop keeps going; the attempt counts as running meanwhile, and a kill stops it before launch.
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

from ..errors import TitanError, UsageError
from ..execution import archives, workspace
from ..offload import run_in_thread
from ..wire.messages import files as f
from ..wire.messages import worker as w
from .base import handles
from .future import Future

log = logging.getLogger("titan.worker")

_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar")
_FETCH_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class _ProjectReady:
    dispatch: w.Dispatch
    project: Path | None
    error: str = ""


def project_folder_name(archive: str, digest: str, run_dir: Path) -> str:
    """The folder an archive unpacks to inside a run: its name without the suffix, or with the
    digest added when another version of it was unpacked there already."""
    stem = archive
    for suffix in _SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[:-len(suffix)]
            break
    marker = run_dir / stem / ".titan-archive"
    try:
        if marker.read_text().strip() != digest:
            return f"{stem}-{digest[:12]}"
    except FileNotFoundError:
        if (run_dir / stem).exists():
            return f"{stem}-{digest[:12]}"
    return stem


class WorkerFiles:
    """Archive preparation and workspace answers (see the module docstring)."""

    def _prepare_project(self, msg: w.Dispatch) -> None:
        """Fetch and unpack the dispatch's archive, then launch (as ``_ProjectReady``)."""
        spec, run_id = msg.spec, msg.ref.run_id
        key = (run_id, spec.archive_digest)
        pending = self._projects.get(key)
        if pending is None:
            pending = self._projects[key] = Future(f"project {spec.archive}")
            self.spawn(self._unpack_for_run, msg, pending)

        def ready(done: Future) -> None:
            if self._projects.get(key) is done:
                del self._projects[key]  # later jobs find the folder (or try again)
            if done.successful():
                self.notify(_ProjectReady(msg, done.value))
            else:
                self.notify(_ProjectReady(msg, None, str(done.exception)))
        pending.add_done_callback(ready)

    def _unpack_for_run(self, msg: w.Dispatch, result: Future) -> None:
        spec = msg.spec
        try:
            blob = self._cached_archive(spec.archive, spec.archive_digest)
            run_dir = workspace.prepare_run(self.options.data_dir, msg.ref.run_id)
            name = project_folder_name(spec.archive, spec.archive_digest, run_dir)
            project = run_dir / name
            if not project.exists():
                count = run_in_thread(archives.unpack, blob, project,
                                      max_bytes=self.options.archive_max_bytes,
                                      max_entries=self.options.archive_max_entries)
                (project / ".titan-archive").write_text(spec.archive_digest)
                log.info("unpacked %s (%d files) for run %s", spec.archive, count,
                         msg.ref.run_id)
            result.set(project)
        except (TitanError, OSError) as error:
            result.set_exception(error)

    def _cached_archive(self, archive: str, digest: str) -> Path:
        """The archive's blob in this worker's cache, fetched from the master if missing."""
        cache = self.options.data_dir / "archives"
        path = cache / digest
        if path.exists():
            os.utime(path)  # the sweep removes archives unused for the retention age
            return path
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.master is None:
            raise UsageError(f"archive {archive!r} is not cached here and the master is not "
                             "connected")
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
                raise UsageError(f"archive {archive!r} arrived damaged (its SHA-256 is not "
                                 f"{digest})")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @handles(_ProjectReady)
    def _project_ready(self, msg: _ProjectReady) -> None:
        ref = msg.dispatch.ref
        attempt = self.attempts.get(ref)
        if attempt is None or attempt.exit_code is not None:
            return  # killed or cancelled while the project was being prepared
        if msg.project is None:
            self._fail_to_start(attempt, f"archive {msg.dispatch.spec.archive!r}: {msg.error}")
            return
        try:
            entry = _entry_path(msg.project, msg.dispatch.spec.script_name)
        except UsageError as error:
            self._fail_to_start(attempt, str(error))
            return
        if entry.suffix not in (".py", ".sh"):  # run directly: it must be executable
            entry.chmod(stat.S_IMODE(entry.stat().st_mode) | stat.S_IXUSR)
        self._launch(attempt, _with_project_path(msg.dispatch, msg.project), msg.project, entry)

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
            dirnames.sort()
            for name in sorted(filenames):
                path = here / name
                try:
                    info = path.lstat()
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode) or name == ".titan-archive":
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
    def _read_run_file(self, msg: f.ReadRunFile) -> f.RunFileData:
        root = workspace.run_dir(self.options.data_dir, msg.run_id)
        try:
            path = _entry_path(root, msg.path)
        except UsageError:
            return f.RunFileData(False, 0, b"", True)
        if msg.path.split("/")[0] == ".titan":
            return f.RunFileData(False, 0, b"", True)
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            src.seek(max(msg.offset, 0))
            data = src.read(min(max(msg.limit, 0), f.CHUNK))
        return f.RunFileData(True, size, data, max(msg.offset, 0) + len(data) >= size)


def prune_archives(worker_dir: Path, older_than: float, now: float) -> list[str]:
    """Remove cached archives unused for ``older_than`` seconds; return their digests."""
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
