"""Compaction: writing a new base file beside the live one and swapping it in atomically.

The sequence follows Redis: write the owner's live state (a snapshot of records) to
``<name>.rewrite.tmp``, append the records that arrived while it was written (the rewrite buffer),
fsync it, ``os.replace`` it onto the live name, fsync the directory. A crash before the replace
leaves the old file (plus a temp file that the next open removes); a crash after it leaves the new
file; both load to the same live state.

This module holds the file mechanics (:class:`RewriteJob`, :func:`create_base_file`, and the
small I/O helpers the writer shares) and :class:`CompactionMixin`, the part of
:class:`~titan_actors.aof.writer.AppendOnlyFile` that coordinates a rewrite with appends in
flight.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from titan_actors import failpoints
from titan_actors.aof import record as _rec
from titan_actors.errors import AofRecordTooLargeError, AofRewriteError, AofWriteError

if TYPE_CHECKING:  # gevent only for annotations: check.py (and so the CLI) stays gevent-free
    import gevent.event
    import gevent.lock

    from titan_actors.aof.barrier import WriteQueue

log = logging.getLogger("titan.aof")

WriteFn = Callable[[int, bytes], int]
FsyncFn = Callable[[int], None]
StepHook = Callable[[str], None]

#: Names passed to a step hook, in order, during the swap of a rewrite.
REWRITE_STEPS = ("temp_written", "temp_fsynced", "replaced", "dir_fsynced")

_CHUNK = 1024 * 1024
_FILE_MODE = 0o644


def temp_path(path: Path) -> Path:
    """Return the name of the temp file a rewrite of ``path`` writes (``<name>.rewrite.tmp``)."""
    return path.with_name(path.name + ".rewrite.tmp")


def write_all(write: WriteFn, fd: int, data: bytes | memoryview, start: int) -> None:
    """Write all of ``data`` to ``fd`` (opened ``O_APPEND``), whose size is ``start``.

    On failure the file is truncated back to ``start`` (best effort) so a partial record cannot
    turn into mid-file damage when something is appended after it; the error is re-raised.

    Raises:
        OSError: from ``write`` (ENOSPC, EIO, ...); also when ``write`` makes no progress.
    """
    view = memoryview(data)
    try:
        while view:
            written = write(fd, view)
            if written <= 0:
                raise OSError(f"write returned {written} with {len(view)} bytes left")
            view = view[written:]
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass  # the original error is the one to report; replay drops a torn tail anyway
        raise


def fsync_directory(directory: Path, fsync: FsyncFn) -> None:
    """fsync ``directory`` so that a create, rename or unlink in it survives a power loss.

    Raises:
        OSError: the directory cannot be opened or synced.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def _encoded_chunks(payloads: Iterable[bytes], max_record_size: int) -> Iterable[bytes]:
    parts: list[bytes] = [_rec.encode_file_header()]
    size = len(parts[0])
    for payload in payloads:
        encoded = _rec.encode_record(payload, max_record_size)
        parts.append(encoded)
        size += len(encoded)
        if size >= _CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


