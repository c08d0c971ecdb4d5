"""Restoring persistence after a write failure: the owner's live state becomes the new file.

A degraded :class:`~titan_actors.aof.writer.AppendOnlyFile` refuses appends for good (a failed
write may have left the file short of records the owner already applied in memory). Once the
cause is gone (space freed on a full disk), the owner calls :func:`restore_from_snapshot` with its
live state: the snapshot is written as a new base file the way a compaction writes one (temp
file, fsync, ``os.replace``, fsync the directory) and a fresh writer is opened on it, with the
same settings. A crash at any point leaves the old file or the new one, never a mix; a failure
leaves the old writer as it was (still degraded), so the owner simply tries again later.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from titan_actors.aof import rewrite as _rw
from titan_actors.aof.record import FORMAT_VERSION
from titan_actors.aof.replay import ReplayResult
from titan_actors.aof.writer import AppendOnlyFile
from titan_actors.errors import AofRecordTooLargeError, AofWriteError, PersistenceError
from titan_actors.offload import run_in_thread

__all__ = ["restore_from_snapshot"]


def restore_from_snapshot(aof: AppendOnlyFile, snapshot: Iterable[bytes]) -> AppendOnlyFile:
    """Replace ``aof``'s file with ``snapshot`` (the owner's live state as records) and return
    a new writer on it; ``aof`` is closed. Blocking for the calling greenlet (the I/O runs in
    the threadpool): call it from the owner's own greenlet, so that no record is appended while
    the state it snapshots is being written.

    ``snapshot`` is consumed at once, before anything yields.

    Raises:
        AofWriteError: the new file could not be written (the disk is still full, ...), or a
            compaction of ``aof`` still runs; the old file and ``aof`` are left as they were,
            the temp file is removed.
        AofRecordTooLargeError: a record of the snapshot exceeds the maximum record size.
    """
    path = aof.path
    if aof.rewriting:  # its temp file is the one a restore would write: wait for it to end
        raise AofWriteError(f"cannot restore append-only file {path} yet: a compaction of it "
                            f"is still running")
    payloads = [bytes(p) for p in snapshot]
    o = aof._o
    try:
        run_in_thread(_rw.create_base_file, path, payloads, write=o.write, fsync=o.fsync,
                      max_record_size=o.max_record_size)
    except AofRecordTooLargeError:
        raise
    except OSError as error:
        raise AofWriteError(f"cannot restore append-only file {path} from memory: writing "
                            f"{len(payloads)} records failed: {error!r}") from error
    try:
        aof.close()  # a degraded file is just closed; a healthy one flushes what it holds
    except PersistenceError:
        pass  # whatever it held is in the snapshot just written
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        size = os.fstat(fd).st_size
    except OSError as error:
        raise AofWriteError(f"cannot reopen append-only file {path} after restoring it: "
                            f"{error}") from error
    # The content is the snapshot just written: no need to read it back.
    written = ReplayResult(path=path, records=(), record_count=len(payloads),
                           format_version=FORMAT_VERSION, last_good_offset=size,
                           file_size=size, damage=None)
    return AppendOnlyFile(path, fd, written, o)
