"""Files in the native SDK: uploads, project archives, the script library, downloads, and the
files of a run's workspace. Mixins of :class:`~titan_sdk.native.Titan` and
:class:`~titan_sdk.native.Run`; each method is one call of :mod:`titan_actors.transfer`.
"""

from __future__ import annotations

import os
from pathlib import Path

from titan_actors import transfer
from titan_actors.wire.messages.files import FileArea, FileInfo, WorkspaceEntry

__all__ = ["ClientFiles", "RunFiles"]

_Path = str | os.PathLike[str]


def _area(scripts: bool) -> FileArea:
    return FileArea.SCRIPTS if scripts else FileArea.UPLOADS


class ClientFiles:
    """File methods of the client (they use its ``_call``)."""

    def upload(self, path: _Path, name: str | None = None) -> FileInfo:
        """Upload a file (as ``name``, default its base name); a folder is uploaded as a
        project archive ``<name or folder name>.zip`` for archive jobs. Raises
        FileNotFoundError before any call when ``path`` does not exist."""
        if Path(path).is_dir():
            return self._call(lambda c: transfer.upload_folder(c, path, name)[0])
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")
        return self._call(lambda c: transfer.upload(c, path, name))

    def deploy_script(self, path: _Path | None = None, *, name: str | None = None,
                      content: str | bytes | None = None) -> FileInfo:
        """Add a script to the master's library (YAML ``script: NAME``): from a file, or
        ``name`` and ``content``."""
        if content is not None:
            if not name:
                raise ValueError("deploy_script(name=..., content=...) needs the name")
            data = content.encode() if isinstance(content, str) else content
            return self._call(lambda c: transfer.upload_bytes(c, data, name, FileArea.SCRIPTS))
        if path is None:
            raise ValueError("deploy_script needs a path, or name and content")
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return self._call(lambda c: transfer.upload(c, path, name, FileArea.SCRIPTS))

    def files(self, scripts: bool = False) -> list[FileInfo]:
        """The uploaded files (or, with ``scripts``, the script library)."""
        return list(self._call(lambda c: transfer.list_files(c, _area(scripts)), read=True))

    def download(self, name: str, dest: _Path, scripts: bool = False) -> Path:
        """Save a stored file at ``dest`` (a file, or a folder to save it in); return the path.
        Raises RequestRefused naming the file when it is not stored, or naming ``dest`` when it
        cannot be saved there (a missing folder, no permission); the connection stays open."""
        return self._call(lambda c: transfer.download(c, name, dest, _area(scripts)), ref=name)

    def read_file(self, name: str, scripts: bool = False) -> bytes:
        """The content of a stored file."""
        return self._call(lambda c: transfer.read_file(c, name, _area(scripts)), ref=name,
                          read=True)


class RunFiles:
    """The files a run's jobs left in their workspace, on whichever workers ran them."""

    def files(self) -> list[WorkspaceEntry]:
        """Every file of the run's workspace on the connected workers (worker, path, size)."""
        listing = self.client._call(lambda c: transfer.list_workspace(c, self.run_id),
                                    ref=self.run_id, read=True)
        return list(listing.entries)

    def read_file(self, path: str, worker: str = "") -> bytes:
        """A file of the run's workspace (``path`` relative to the run's folder); ``worker``
        when several workers have one of that name. Raises RequestRefused when no connected
        worker has it, NotFound for an unknown run."""
        return self.client._call(
            lambda c: transfer.read_workspace_file(c, self.run_id, path, worker)[1],
            ref=self.run_id, read=True)
