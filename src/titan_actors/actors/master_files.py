"""The master's file requests: uploads, downloads, the script library, pinning the files a job
runs, and the files of a run's workspace on whichever workers hold them.

A mixin of :class:`~titan_actors.actors.master.MasterActor` (it uses ``self.files``, a
:class:`~titan_actors.master.files.FileStore`, the worker registry and the scheduler). The
blocking file work (fsyncs, renames, unlinks) runs in the threadpool from owned greenlets; the
handlers answer with a Future.

Who may do what: clients store, replace and delete anything; a job (role JOB) may store files
and artifacts and replace or delete those stored by jobs, but not a file a client stored (a
project archive a person uploaded must not be swapped by a job) and nothing in the script
library.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..aof.record import DEFAULT_MAX_RECORD_SIZE
from ..errors import PermissionDeniedError, SubmissionError, UsageError
from ..offload import run_in_thread
from ..scheduler.model import JobSpec, RunSpec
from ..wire import codec
from ..wire.messages import files as f
from ..wire.messages.master import AddJobs, Done, SubmitRun
from ..wire.roles import Role
from .base import Sender, handles
from .future import Future

log = logging.getLogger("titan.master")

WORKSPACE_ENTRIES = 5000      # entries listed per worker
WORKSPACE_TOTAL = 20_000      # entries in one answer, all workers together
WORKSPACE_TIMEOUT = 5.0       # seconds a worker has to answer
# a submission's record must fit in one AOF record, with room for the record's own fields
_MAX_SUBMISSION = DEFAULT_MAX_RECORD_SIZE - (256 << 10)


class FileRequests:
    """Handlers for files (see the module docstring)."""

    def _in_thread(self, what: str, work: Callable[[], Any],
                   then: Callable[[Any], Any] = lambda value: value) -> Future:
        """Run ``work`` in the threadpool from an owned greenlet; the Future gets
        ``then(result)`` or the error."""
        reply = Future(what)

        def run() -> None:
            try:
                reply.set(then(run_in_thread(work)))
            except Exception as error:  # the caller's answer, not a crash of the master
                reply.set_exception(error)
        self.spawn(run)
        return reply

    # -- uploads and downloads ------------------------------------------------------------------

    @handles(f.PutFile)
    def _put_file(self, msg: f.PutFile, sender: Sender):
        if msg.offset == 0:
            self._check_write(msg.area, msg.name, sender, "replace")
        owner_run = sender.peer.run_id if sender.peer.role is Role.JOB else ""
        received = self.files.write_chunk(msg.area, msg.name, msg.upload_id, msg.offset,
                                          msg.data, owner=sender.ref, owner_run=owner_run)
        if not msg.final:
            return f.FileStored(received)
        upload = self.files.take(msg.upload_id)

        def stored(info: f.FileInfo) -> f.FileStored:
            log.info("stored %s %r (%d bytes, %s)", info.area.name.lower(), info.name,
                     info.size, info.digest[:12])
            return f.FileStored(received, info)
        return self._in_thread("stored file", lambda: self.files.finish(upload), stored)

    def _check_write(self, area: f.FileArea, name: str, sender: Sender, verb: str) -> None:
        """A job may not touch the script library, nor a file a client stored."""
        if sender.peer.role is not Role.JOB:
            return
        if area is f.FileArea.SCRIPTS:
            raise PermissionDeniedError("a job cannot change the master's script library; "
                                        "deploy scripts as a client (titanctl deploy)")
        existing = self.files.find(area, name)
        if existing is not None and not existing.owner_run:
            raise PermissionDeniedError(f"a job cannot {verb} {name!r}: a client stored it "
                                        "(store the job's file under another name)")

    @handles(f.GetFile)
    def _get_file(self, msg: f.GetFile) -> f.FileData:
        info, data = self.files.read(msg.area, msg.name, msg.offset, min(msg.limit, f.CHUNK))
        return f.FileData(info, msg.offset, data, msg.offset + len(data) >= info.size)

    @handles(f.FetchBlob)
    def _fetch_blob(self, msg: f.FetchBlob) -> f.FileData:
        info = self.files.blob_info(msg.digest)
        data = self.files.read_blob(msg.digest, msg.offset, min(msg.limit, f.CHUNK))
        return f.FileData(info, msg.offset, data, msg.offset + len(data) >= info.size)

    @handles(f.ListFiles)
    def _list_files(self, msg: f.ListFiles) -> f.FileList:
        return f.FileList(tuple(self.files.list(msg.area)))

    @handles(f.DeleteFile)
    def _delete_file(self, msg: f.DeleteFile, sender: Sender) -> Future:
        self.files.info(msg.area, msg.name)  # an unknown name: say so, naming what is there
        self._check_write(msg.area, msg.name, sender, "delete")
        return self._in_thread("deleted file", lambda: self.files.delete(msg.area, msg.name),
                               lambda info: Done(f"deleted {info.name!r} ({info.size} bytes)"))

    def _collect_files(self) -> None:
        """Drop (in the threadpool) the blobs no name and no retained job refers to."""
        keep = set()
        for run in self.scheduler.runs():
            for job in self.scheduler.jobs(run.run_id):
                digest = self.scheduler.job_spec(run.run_id, job.job_id).file_digest
                if digest:
                    keep.add(digest)

        def collect() -> None:
            try:
                removed = run_in_thread(self.files.collect, keep)
            except OSError as error:  # tried again after the next retention
                log.warning("could not collect stored files: %s", error)
                return
            if removed:
                log.info("removed %d stored files no name or job refers to", len(removed))
        self.spawn(collect)

    def _files_peer_gone(self, ref) -> None:
        dropped = self.files.abort_owner(ref) if self.files is not None else 0
        if dropped:
            log.info("dropped %d unfinished uploads of a closed connection", dropped)

    # -- submissions --------------------------------------------------------------------------

    def _with_files(self, spec: RunSpec) -> RunSpec:
        spec = dataclasses.replace(spec, jobs=self._resolve_files(spec.jobs))
        self._check_size(len(codec.encode(SubmitRun(spec))), f"run {spec.name!r}")
        return spec

    def _jobs_with_files(self, run_id: str, jobs: Sequence[JobSpec]) -> tuple[JobSpec, ...]:
        resolved = self._resolve_files(jobs)
        self._check_size(len(codec.encode(AddJobs(run_id, resolved))), f"jobs for {run_id}")
        return resolved

    @staticmethod
    def _check_size(size: int, what: str) -> None:
        if size > _MAX_SUBMISSION:
            problem = (f"{what} is {size} bytes, more than the {_MAX_SUBMISSION} bytes one "
                       "submission may hold; deploy big scripts to the script library "
                       "(script: NAME) or upload a project, which jobs name instead of carrying")
            raise SubmissionError(f"submission refused: {problem}", (problem,))

    def _resolve_files(self, jobs: Sequence[JobSpec]) -> tuple[JobSpec, ...]:
        """Pin the stored file each archive or library job runs (its digest). Raises
        SubmissionError listing every job whose file is not stored here."""
        out, problems = [], []
        for spec in jobs:
            try:
                if spec.file_digest:  # pinned by the submitter: it must be here
                    self.files.blob_info(spec.file_digest)
                elif spec.library:
                    info = self.files.info(f.FileArea.SCRIPTS, spec.library)
                    spec = dataclasses.replace(spec, file_digest=info.digest)
                elif spec.archive:
                    info = self.files.info(f.FileArea.UPLOADS, spec.archive)
                    spec = dataclasses.replace(spec, file_digest=info.digest)
            except UsageError as error:
                problems.append(f"job '{spec.id}': {error}")
            out.append(spec)
        if problems:
            hint = ("deploy library scripts with deploy_script / titanctl deploy, and upload "
                    "archives with upload_project_folder / titanctl upload")
            raise SubmissionError("submission refused:\n  " + "\n  ".join(problems)
                                  + f"\n({hint})", tuple(problems))
        return tuple(out)

    # -- a run's workspace on the workers -----------------------------------------------------

    @handles(f.ListWorkspace)
    def _list_workspace(self, msg: f.ListWorkspace, sender: Sender) -> Future:
        self._check_run_scope(sender, msg.run_id)
        self.scheduler.run(msg.run_id)  # an unknown run is an error, not an empty listing
        asks = self._ask_workers(f.ListRunFiles(msg.run_id, WORKSPACE_ENTRIES))
        reply = Future("workspace listing")

        def gather() -> None:
            entries, unreachable, truncated = [], [], []
            for name, answer in asks:
                try:
                    found = answer.get(WORKSPACE_TIMEOUT)
                except Exception as error:
                    log.info("worker %s did not list run %s: %s", name, msg.run_id, error)
                    unreachable.append(name)
                    continue
                entries.extend(found.entries)
                if found.truncated:
                    truncated.append(name)
            entries.sort(key=lambda e: (e.path, e.worker))
            if len(entries) > WORKSPACE_TOTAL:
                truncated.extend(sorted({e.worker for e in entries[WORKSPACE_TOTAL:]}
                                        - set(truncated)))
                del entries[WORKSPACE_TOTAL:]
            reply.set(f.WorkspaceListing(msg.run_id, tuple(entries), tuple(unreachable),
                                         tuple(truncated)))
        self.spawn(gather)
        return reply

    @handles(f.GetWorkspaceFile)
    def _get_workspace_file(self, msg: f.GetWorkspaceFile, sender: Sender) -> Future:
        self._check_run_scope(sender, msg.run_id)
        self.scheduler.run(msg.run_id)
        request = f.ReadRunFile(msg.run_id, msg.path, msg.offset, min(msg.limit, f.CHUNK))
        asks = self._ask_workers(request, only=msg.worker)
        if msg.worker and not asks:
            raise UsageError(f"worker {msg.worker!r} is not connected")
        reply = Future("workspace file")

        def gather() -> None:
            holders, failed = [], []
            for name, answer in asks:
                try:
                    found = answer.get(WORKSPACE_TIMEOUT)
                except Exception as error:
                    failed.append(f"{name}: {error}")
                    continue
                if found.found:
                    holders.append((name, found))
            if len(holders) == 1:
                name, found = holders[0]
                reply.set(f.WorkspaceFileData(name, msg.path, found.size, msg.offset,
                                              found.data, found.eof))
            elif holders:
                names = ", ".join(name for name, _ in holders)
                reply.set_exception(UsageError(
                    f"{msg.path!r} of run {msg.run_id} is on several workers ({names}); "
                    "name one (worker=...)"))
            else:
                extra = f" ({'; '.join(failed)})" if failed else ""
                reply.set_exception(UsageError(
                    f"no connected worker has {msg.path!r} in the workspace of run "
                    f"{msg.run_id}{extra}"))
        self.spawn(gather)
        return reply

    def _ask_workers(self, message, only: str = "") -> list[tuple[str, Future]]:
        """Ask every connected worker (or the one named) at once; (name, reply future)."""
        asks = []
        for entry in self.workers:
            if entry.ref is None or not entry.ref.is_alive or (only and entry.name != only):
                continue
            try:
                asks.append((entry.name, entry.ref.ask_async(message,
                                                             timeout=WORKSPACE_TIMEOUT)))
            except Exception as error:
                log.info("cannot ask worker %s: %s", entry.name, error)
        return asks

