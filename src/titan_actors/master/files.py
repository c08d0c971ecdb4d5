"""The master's files: uploads, project archives, artifacts and the script library.

Layout under the master's data directory::

    files/blobs/<sha256>     each distinct content once (content-addressed, mode 0600)
    files/index.json         area -> name -> {digest, size, stored_at, owner_run}
    files/tmp/<upload id>    uploads in progress (removed at start)

A name points at a blob; storing a name again points it at the new blob, and a submitted job
keeps the digest it was submitted with, so re-uploading a project (or redeploying a library
script) never changes what an already submitted job runs. Blobs no name and no retained job
refers to are collected (:meth:`FileStore.collect`).

Durability: a stored file's blob is fsynced and renamed into place, then the index is rewritten
(temp file, fsync, ``os.replace``, directory fsync) before the upload is acknowledged.

Threads: uploads in progress belong to the master's loop (``write_chunk``, ``take``, ``abort``,
``drop_idle``, ``abort_owner``: small writes, no fsync). The blocking parts (``finish``,
``delete``, ``collect``: fsyncs, renames, unlinks) run in gevent's threadpool. The index is
guarded by a lock held only for dict updates, blob placement and unlinking, never across an
fsync, so the loop's reads (``info``, ``list``) wait for microseconds at most; index saves are
serialised by a second lock and always write the current index.

Bounds: a file's size (``max_size``), uploads in progress (``max_uploads``, and per uploader
``max_uploads_per_owner``), idle uploads dropped after ``idle_timeout`` seconds or when their
connection closes, and free disk space (``reserve`` bytes are always left free).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..wire.messages.files import FileArea, FileInfo

__all__ = ["FileStore", "Upload", "check_name"]

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
class Upload:
    """An upload in progress (the loop's; :meth:`FileStore.finish` completes it)."""

    area: FileArea
    name: str
    path: Path
    owner: Hashable
    owner_run: str
    hasher: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    received: int = 0
    touched: float = field(default_factory=time.monotonic)


class FileStore:
    """Named files in two areas (see the module docstring).

    Args:
        root: the ``files`` directory (created).
        max_size: the largest file accepted, in bytes.
        clock: wall-clock time for ``stored_at``.
        max_uploads, max_uploads_per_owner: uploads in progress at once.
        idle_timeout: seconds after which an upload nobody continues is dropped.
        reserve: bytes of disk always left free (the AOF shares the disk).
    """

    def __init__(self, root: Path, *, max_size: int = 4 << 30,
                 clock: Callable[[], float] = time.time, max_uploads: int = 64,
                 max_uploads_per_owner: int = 8, idle_timeout: float = 600.0,
                 reserve: int = 64 << 20) -> None:
        self.root = root
        self.max_size = max_size
        self.max_uploads = max_uploads
        self.max_uploads_per_owner = max_uploads_per_owner
        self.idle_timeout = idle_timeout
        self.reserve = reserve
        self._clock = clock
        self._lock = threading.Lock()        # the index dict, blob placement and removal
        self._save_lock = threading.Lock()   # one index save at a time
        self._uploads: dict[str, Upload] = {}
        for sub in ("blobs", "tmp"):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in (root / "tmp").iterdir():
            leftover.unlink(missing_ok=True)
        self._index: dict[FileArea, dict[str, FileInfo]] = {area: {} for area in FileArea}
        self._load_index()

    # -- reading (the loop) ---------------------------------------------------------------------

    def info(self, area: FileArea, name: str) -> FileInfo:
        """The stored file ``name``. Raises UsageError naming what is there when it is not."""
        with self._lock:
            found = self._index[area].get(name)
            known = sorted(self._index[area]) if found is None else []
        if found is None:
            listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            where = "the script library" if area is FileArea.SCRIPTS else "the uploaded files"
            raise UsageError(f"{name!r} is not in {where} (there: {listed or 'nothing'})")
        return found

    def find(self, area: FileArea, name: str) -> FileInfo | None:
        with self._lock:
            return self._index[area].get(name)

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
        self._check_digest(digest)
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
        """A FileInfo for a blob (its name is the digest). Raises UsageError when unknown."""
        self._check_digest(digest)
        try:
            stat = (self.root / "blobs" / digest).stat()
        except FileNotFoundError:
            raise UsageError(f"no stored file has the digest {digest}") from None
        return FileInfo(FileArea.UPLOADS, digest, stat.st_size, digest, stat.st_mtime)

    @staticmethod
    def _check_digest(digest: str) -> None:
        if not _DIGEST.fullmatch(digest):
            raise UsageError(f"{digest!r} is not a SHA-256 digest (64 lowercase hex digits)")

    # -- uploads in progress (the loop) ---------------------------------------------------------

    def write_chunk(self, area: FileArea, name: str, upload_id: str, offset: int, data: bytes,
                    *, owner: Hashable = None, owner_run: str = "") -> int:
        """Append one chunk of an upload; return the bytes received so far.

        Raises UsageError for a bad name or upload id, a chunk out of order, too many uploads
        in progress, a file over ``max_size`` or a nearly full disk (the upload is dropped).
        """
        check_name(name)
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise UsageError(f"upload id {upload_id!r} must be 1-64 letters, digits, '-' or '_'")
        upload = self._uploads.get(upload_id)
        if upload is None:
            if offset != 0:
                raise UsageError(f"upload {upload_id!r} of {name!r} is not known here (did the "
                                 "master restart, or was it idle too long?); start it again "
                                 "from offset 0")
            upload = self._begin(area, name, upload_id, owner, owner_run)
        if (upload.area, upload.name, upload.owner) != (area, name, owner):
            raise UsageError(f"upload {upload_id!r} is another upload (of {upload.name!r})")
        if offset != upload.received:
            raise UsageError(f"upload of {name!r}: chunk at offset {offset}, expected "
                             f"{upload.received}; chunks must come in order")
        if upload.received + len(data) > self.max_size:
            self.abort(upload_id)
            raise UsageError(f"{name!r} is larger than the {self.max_size} bytes a stored file "
                             "may have (setting max_upload_size)")
        if data and shutil.disk_usage(self.root).free < len(data) + self.reserve:
            self.abort(upload_id)
            raise UsageError(f"the master's disk is nearly full (less than "
                             f"{self.reserve >> 20} MiB would be left); {name!r} was not stored")
        with open(upload.path, "ab") as out:
            out.write(data)
        upload.hasher.update(data)
        upload.received += len(data)
        upload.touched = time.monotonic()
        return upload.received

    def _begin(self, area: FileArea, name: str, upload_id: str, owner: Hashable,
               owner_run: str) -> Upload:
        self.drop_idle()
        if len(self._uploads) >= self.max_uploads:
            raise UsageError(f"the master has {len(self._uploads)} uploads in progress, the "
                             "most it takes at once; try again when some have finished")
        mine = sum(1 for u in self._uploads.values() if u.owner == owner)
        if mine >= self.max_uploads_per_owner:
            raise UsageError(f"this connection has {mine} uploads in progress, the most one "
                             "may have; finish them first")
        path = self.root / "tmp" / upload_id
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        upload = self._uploads[upload_id] = Upload(area, name, path, owner, owner_run)
        return upload

    def take(self, upload_id: str) -> Upload:
        """Remove a complete upload from those in progress, for :meth:`finish`."""
        upload = self._uploads.pop(upload_id, None)
        if upload is None:
            raise UsageError(f"upload {upload_id!r} is not in progress")
        return upload

    def abort(self, upload_id: str) -> None:
        upload = self._uploads.pop(upload_id, None)
        if upload is not None:
            upload.path.unlink(missing_ok=True)

    def abort_owner(self, owner: Hashable) -> int:
        """Drop the uploads of a connection that closed; return how many."""
        gone = [uid for uid, u in self._uploads.items() if u.owner == owner]
        for upload_id in gone:
            self.abort(upload_id)
        return len(gone)

    def drop_idle(self) -> int:
        """Drop uploads nobody continued for ``idle_timeout`` seconds; return how many."""
        now = time.monotonic()
        idle = [uid for uid, u in self._uploads.items() if now - u.touched > self.idle_timeout]
        for upload_id in idle:
            log.info("dropping the idle upload %s of %r", upload_id,
                     self._uploads[upload_id].name)
            self.abort(upload_id)
        return len(idle)

    # -- the blocking parts (the threadpool) ----------------------------------------------------

    def finish(self, upload: Upload) -> FileInfo:
        """Store a complete upload under its name, durably; return it."""
        try:
            fd = os.open(upload.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            digest = upload.hasher.hexdigest()
            blob = self.root / "blobs" / digest
            info = FileInfo(upload.area, upload.name, upload.received, digest, self._clock(),
                            upload.owner_run)
            with self._lock:  # collect() cannot remove the blob between placing and naming it
                if blob.exists():
                    upload.path.unlink()
                else:
                    os.replace(upload.path, blob)
                self._index[upload.area][upload.name] = info
            _fsync_dir(blob.parent)
            self._save_index()
            return info
        except BaseException:
            upload.path.unlink(missing_ok=True)
            raise

    def delete(self, area: FileArea, name: str) -> FileInfo:
        """Forget a name (its blob goes at the next :meth:`collect` unless a job keeps it)."""
        with self._lock:
            info = self._index[area].pop(name, None)
        if info is None:
            self.info(area, name)  # raises, naming what is there
        self._save_index()
        return info

    def collect(self, keep: Iterable[str] = ()) -> list[str]:
        """Remove blobs that no name and no digest in ``keep`` refers to; return them."""
        removed = []
        with self._lock:
            live = {info.digest for area in self._index.values() for info in area.values()}
            live.update(keep)
            for blob in (self.root / "blobs").iterdir():
                if blob.name not in live:
                    blob.unlink(missing_ok=True)
                    removed.append(blob.name)
        return removed

    # -- the index ----------------------------------------------------------------------------

    def _load_index(self) -> None:
        path = self.root / "index.json"
        try:
            raw = json.loads(path.read_text("utf-8"))
            for area in FileArea:
                for name, entry in raw.get(area.name.lower(), {}).items():
                    self._index[area][name] = FileInfo(
                        area, name, int(entry["size"]), str(entry["digest"]),
                        float(entry["stored_at"]), str(entry.get("owner_run", "")))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise UsageError(f"{path} is damaged ({error!r}); move it away to start with no "
                             "stored files") from error

    def _save_index(self) -> None:
        with self._save_lock:
            with self._lock:
                raw = {area.name.lower(): {name: {"digest": i.digest, "size": i.size,
                                                  "stored_at": i.stored_at,
                                                  "owner_run": i.owner_run}
                                           for name, i in files.items()}
                       for area, files in self._index.items()}
            path = self.root / "index.json"
            tmp = path.with_name(f".index.{os.getpid()}.tmp")
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
