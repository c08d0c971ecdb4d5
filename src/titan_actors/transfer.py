"""Files to and from the master: uploads, downloads, project folders, the script library and a
run's workspace. The client side of ``wire/messages/files.py``; the CLI and the SDK call these.

gevent-free, over a blocking :class:`~titan_actors.client.MasterClient`. Files move in chunks of
:data:`~titan_actors.wire.messages.files.CHUNK` bytes, and are never held whole in memory:
:func:`iter_file` and :func:`iter_workspace_file` yield the chunks as they come; downloads land
in a temporary file next to the destination and are renamed into place once complete and
checked against the digest.

Errors: the master's refusals come back as the UsageError it raised; a local file or folder
that cannot be read or written is a :class:`~titan_actors.errors.LocalFileError` naming the
local path (never a temporary file), which leaves the connection usable; a broken connection is
a ConnectionError_.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from .client import MasterClient
from .errors import LocalFileError, UsageError
from .execution.archives import PackResult, pack_folder
from .scheduler.model import RunSpec
from .wire.messages.files import (
    CHUNK,
    DeleteFile,
    FileArea,
    FileData,
    FileInfo,
    FileList,
    FileStored,
    GetFile,
    GetWorkspaceFile,
    ListFiles,
    ListWorkspace,
    PutFile,
    WorkspaceFileData,
    WorkspaceListing,
)
from .wire.messages.master import RunAccepted

__all__ = [
    "FileArea",
    "delete_file",
    "download",
    "iter_file",
    "iter_workspace_file",
    "list_files",
    "list_workspace",
    "read_file",
    "read_workspace_file",
    "submit_pipeline",
    "upload",
    "upload_bytes",
    "upload_folder",
]


# -- local files -------------------------------------------------------------------------------

def _why(error: OSError) -> str:
    """What is wrong, without the file name the OS error carries (maybe a temporary file's)."""
    if isinstance(error, PermissionError):
        return "permission denied"
    return error.strerror or type(error).__name__


def _cannot_read(path: Path, error: OSError) -> LocalFileError:
    if isinstance(error, FileNotFoundError):
        return LocalFileError(f"cannot read {path}: it does not exist")
    if isinstance(error, IsADirectoryError):
        return LocalFileError(f"cannot read {path}: it is a folder")
    return LocalFileError(f"cannot read {path}: {_why(error)}")


def _cannot_save(dest: Path, error: OSError) -> LocalFileError:
    folder = dest.parent
    if not folder.exists():
        why = f"the folder {folder} does not exist"
    elif not folder.is_dir():
        why = f"{folder} is not a folder"
    elif isinstance(error, PermissionError):
        why = f"permission denied in the folder {folder}"
    elif isinstance(error, IsADirectoryError):
        why = f"{dest} is a folder"
    else:
        why = _why(error)
    return LocalFileError(f"cannot save to {dest}: {why}")


@contextmanager
def _saving(dest: Path) -> Iterator[Callable[[bytes], None]]:
    """A ``write(data)`` function for a new file at ``dest``: the data goes to a temporary file
    next to it, renamed into place when the block ends normally and removed when it raises.
    Raises LocalFileError naming ``dest`` when the file cannot be created, written or renamed."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    except OSError as error:
        raise _cannot_save(dest, error) from error
    out = os.fdopen(fd, "wb")

    def write(data: bytes) -> None:
        try:
            out.write(data)
        except OSError as error:
            raise _cannot_save(dest, error) from error

    try:
        yield write
        try:
            out.close()
            os.replace(tmp, dest)
        except OSError as error:
            raise _cannot_save(dest, error) from error
    except BaseException:
        with suppress(OSError):
            out.close()
        with suppress(OSError):
            os.unlink(tmp)
        raise


# -- uploads -----------------------------------------------------------------------------------

def upload(client: MasterClient, path: str | os.PathLike[str], name: str | None = None,
           area: FileArea = FileArea.UPLOADS) -> FileInfo:
    """Upload the file at ``path`` as ``name`` (default: its base name). Raises
    LocalFileError before any network call when the file is missing, not a regular file or
    unreadable (and naming it when a read fails midway), UsageError when the master refuses
    it."""
    path = Path(path)
    if not path.is_file():  # before opening: a FIFO would block the open
        raise LocalFileError(f"cannot read {path}: it does not exist" if not path.exists()
                             else f"cannot read {path}: it is not a regular file")
    try:
        src = open(path, "rb")
    except OSError as error:
        raise _cannot_read(path, error) from error
    with src:
        return _send(client, src, name or path.name, area, path)


def upload_bytes(client: MasterClient, data: bytes, name: str,
                 area: FileArea = FileArea.UPLOADS) -> FileInfo:
    """Upload ``data`` as ``name``."""
    return _send(client, io.BytesIO(data), name, area, None)


def upload_folder(client: MasterClient, folder: str | os.PathLike[str],
                  name: str | None = None) -> tuple[FileInfo, PackResult]:
    """Pack ``folder`` as a zip and upload it as ``name`` (default ``<folder name>.zip``).
    Raises UsageError for a missing folder or one too big to pack, LocalFileError when a file
    of it (or the temporary archive) cannot be read or written."""
    folder = Path(folder)
    name = name or f"{folder.resolve().name}.zip"
    if not name.endswith(".zip"):
        name += ".zip"
    try:
        packed = tempfile.TemporaryFile()
    except OSError as error:
        raise LocalFileError(f"cannot pack {folder}: no temporary file for the archive "
                             f"({_why(error)})") from error
    with packed:
        try:
            result = pack_folder(folder, packed)
            packed.seek(0)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            raise LocalFileError(f"cannot pack {folder}: {where}{_why(error)}") from error
        return _send(client, packed, name, FileArea.UPLOADS, folder), result


def _send(client: MasterClient, src: BinaryIO, name: str, area: FileArea,
          local: Path | None) -> FileInfo:
    def read() -> bytes:
        try:
            return src.read(CHUNK)
        except OSError as error:
            raise _cannot_read(local or Path(name), error) from error

    upload_id = secrets.token_hex(8)
    offset = 0
    chunk = read()
    while True:
        following = read() if chunk else b""
        final = not following
        stored: FileStored = client.ask(PutFile(area, name, upload_id, offset, chunk, final))
        offset += len(chunk)
        if final:
            if stored.info is None:
                raise UsageError(f"the master did not store {name!r}")
            return stored.info
        chunk = following


# -- stored files ------------------------------------------------------------------------------

def list_files(client: MasterClient, area: FileArea = FileArea.UPLOADS) -> tuple[FileInfo, ...]:
    reply: FileList = client.ask(ListFiles(area))
    return reply.files


def delete_file(client: MasterClient, name: str, area: FileArea = FileArea.UPLOADS) -> str:
    return client.ask(DeleteFile(area, name)).text


def _chunks(client: MasterClient, area: FileArea, name: str) -> Iterator[FileData]:
    offset = 0
    while True:
        piece: FileData = client.ask(GetFile(area, name, offset, CHUNK))
        yield piece
        offset += len(piece.data)
        if piece.eof or not piece.data:
            return


def iter_file(client: MasterClient, name: str,
              area: FileArea = FileArea.UPLOADS) -> Iterator[bytes]:
    """Yield the content of a stored file chunk by chunk (at most :data:`CHUNK` bytes each).

    Raises UsageError for an unknown name, or (after the last chunk) when the file was
    replaced on the master while it was read, so the chunks do not make one file.
    """
    hasher = hashlib.sha256()
    info: FileInfo | None = None
    for piece in _chunks(client, area, name):
        if info is None:
            info = piece.info
        elif piece.info.digest != info.digest:
            raise _changed(name)
        hasher.update(piece.data)
        if piece.data:
            yield piece.data
    if info is not None and hasher.hexdigest() != info.digest:
        raise _changed(name)


def _changed(name: str) -> UsageError:
    return UsageError(f"{name!r} changed on the master while it was downloaded; try again")


def read_file(client: MasterClient, name: str, area: FileArea = FileArea.UPLOADS) -> bytes:
    """The whole content of a stored file (for small files: :func:`iter_file` streams it,
    :func:`download` saves it)."""
    return b"".join(iter_file(client, name, area))


def download(client: MasterClient, name: str, dest: str | os.PathLike[str],
             area: FileArea = FileArea.UPLOADS) -> Path:
    """Save a stored file at ``dest`` (a file path, or an existing folder to save it in under
    its own name) and return the path written. Raises UsageError for an unknown name or a
    download that does not match the stored digest, LocalFileError (naming ``dest``) when it
    cannot be written there; nothing is left at ``dest`` then."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / name
    with _saving(dest) as write:
        for chunk in iter_file(client, name, area):
            write(chunk)
    return dest


# -- a run's workspace -------------------------------------------------------------------------

def list_workspace(client: MasterClient, run_id: str) -> WorkspaceListing:
    """The files of a run's workspace on every connected worker."""
    return client.ask(ListWorkspace(run_id))


def _workspace_chunks(client: MasterClient, run_id: str, path: str,
                      worker: str) -> Iterator[tuple[str, bytes]]:
    """(worker, chunk) pairs of a workspace file, up to the size the first chunk reported (a
    file a job keeps writing would otherwise never end). The first pair comes even when its
    chunk is empty, to name the worker."""
    piece: WorkspaceFileData = client.ask(GetWorkspaceFile(run_id, path, worker, 0, CHUNK))
    holder, size = piece.worker, piece.size  # the next chunks come from the same worker
    offset = 0
    while True:
        data = piece.data[:max(size - offset, 0)]
        if data or offset == 0:
            yield holder, data
        offset += len(data)
        if piece.eof or not piece.data or offset >= size:
            return
        piece = client.ask(GetWorkspaceFile(run_id, path, holder, offset,
                                            min(CHUNK, size - offset)))


def iter_workspace_file(client: MasterClient, run_id: str, path: str,
                        worker: str = "") -> Iterator[bytes]:
    """Yield a file of a run's workspace chunk by chunk, up to the size it had when the first
    chunk was read. Raises UsageError when no connected worker has it, or several do and
    ``worker`` does not say which."""
    for _holder, chunk in _workspace_chunks(client, run_id, path, worker):
        if chunk:
            yield chunk


def read_workspace_file(client: MasterClient, run_id: str, path: str,
                        worker: str = "") -> tuple[str, bytes]:
    """(worker, content) of a file in a run's workspace (see :func:`iter_workspace_file`)."""
    holders, parts = [], []
    for each, chunk in _workspace_chunks(client, run_id, path, worker):
        holders.append(each)
        parts.append(chunk)
    return holders[0], b"".join(parts)


# -- pipelines ---------------------------------------------------------------------------------

def submit_pipeline(client: MasterClient, spec: RunSpec, from_run: str = "",
                    from_job: str = "") -> RunAccepted:
    """Submit a loaded pipeline; in project mode, upload its folder as ``<name>.zip`` first and
    pin its archive jobs to the uploaded content (``file_digest``), so an upload of the same
    name between the two steps cannot change what they run."""
    from .pipeline import pipeline_project
    project = pipeline_project(spec)
    if project is not None:
        folder, archive = project
        info, _packed = upload_folder(client, folder, archive)
        spec = dataclasses.replace(spec, jobs=tuple(
            dataclasses.replace(job, file_digest=info.digest) if job.archive == archive
            else job for job in spec.jobs))
    return client.submit(spec, from_run, from_job)
