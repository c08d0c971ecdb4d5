"""The master's files: uploads, project archives, artifacts and the script library.

Layout under the master's data directory::

    files/blobs/<sha256>     each distinct content once (content-addressed, mode 0600)
    files/index.json         area -> name -> {digest, size, stored_at}
    files/tmp/<upload id>    uploads in progress (removed at start)

A name points at a blob; storing a name again points it at the new blob, and a submitted archive
job keeps the digest it was submitted with, so re-uploading a project never changes what an
already submitted job runs. Blobs no name and no retained job refers to are collected
(:meth:`FileStore.collect`).

Durability: a stored file's blob is fsynced and renamed into place, then the index is rewritten
(temp file, fsync, ``os.replace``, directory fsync) before the upload is acknowledged.

Thread-safe: the master runs :meth:`FileStore.finish` (the fsyncs) in gevent's threadpool while
its loop goes on serving reads, so the index is guarded by a lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError
from ..wire.messages.files import FileArea, FileInfo

__all__ = ["FileStore", "check_name"]

log = logging.getLogger("titan.master.files")

_MAX_NAME_BYTES = 255
_DIGEST = re.compile(r"[0-9a-f]{64}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_name(name: str, what: str = "file name") -> str:
    """Return ``name`` when it can name a stored file: one plain name, no ``/``, NUL or
    control character, not ``.``/``..``, at most 255 bytes. Raises UsageError otherwise."""
    if (not name or name in (".", "..") or "/" in name or "\\" in name
            or any(ord(c) < 32 for c in name)
            or len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES):
        raise UsageError(f"{what} {name!r} is not a plain file name (one name without '/', "
                         f"'\\' or control characters, not '.' or '..', at most "
                         f"{_MAX_NAME_BYTES} bytes)")
    return name


@dataclass
class _Upload:
    area: FileArea
    name: str
    file: BinaryIO
    path: Path
    hasher: "hashlib._Hash"
    received: int = 0
    touched: float = field(default_factory=time.monotonic)


class FileStore:
    """Named files in two areas (see the module docstring).

    Args:
        root: the ``files`` directory (created).
        max_size: the largest file accepted, in bytes.
        clock: wall-clock time for ``stored_at``.
    """

    def __init__(self, root: Path, *, max_size: int = 4 << 30,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.max_size = max_size
        self._clock = clock
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}
        for sub in ("blobs", "tmp"):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in (root / "tmp").iterdir():
            leftover.unlink(missing_ok=True)
        self._index: dict[FileArea, dict[str, FileInfo]] = {area: {} for area in FileArea}
        self._load_index()

    # -- reading ------------------------------------------------------------------------------

    def info(self, area: FileArea, name: str) -> FileInfo:
        """The stored file ``name``. Raises UsageError naming what is there when it is not."""
        with self._lock:
            found = self._index[area].get(name)
            if found is None:
                known = sorted(self._index[area])
        if found is None:
            listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            where = "the script library" if area is FileArea.SCRIPTS else "the uploaded files"
            raise UsageError(f"{name!r} is not in {where} (there: {listed or 'nothing'})")
        return found

    def list(self, area: FileArea) -> list[FileInfo]:
        with self._lock:
            return sorted(self._index[area].values(), key=lambda f: f.name)

    def read(self, area: FileArea, name: str, offset: int, limit: int) -> tuple[FileInfo, bytes]:
        """Up to ``limit`` bytes of a named file from ``offset``."""
        info = self.info(area, name)
        return info, self.read_blob(info.digest, offset, limit)

    def read_blob(self, digest: str, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes of the blob ``digest`` from ``offset``. Raises UsageError for
        an unknown digest or a negative offset."""
        if not _DIGEST.fullmatch(digest):
            raise UsageError(f"{digest!r} is not a SHA-256 digest (64 lowercase hex digits)")
        if offset < 0 or limit < 0:
            raise UsageError(f"offset {offset} and limit {limit} must be >= 0")
        try:
            with open(self.root / "blobs" / digest, "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            raise UsageError(f"no stored file has the digest {digest} (was it collected?)") \
                from None

    def blob_info(self, digest: str) -> FileInfo:
        """A FileInfo for a blob (its name is the digest)."""
        try:
            stat = (self.root / "blobs" / digest).stat()
        except (FileNotFoundError, ValueError):
            raise UsageError(f"no stored file has the digest {digest!r}") from None
        return FileInfo(FileArea.UPLOADS, digest, stat.st_size, digest, stat.st_mtime)

    # -- writing ------------------------------------------------------------------------------

    def write_chunk(self, area: FileArea, name: str, upload_id: str, offset: int,
                    data: bytes) -> int:
        """Append one chunk of an upload; return the bytes received so far.

        Raises UsageError for a bad name or upload id, a chunk out of order, or a file over
        ``max_size`` (the upload is then dropped).
        """
        check_name(name)
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise UsageError(f"upload id {upload_id!r} must be 1-64 letters, digits, '-' or '_'")
        upload = self._uploads.get(upload_id)
        if upload is None:
            if offset != 0:
                raise UsageError(f"upload {upload_id!r} of {name!r} is not known here (did the "
                                 "master restart?); start it again from offset 0")
            self._drop_idle()
            path = self.root / "tmp" / upload_id
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            upload = _Upload(area, name, os.fdopen(fd, "wb"), path, hashlib.sha256())
            self._uploads[upload_id] = upload
        if (upload.area, upload.name) != (area, name):
            raise UsageError(f"upload {upload_id!r} is for {upload.name!r}, not {name!r}")
        if offset != upload.received:
            raise UsageError(f"upload of {name!r}: chunk at offset {offset}, expected "
                             f"{upload.received}; chunks must come in order")
        if upload.received + len(data) > self.max_size:
            self.abort(upload_id)
            raise UsageError(f"{name!r} is larger than the {self.max_size} bytes a stored file "
                             "may have (setting max_upload_size)")
        upload.file.write(data)
        upload.hasher.update(data)
        upload.received += len(data)
        upload.touched = time.monotonic()
        return upload.received

    def finish(self, upload_id: str) -> FileInfo:
        """Store a completed upload under its name, durably (blocking: fsyncs). Returns it."""
        upload = self._uploads.pop(upload_id, None)
        if upload is None:
            raise UsageError(f"upload {upload_id!r} is not in progress")
        try:
            upload.file.flush()
            os.fsync(upload.file.fileno())
            upload.file.close()
            digest = upload.hasher.hexdigest()
            blob = self.root / "blobs" / digest
            if blob.exists():
                upload.path.unlink()
            else:
                os.replace(upload.path, blob)
                _fsync_dir(blob.parent)
            info = FileInfo(upload.area, upload.name, upload.received, digest, self._clock())
            with self._lock:
                self._index[upload.area][upload.name] = info
                self._save_index()
            return info
        except BaseException:
            upload.file.close()
            upload.path.unlink(missing_ok=True)
            raise

    def abort(self, upload_id: str) -> None:
        upload = self._uploads.pop(upload_id, None)
        if upload is not None:
            upload.file.close()
            upload.path.unlink(missing_ok=True)

    def delete(self, area: FileArea, name: str) -> FileInfo:
        """Forget a name (its blob goes at the next :meth:`collect` unless a job keeps it)."""
        info = self.info(area, name)
        with self._lock:
            self._index[area].pop(name, None)
            self._save_index()
        return info

    def collect(self, keep: Iterable[str] = ()) -> list[str]:
        """Remove blobs that no name and no digest in ``keep`` refers to; return them."""
        with self._lock:
            live = {info.digest for area in self._index.values() for info in area.values()}
        live.update(keep)
        removed = []
        for blob in (self.root / "blobs").iterdir():
            if blob.name not in live:
                blob.unlink(missing_ok=True)
                removed.append(blob.name)
        return removed

    def _drop_idle(self, idle: float = 600.0) -> None:
        now = time.monotonic()
        for upload_id, upload in list(self._uploads.items()):
            if now - upload.touched > idle:
                log.info("dropping the idle upload %s of %r", upload_id, upload.name)
                self.abort(upload_id)

    # -- the index ----------------------------------------------------------------------------

    def _load_index(self) -> None:
        path = self.root / "index.json"
        try:
            raw = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            raise UsageError(f"{path} is damaged ({error}); move it away to start with no "
                             "stored files") from error
        for area in FileArea:
            for name, entry in raw.get(area.name.lower(), {}).items():
                self._index[area][name] = FileInfo(area, name, int(entry["size"]),
                                                   str(entry["digest"]),
                                                   float(entry["stored_at"]))

    def _save_index(self) -> None:
        raw = {area.name.lower(): {name: {"digest": i.digest, "size": i.size,
                                          "stored_at": i.stored_at}
                                   for name, i in files.items()}
               for area, files in self._index.items()}
        path = self.root / "index.json"
        tmp = path.with_name(f".index.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(raw, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
