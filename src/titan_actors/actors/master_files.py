"""The master's file requests: uploads, downloads, the script library, archive pinning, and the
files of a run's workspace on whichever workers hold them.

A mixin of :class:`~titan_actors.actors.master.MasterActor` (it uses ``self.files``, a
:class:`~titan_actors.master.files.FileStore`, the worker registry and the scheduler).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from ..errors import SubmissionError, TitanError, UsageError
from ..offload import run_in_thread
from ..scheduler.model import JobSpec, RunSpec
from ..wire.messages import files as f
from ..wire.messages.master import Done
from .base import Sender, handles
from .future import Future

log = logging.getLogger("titan.master")

MAX_LIBRARY_SCRIPT = 16 * 1024 * 1024
WORKSPACE_ENTRIES = 5000      # entries listed per worker
WORKSPACE_TIMEOUT = 5.0       # seconds a worker has to answer


class FileRequests:
    """Handlers for files (see the module docstring)."""

    # -- uploads and downloads ------------------------------------------------------------------

    @handles(f.PutFile)
    def _put_file(self, msg: f.PutFile, sender: Sender):
        self._check_area_write(msg.area, sender)
        received = self.files.write_chunk(msg.area, msg.name, msg.upload_id, msg.offset,
                                          msg.data)
        if not msg.final:
            return f.FileStored(received)
        reply = Future("stored file")

        def finish() -> None:
            try:
                info = run_in_thread(self.files.finish, msg.upload_id)
            except Exception as error:
                reply.set_exception(error)
                return
            log.info("stored %s %r (%d bytes, %s)", msg.area.name.lower(), info.name, info.size,
                     info.digest[:12])
            reply.set(f.FileStored(received, info))
        self.spawn(finish)
        return reply

    def _check_area_write(self, area: f.FileArea, sender: Sender) -> None:
        """Jobs may upload files and artifacts, but the script library is for people."""
        from ..wire.roles import Role
        if area is f.FileArea.SCRIPTS and sender.peer.role is Role.JOB:
            from ..errors import PermissionDeniedError
            raise PermissionDeniedError("a job cannot change the master's script library; "
                                        "deploy scripts as a client (titanctl deploy)")

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
    def _delete_file(self, msg: f.DeleteFile, sender: Sender) -> Done:
        self._check_area_write(msg.area, sender)
        info = self.files.delete(msg.area, msg.name)
        return Done(f"deleted {info.name!r} ({info.size} bytes)")

    def _collect_files(self) -> None:
        """Drop blobs no name and no retained job refers to."""
        keep = set()
        for run in self.scheduler.runs():
            for job in self.scheduler.jobs(run.run_id):
                digest = self.scheduler.job_spec(run.run_id, job.job_id).archive_digest
                if digest:
                    keep.add(digest)
        removed = self.files.collect(keep)
        if removed:
            log.info("removed %d stored files no name or job refers to", len(removed))

    # -- submissions --------------------------------------------------------------------------

    def _with_files(self, spec: RunSpec) -> RunSpec:
        return dataclasses.replace(spec, jobs=self._resolve_files(spec.jobs))

    def _resolve_files(self, jobs: Sequence[JobSpec]) -> tuple[JobSpec, ...]:
        """Fill library scripts in and pin archives. Raises SubmissionError listing every job
        whose script or archive is not stored here."""
        out, problems = [], []
        for spec in jobs:
            try:
                if spec.library and not spec.script:
                    info, content = self.files.read(f.FileArea.SCRIPTS, spec.library, 0,
                                                    MAX_LIBRARY_SCRIPT + 1)
                    if len(content) > MAX_LIBRARY_SCRIPT:
                        raise UsageError(f"library script {spec.library!r} is larger than "
                                         f"{MAX_LIBRARY_SCRIPT} bytes")
                    spec = dataclasses.replace(spec, script_name=spec.library, script=content)
                if spec.archive and not spec.archive_digest:
                    info = self.files.info(f.FileArea.UPLOADS, spec.archive)
                    spec = dataclasses.replace(spec, archive_digest=info.digest)
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
                except TitanError as error:
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
            except TitanError as error:
                log.info("cannot ask worker %s: %s", entry.name, error)
        return asks