class RewriteJob:
    """One rewrite in progress: the temp file and the records appended while it is written.

    Lifecycle (driven by the writer): :meth:`mirror` for every record appended after the snapshot
    was taken; :meth:`write_snapshot` (in a worker thread); then, with the writer's appends held,
    :meth:`finish` and :meth:`install`; :meth:`discard` on any failure. Not thread-safe: each
    method runs in one thread at a time, ordered by the writer.

    Args:
        target: the live file the new base file replaces.
        write, fsync: the writer's I/O functions (injectable for tests).
        run_blocking: runs a function in the hub's threadpool and returns its result, so the
            event loop keeps running during writes and fsyncs.
        step_hook: called with each name of :data:`REWRITE_STEPS` after that step; a test makes it
            raise to simulate a crash there.
        buffer_limit: the rewrite buffer's cap in bytes; past it the rewrite is abandoned (appends
            go on unaffected) rather than let memory grow without bound.
    """

    def __init__(self, target: Path, *, write: WriteFn, fsync: FsyncFn,
                 run_blocking: Callable[..., object], step_hook: StepHook | None,
                 buffer_limit: int) -> None:
        self.target = target
        self.temp = temp_path(target)
        self.size = 0
        self.aborted: str | None = None
        self._write = write
        self._fsync = fsync
        self._run_blocking = run_blocking
        hook = step_hook or (lambda _name: None)

        def step_done(name: str) -> None:
            failpoints.hit(f"aof.rewrite.{name}")
            hook(name)
        self._hook = step_done
        self._buffer: list[bytes] | None = []
        self._buffered = 0
        self._buffer_limit = buffer_limit
        self._fd: int | None = None

    def mirror(self, record: bytes) -> None:
        """Keep a copy of an encoded ``record`` appended after the snapshot was taken."""
        if self._buffer is None:
            return
        self._buffered += len(record)
        if self._buffered > self._buffer_limit:
            self.abort(f"the rewrite buffer passed its limit of {self._buffer_limit} bytes "
                       f"(appends outpaced the snapshot write)")
            return
        self._buffer.append(record)

    def abort(self, reason: str) -> None:
        """Abandon the rewrite at its next step; appends to the live file are unaffected."""
        if self.aborted is None:
            self.aborted = reason
        self._buffer = None

    def write_snapshot(self, payloads: Sequence[bytes], max_record_size: int) -> None:
        """Create the temp file and write the header, the snapshot's records, and fsync it.

        Runs in a worker thread. Raises ``OSError`` on I/O failure.
        """
        self._fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
                           | os.O_CLOEXEC, _FILE_MODE)
        for chunk in _encoded_chunks(payloads, max_record_size):
            write_all(self._write, self._fd, chunk, self.size)
            self.size += len(chunk)
        # Sync the bulk now, off the swap's critical section; finish() then syncs only the tail.
        self._fsync(self._fd)

    def finish(self) -> None:
        """Append the rewrite buffer to the temp file and fsync it (steps 1 and 2).

        Called with the writer's appends held. Raises ``OSError`` on I/O failure, or whatever a
        step hook raises.
        """
        assert self._fd is not None and self._buffer is not None
        tail = b"".join(self._buffer)
        self._buffer = None
        if tail:
            self._run_blocking(write_all, self._write, self._fd, tail, self.size)
            self.size += len(tail)
        self._hook("temp_written")
        self._run_blocking(self._fsync, self._fd)
        self._hook("temp_fsynced")

    def install(self) -> None:
        """Replace the live file with the temp file and fsync the directory (steps 3 and 4).

        After ``replaced`` the live name holds the new file even if a later step fails.
        """
        self._run_blocking(os.replace, self.temp, self.target)
        self._hook("replaced")
        self._run_blocking(fsync_directory, self.target.parent, self._fsync)
        self._hook("dir_fsynced")

    def detach_fd(self) -> int:
        """Hand the new file's descriptor (``O_APPEND``, positioned at its end) to the writer."""
        assert self._fd is not None
        fd, self._fd = self._fd, None
        return fd

    def discard(self) -> None:
        """Close the temp file and remove it if it is still there. Never raises ``OSError``."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        try:
            self.temp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # a leftover temp file is removed by the next open


def create_base_file(path: Path, payloads: Sequence[bytes], *, write: WriteFn, fsync: FsyncFn,
                     max_record_size: int = _rec.DEFAULT_MAX_RECORD_SIZE) -> None:
    """Atomically create ``path`` holding the file header and ``payloads`` (blocking).

    Temp file, fsync, ``os.replace``, fsync the directory: a crash leaves either no file (or the
    previous one) or the complete new one, never a file with half a header.

    Raises:
        OSError: on any I/O failure (the temp file is removed).
        AofRecordTooLargeError: a payload is longer than ``max_record_size``.
    """
    job = RewriteJob(path, write=write, fsync=fsync, run_blocking=lambda fn, *a: fn(*a),
                     step_hook=None, buffer_limit=0)
    try:
        job.write_snapshot(payloads, max_record_size)
        os.replace(job.temp, path)
        fsync_directory(path.parent, fsync)
    finally:
        job.discard()


def prepare_file(path: Path, *, write: WriteFn, fsync: FsyncFn) -> None:
    """Before opening ``path``: remove a crashed rewrite's temp file; create ``path`` if missing.

    Raises:
        OSError: the temp file cannot be removed or the file cannot be created.
    """
    temp = temp_path(path)
    if temp.exists():
        # The rename never happened, so the live file is complete without it.
        log.warning("removing %s left by an interrupted rewrite", temp)
        temp.unlink()
    if not path.exists():
        create_base_file(path, (), write=write, fsync=fsync)
        log.info("created append-only file %s", path)


def truncate_tail(path: Path, offset: int, fsync: FsyncFn) -> int:
    """Truncate ``path`` to ``offset`` (the last good offset of a torn file), fsync, log it.

    Returns the number of bytes dropped. Raises ``OSError`` on failure.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        dropped = os.fstat(fd).st_size - offset
        os.ftruncate(fd, offset)
        fsync(fd)
    finally:
        os.close(fd)
    log.warning("truncated append-only file %s to byte offset %d (dropped %d bytes)",
                path, offset, dropped)
    return dropped


