"""Files through the master (type ids 130-149 from clients and jobs, 207-209 and 212-219 between
the master and its workers).

The master keeps two areas of named files: ``UPLOADS`` (uploaded files, project archives and
artifacts) and ``SCRIPTS`` (the script library that YAML's ``script:`` names). Files move in
chunks (:data:`CHUNK`), so no frame comes near the frame size limit. A worker fetches the archive
an archive job runs from by its digest; the master asks a worker for the files of a run's
workspace (the console's Files view, ``titanctl workspace``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..registry import Message, message
from ..roles import Capability

__all__ = [
    "CHUNK",
    "DeleteFile",
    "FetchBlob",
    "FileArea",
    "FileData",
    "FileInfo",
    "FileList",
    "FileStored",
    "GetFile",
    "GetWorkspaceFile",
    "ListFiles",
    "ListRunFiles",
    "ListWorkspace",
    "PutFile",
    "ReadRunFile",
    "RunFileData",
    "RunFiles",
    "WorkspaceEntry",
    "WorkspaceFileData",
    "WorkspaceListing",
]

CHUNK = 1 << 20  # bytes per upload or download chunk

_A = Capability.ARTIFACTS
_Q = Capability.QUERY
_W = Capability.REGISTER_WORKER
_D = Capability.DISPATCH


class FileArea(enum.IntEnum):
    UPLOADS = 1   # uploaded files, project archives, artifacts
    SCRIPTS = 2   # the script library (YAML ``script:``)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A stored file: its name in its area, size, SHA-256 (hex), when it was stored, and the
    run whose job stored it (empty when a client did)."""

    area: FileArea
    name: str
    size: int
    digest: str
    stored_at: float
    owner_run: str = ""


@dataclass(frozen=True, slots=True)
class WorkspaceEntry:
    """A file in a run's workspace on one worker; ``path`` is relative to the run's folder."""

    worker: str
    path: str
    size: int
    modified: float


# -- clients and jobs -> master -------------------------------------------------------------------


@message(130, requires=_A)
class PutFile(Message):
    """One chunk of an upload. ``upload_id`` (chosen by the client) names the upload; chunks
    come in order (``offset`` = bytes sent before); the chunk with ``final`` stores the file
    under ``name``, replacing an older file of that name. Answered with :class:`FileStored`."""

    area: FileArea
    name: str
    upload_id: str
    offset: int
    data: bytes
    final: bool


@message(131)
class FileStored(Message):
    """How much of the upload arrived; ``info`` once the final chunk stored it."""

    received: int
    info: FileInfo | None = None


@message(132, requires=_A)
class GetFile(Message):
    """Read a stored file from ``offset``, at most ``limit`` bytes (capped at :data:`CHUNK`)."""

    area: FileArea
    name: str
    offset: int = 0
    limit: int = CHUNK


@message(133)
class FileData(Message):
    """A piece of a file; ``eof`` when it reaches the end."""

    info: FileInfo
    offset: int
    data: bytes
    eof: bool


@message(134, requires=_Q)
class ListFiles(Message):
    area: FileArea = FileArea.UPLOADS


@message(135)
class FileList(Message):
    files: tuple[FileInfo, ...]


@message(136, requires=_A)
class DeleteFile(Message):
    """Remove a stored file; answered with the master's ``Done``."""

    area: FileArea
    name: str


@message(137, requires=_Q)
class ListWorkspace(Message):
    """The files of a run's workspace, on every connected worker that holds some."""

    run_id: str


@message(138)
class WorkspaceListing(Message):
    """``unreachable`` names the workers that did not answer in time; ``truncated`` those whose
    listing was cut at the entry cap."""

    run_id: str
    entries: tuple[WorkspaceEntry, ...]
    unreachable: tuple[str, ...] = ()
    truncated: tuple[str, ...] = ()


@message(139, requires=_Q)
class GetWorkspaceFile(Message):
    """Read a file of a run's workspace; ``worker`` may be empty when one worker holds it."""

    run_id: str
    path: str
    worker: str = ""
    offset: int = 0
    limit: int = CHUNK


@message(140)
class WorkspaceFileData(Message):
    worker: str
    path: str
    size: int
    offset: int
    data: bytes
    eof: bool


# -- worker -> master ---------------------------------------------------------------------------


@message(207, requires=_W)
class FetchBlob(Message):
    """A worker reads an archive by its digest (a later upload of the same name does not change
    what a submitted job runs). Answered with :class:`FileData`."""

    digest: str
    offset: int = 0
    limit: int = CHUNK


# -- master -> worker ---------------------------------------------------------------------------


@message(212, requires=_D)
class ListRunFiles(Message):
    """List the files of a run's workspace on this worker, at most ``max_entries``."""

    run_id: str
    max_entries: int


@message(213)
class RunFiles(Message):
    entries: tuple[WorkspaceEntry, ...]
    truncated: bool


@message(214, requires=_D)
class ReadRunFile(Message):
    run_id: str
    path: str
    offset: int
    limit: int


@message(215)
class RunFileData(Message):
    """``found`` is False when this worker has no such file."""

    found: bool
    size: int
    data: bytes
    eof: bool
