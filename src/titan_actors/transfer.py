"""Files to and from the master: uploads, downloads, project folders, the script library and a
run's workspace. The client side of ``wire/messages/files.py``; the CLI and the SDK call these.

gevent-free, over a blocking :class:`~titan_actors.client.MasterClient`. Files move in chunks of
:data:`~titan_actors.wire.messages.files.CHUNK` bytes; downloads land in a temporary file next
to the destination and are renamed into place once complete and checked against the digest.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .client import MasterClient
from .errors import UsageError
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
    "list_files",
    "list_workspace",
    "read_file",
    "read_workspace_file",
    "submit_pipeline",
    "upload",
    "upload_bytes",
    "upload_folder",
]



def upload(client: MasterClient, path: str | os.PathLike[str], name: str | None = None,
           area: FileArea = FileArea.UPLOADS) -> FileInfo:
    """Upload the file at ``path`` as ``name`` (default: its base name). Raises
    FileNotFoundError before any network call when the file is missing, UsageError when the
    master refuses it."""
    path = Path(path)
    if not path.is_file():
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        raise UsageError(f"{path} is not a regular file")
    with open(path, "rb") as src:
        return _send(client, src, name or path.name, area)


def upload_bytes(client: MasterClient, data: bytes, name: str,
                 area: FileArea = FileArea.UPLOADS) -> FileInfo:
    """Upload ``data`` as ``name``."""
    import io
    return _send(client, io.BytesIO(data), name, area)


def upload_folder(client: MasterClient, folder: str | os.PathLike[str],
                  name: str | None = None) -> tuple[FileInfo, PackResult]:
    """Pack ``folder`` as a zip and upload it as ``name`` (default ``<folder name>.zip``)."""
    folder = Path(folder)
    name = name or f"{folder.resolve().name}.zip"
    if not name.endswith(".zip"):
        name += ".zip"
    with tempfile.TemporaryFile() as packed:
        result = pack_folder(folder, packed)
        packed.seek(0)
        return _send(client, packed, name, FileArea.UPLOADS), result


def _send(client: MasterClient, src: BinaryIO, name: str, area: FileArea) -> FileInfo:
    upload_id = secrets.token_hex(8)
    offset = 0
    chunk = src.read(CHUNK)
    while True:
        following = src.read(CHUNK) if chunk else b""
        final = not following
        stored: FileStored = client.ask(PutFile(area, name, upload_id, offset, chunk, final))
        offset += len(chunk)
        if final:
            if stored.info is None:
                raise UsageError(f"the master did not store {name!r}")
            return stored.info
        chunk = following


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


def read_file(client: MasterClient, name: str, area: FileArea = FileArea.UPLOADS) -> bytes:
    """The whole content of a stored file (for small files; :func:`download` for big ones)."""
    return b"".join(piece.data for piece in _chunks(client, area, name))


def download(client: MasterClient, name: str, dest: str | os.PathLike[str],
             area: FileArea = FileArea.UPLOADS) -> Path:
    """Save a stored file at ``dest`` (a file path, or an existing folder to save it in under
    its own name) and return the path written. Raises UsageError for an unknown name or a
    download that does not match the stored digest; nothing is left at ``dest`` then."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / name
    hasher = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            info = None
            for piece in _chunks(client, area, name):
                info = piece.info
                out.write(piece.data)
                hasher.update(piece.data)
        if info is not None and hasher.hexdigest() != info.digest:
            raise UsageError(f"{name!r} changed on the master while it was downloaded; try "
                             "again")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def list_workspace(client: MasterClient, run_id: str) -> WorkspaceListing:
    """The files of a run's workspace on every connected worker."""
    return client.ask(ListWorkspace(run_id))


def read_workspace_file(client: MasterClient, run_id: str, path: str,
                        worker: str = "") -> tuple[str, bytes]:
    """(worker, content) of a file in a run's workspace. Raises UsageError when no connected
    worker has it, or several do and ``worker`` does not say which."""
    offset, parts, holder = 0, [], worker
    while True:
        piece: WorkspaceFileData = client.ask(GetWorkspaceFile(run_id, path, holder, offset,
                                                               CHUNK))
        holder = piece.worker  # the next chunks come from the same worker
        parts.append(piece.data)
        offset += len(piece.data)
        if piece.eof or not piece.data:
            return holder, b"".join(parts)


def submit_pipeline(client: MasterClient, spec: RunSpec, from_run: str = "",
                    from_job: str = "") -> RunAccepted:
    """Submit a loaded pipeline; in project mode, upload its folder as ``<name>.zip`` first
    (so its archive jobs run the files as they are now)."""
    from .pipeline import pipeline_project
    project = pipeline_project(spec)
    if project is not None:
        folder, archive = project
        upload_folder(client, folder, archive)
    return client.submit(spec, from_run, from_job)