class CompactionMixin:
    """The rewrite half of :class:`~titan_actors.aof.writer.AppendOnlyFile`.

    Kept beside the file mechanics it drives; it uses the writer's state (queue, I/O lock,
    descriptor, sizes) as declared below, and only that.
    """

    _path: Path
    _fd: int
    _o: Any
    _failure: AofWriteError | None
    _rewrite_job: RewriteJob | None
    _size: int
    _base_size: int
    _written: int
    _swapping: bool
    _queue: WriteQueue
    _io_lock: gevent.lock.Semaphore
    _flush_wakeup: gevent.event.Event

    # The host class (AppendOnlyFile) also provides _check_not_closed(), _run_blocking(func,
    # *args) and _degrade(error, what, batches=()).

    def rewrite(self, snapshot: Iterable[bytes]) -> None:
        """Compact the file to ``snapshot`` plus the records appended meanwhile (blocking).

        ``snapshot`` is the owner's live state as records, including the effect of every
        record appended before this call. It is consumed at once, in the calling greenlet and
        without yielding, so it is a point-in-time view; every record
        appended after that is kept in a rewrite buffer (as in Redis). The snapshot is written
        and fsynced in the threadpool while appends go on in the old file; then, with appends
        queued for a moment, the buffer is appended, the temp file fsynced, renamed over the
        file and the directory fsynced; records queued meanwhile resolve with that last fsync.
        A crash at any step leaves a file that loads to the same live state (old or new file).

        Raises:
            AofRewriteError: a rewrite is already running, or this one failed: before the rename
                the temp file is removed and appends go on in the old file; after it the file is
                degraded (``failure`` says why; reopening loads the old or the new content).
            AofRecordTooLargeError: a snapshot record is too long (nothing was written).
            AofClosedError: the file is closed. AofWriteError: the file is degraded.
        """
        self._check_not_closed()
        if self._failure is not None:
            raise self._failure
        if self._rewrite_job is not None:
            raise AofRewriteError(f"a rewrite of {self._path} is already in progress")
        payloads = [bytes(p) for p in snapshot]
        for p in payloads:
            if len(p) > self._o.max_record_size:
                raise AofRecordTooLargeError(
                    f"snapshot record of {len(p)} bytes exceeds the maximum record size of "
                    f"{self._o.max_record_size} bytes; {self._path} was not rewritten")
        job = self._rewrite_job = RewriteJob(
            self._path, write=self._o.write, fsync=self._o.fsync,
            run_blocking=self._run_blocking, step_hook=self._o.step_hook,
            buffer_limit=self._o.rewrite_buffer_limit)
        old_size = self._size
        try:
            try:
                self._run_blocking(job.write_snapshot, payloads, self._o.max_record_size)
            except Exception as e:
                raise AofRewriteError(f"rewrite of {self._path} failed writing the snapshot: "
                                      f"{e!r}; appends go on in the old file") from e
            self._swap(job)
        finally:
            self._rewrite_job = None
            job.discard()
        log.info("rewrote append-only file %s: %d records, %d -> %d bytes",
                 self._path, len(payloads), old_size, self._base_size)

    def _swap(self, job: RewriteJob) -> None:
        self._swapping = True  # appends queue from now on instead of writing to the old file
        try:
            with self._io_lock:  # waits for the flusher's batch in flight
                if job.aborted is not None:
                    raise AofRewriteError(f"rewrite of {self._path} abandoned: {job.aborted}")
                # Every record queued now is in the snapshot or in the rewrite buffer: it lands
                # in the new file and is acknowledged by the swap's fsyncs, never written twice.
                batches = self._queue.take()
                try:
                    job.finish()
                except BaseException as e:
                    self._queue.restore(batches)
                    if not isinstance(e, Exception):
                        raise
                    raise AofRewriteError(f"rewrite of {self._path} failed before the rename: "
                                          f"{e!r}; appends go on in the old file") from e
                try:
                    job.install()
                except BaseException as e:
                    self._degrade(e, "rewrite (rename or directory fsync)", batches)
                    if not isinstance(e, Exception):
                        raise
                    raise AofRewriteError(f"rewrite of {self._path} failed after the temp file "
                                          f"was complete: {e!r}; the file is degraded") from e
                old_fd, self._fd = self._fd, job.detach_fd()
                os.close(old_fd)
                self._written = self._base_size = job.size
                self._size = job.size + self._queue.nbytes
                for batch in batches:
                    batch.resolve()
        finally:
            self._swapping = False
            self._flush_wakeup.set()
