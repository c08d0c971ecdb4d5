"""The append-only file writer: appends that resolve a durability barrier under an fsync policy.

An owner (the master, the store) appends an encoded record for every state change and replies to
its caller only when the record's :class:`~titan_actors.aof.barrier.Barrier` resolves, from a
``rawlink`` callback so that its own loop never blocks for long. A small batch is written and
fsynced in the hub's thread (a fast fsync costs less than handing it to a thread); file I/O that
can take long (big batches, every batch for 10 s after an fsync that was slow, the rewrite) runs in
gevent's threadpool so that the event loop keeps running.

Failure model: a write or fsync error fails the barrier of every record not yet durable with
:class:`~titan_actors.errors.AofWriteError` and leaves the file **degraded**: later appends fail
at once, and the owner must close and reopen it (replay truncates any partial record), or write
its live state as a new file (:func:`~titan_actors.aof.restore.restore_from_snapshot`). There is
never a false acknowledgement; a failed barrier means "not acknowledged", not "certainly absent":
a record whose fsync failed may still be found by the next replay.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import gevent
import gevent.event
import gevent.lock
import gevent.pool

from titan_actors import failpoints
from titan_actors.aof import record as _rec
from titan_actors.aof import rewrite as _rw
from titan_actors.aof.barrier import (
    Barrier,
    Batch,
    WriteQueue,
    failed_barrier,
    resolved_barrier,
)
from titan_actors.aof.options import AofState, FsyncPolicy, _Options, _policy
from titan_actors.aof.replay import ReplayResult, replay
from titan_actors.errors import (
    AofClosedError,
    AofTimeoutError,
    AofWriteError,
)
from titan_actors.offload import run_in_thread

log = logging.getLogger("titan.aof")

MiB = 1024 * 1024
_INLINE_MAX_BYTES = 256 * 1024  # batches up to this size are written in the hub's thread
_INLINE_SLOW_S = 0.01           # an inline write+fsync slower than this ...
_THREADED_AFTER_SLOW_S = 10.0   # ... sends the flushes of the next 10 s to the threadpool
_OPEN = AofState.OPEN  # read on every append (an Enum class attribute is slow to read)


class AppendOnlyFile(_rw.CompactionMixin):
    """One append-only file, open for appending. Build it with :meth:`open`.

    Not thread-safe: use it from the greenlets of one hub. Records land in the order of the
    ``append`` calls. It owns two greenlets (in a ``Group``): the flusher, and under
    ``EVERYSEC`` the syncer; a crash of either degrades the file, failing every pending barrier.
    """

    def __init__(self, path: Path, fd: int, replayed: ReplayResult, options: _Options) -> None:
        """Use :meth:`open`; this takes a descriptor opened ``O_APPEND`` on a good file."""
        self._path = path
        self._fd = fd
        self._replayed = replayed
        self._o = options
        self._always = options.policy is FsyncPolicy.ALWAYS  # read on every append
        self._threaded_until = 0.0  # after a slow inline fsync: threadpool until then (clock)
        self._threadpool = gevent.get_hub().threadpool
        self._state = AofState.OPEN
        self._failure: AofWriteError | None = None
        self._written = replayed.last_good_offset  # bytes in the file
        self._size = self._written  # bytes in the file once queued records land
        self._base_size = self._written  # the size after open or the last rewrite
        self._queue = WriteQueue(options.max_pending_bytes)
        self._swapping = False
        self._flushing = False  # a batch is being written by the flusher
        self._rewrite_job: _rw.RewriteJob | None = None
        self._io_lock = gevent.lock.Semaphore(1)  # one user of the descriptor at a time
        self._flush_wakeup = gevent.event.Event()
        self._dirty = gevent.event.Event()
        self._syncer_kick = gevent.event.Event()
        self._last_sync = options.clock()
        self._done = resolved_barrier()
        self._greenlets = gevent.pool.Group()
        self._spawn(self._flush_loop)
        if options.policy is FsyncPolicy.EVERYSEC:
            self._spawn(self._everysec_loop)

    @classmethod
    def open(cls, path: str | os.PathLike[str], policy: FsyncPolicy | str, *,
             strict: bool = False,
             max_record_size: int = _rec.DEFAULT_MAX_RECORD_SIZE,
             rewrite_min_size: int = 64 * MiB,
             rewrite_percentage: int = 100,
             everysec_interval: float = 1.0,
             max_pending_bytes: int = 64 * MiB,
             rewrite_buffer_limit: int = 256 * MiB,
             append_timeout: float = 30.0,
             clock: Callable[[], float] = time.monotonic,
             fsync: _rw.FsyncFn = os.fsync,
             write: _rw.WriteFn = os.write,
             inline_io: bool | None = None,
             _step_hook: _rw.StepHook | None = None) -> AppendOnlyFile:
        """Open ``path`` for appending, creating it or replaying it first (blocking: startup).

        A missing file is created with its header (temp file, fsync, rename, fsync the
        directory). An existing one is replayed; a torn tail is truncated to the last good offset
        (logged); a ``.rewrite.tmp`` left by a crashed rewrite is removed. The records read are in
        :attr:`replayed`.

        Args:
            policy: an :class:`FsyncPolicy` or its value (``"always"``, ``"everysec"``, ``"no"``).
            strict: refuse a torn tail (``AofTornTailError``) instead of truncating it.
            max_record_size: the largest payload accepted, on append and on replay.
            rewrite_min_size, rewrite_percentage: thresholds of :meth:`needs_rewrite`.
            everysec_interval: seconds between background fsyncs under ``EVERYSEC``.
            max_pending_bytes: cap on queued records; a full queue makes ``append`` wait (at most
                ``append_timeout`` s) until the flusher takes the queue.
            rewrite_buffer_limit: cap on records buffered during a rewrite; past it the rewrite
                is abandoned.
            clock: monotonic seconds, for the ``EVERYSEC`` interval.
            fsync, write: ``os.fsync`` / ``os.write`` replacements (tests count or fail them);
                called from threadpool threads unless ``inline_io``.
            inline_io: write and fsync small batches in the hub's own thread (a fast fsync
                costs less than the hand-over to a thread). Default: only with the real
                ``os.write`` and ``os.fsync`` (a replacement may block on purpose).
            _step_hook: called with each step name of a rewrite's swap (tests simulate crashes).

        Raises:
            AofFormatError, AofCorruptError, AofTornTailError (strict): from replay.
            AofWriteError: the file cannot be created, truncated or opened for writing.
            PersistenceError: the file cannot be read. ConfigError: an argument is out of range.
        """
        options = _Options(_policy(policy), max_record_size, rewrite_min_size,
                           rewrite_percentage, everysec_interval, max_pending_bytes,
                           rewrite_buffer_limit, append_timeout, clock, fsync, write, _step_hook,
                           (fsync is os.fsync and write is os.write) if inline_io is None
                           else inline_io)
        path = Path(path)
        try:
            _rw.prepare_file(path, write=write, fsync=fsync)
        except OSError as e:
            raise AofWriteError(f"cannot create append-only file {path}: {e}") from e
        result = replay(path, strict=strict, max_record_size=max_record_size)
        try:
            if result.damage is not None:
                _rw.truncate_tail(path, result.last_good_offset, fsync)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as e:
            raise AofWriteError(f"cannot open append-only file {path} for writing: {e}") from e
        return cls(path, fd, result, options)

    # -- what the owner reads ------------------------------------------------------------------

    path = property(lambda self: self._path, doc="The file.")
    policy = property(lambda self: self._o.policy, doc="The :class:`FsyncPolicy`.")
    state = property(lambda self: self._state, doc="The :class:`AofState`.")
    size = property(lambda self: self._size,
                    doc="Bytes in the file once the records appended so far are written.")
    degraded = property(lambda self: self._failure is not None,
                        doc="True after a write or fsync failed; appends fail until reopened.")
    failure = property(lambda self: self._failure,
                       doc="The AofWriteError that degraded the file, or None.")
    rewriting = property(lambda self: self._rewrite_job is not None,
                         doc="True while a rewrite is in progress.")
    replayed = property(lambda self: self._replayed,
                        doc="The ReplayResult of open(): records, version, offsets, torn tail.")

    def take_replayed(self) -> tuple[bytes, ...]:
        """Return the replayed records and drop this object's reference to them (memory)."""
        records = self._replayed.records
        self._replayed = dataclasses.replace(self._replayed, records=())
        return records

    def needs_rewrite(self) -> bool:
        """True when the file should be compacted, as Redis's automatic AOF rewrite decides.

        That is: open, no rewrite running, size over ``rewrite_min_size``, and grown by at least
        ``rewrite_percentage`` % over the base size (the size after open or the last rewrite).
        A percentage of 0 disables it.
        """
        o = self._o
        if o.rewrite_percentage <= 0 or self._rewrite_job is not None:
            return False
        if self._state is not AofState.OPEN or self._size <= o.rewrite_min_size:
            return False
        base = max(self._base_size, 1)
        return (self._size - base) * 100 >= o.rewrite_percentage * base

    # -- appending -----------------------------------------------------------------------------

    def append(self, payload: bytes) -> Barrier:
        """Append one record; return the barrier that resolves when it is durable.

        Under ``ALWAYS`` the record is queued for the flusher (group commit). Under ``EVERYSEC``
        and ``NO`` it is written to the OS now and the returned barrier has resolved (while a
        rewrite swaps files, it is queued and resolves once written to the new file). Blocks
        only when ``max_pending_bytes`` are queued, until the flusher takes them.

        Raises:
            AofRecordTooLargeError: the payload is longer than ``max_record_size``.
            AofClosedError: the file was closed.
            AofTimeoutError: the queue stayed full for ``append_timeout`` seconds.
        A write failure does not raise: the barrier fails (and so does every later one).
        """
        record = _rec.encode_record(payload, self._o.max_record_size)
        if self._state is not _OPEN:
            self._check_not_closed()
        queue = self._queue
        size = len(record)
        if queue.nbytes and queue.nbytes + size > queue.max_bytes:
            queue.wait_for_room(size, self._o.append_timeout, self._still_waiting)
        if self._failure is not None:
            return failed_barrier(self._failure)
        # Nothing below yields, so records land in the order of the append() calls.
        if self._rewrite_job is not None:
            self._rewrite_job.mirror(record)
        self._size += size
        # Write directly only when nothing is queued or being written, to keep the order.
        if self._always or self._swapping or queue or self._flushing:
            barrier = queue.put(record)
            self._flush_wakeup.set()
            return barrier
        try:
            # one write takes the whole record (almost always): write_all only for the rest
            written = self._o.write(self._fd, record)
            if written != size:
                if written <= 0:
                    raise OSError(f"write returned {written} with {size} bytes left")
                _rw.write_all(self._o.write, self._fd, memoryview(record)[written:],
                              self._written)
        except OSError as e:
            try:  # as write_all does: no partial record stays to become mid-file damage
                os.ftruncate(self._fd, self._written)
            except OSError:
                pass  # the write's error is the one to report; replay drops a torn tail
            self._degrade(e, "write")
            return failed_barrier(self._failure)
        self._written += size
        self._dirty.set()
        return self._done

    def _check_not_closed(self) -> None:
        if self._state in (AofState.CLOSING, AofState.CLOSED):
            raise AofClosedError(f"append-only file {self._path} is closed")

    def _still_waiting(self) -> bool:
        self._check_not_closed()
        return self._failure is None

    # -- the greenlets -------------------------------------------------------------------------

    def _spawn(self, func: Callable[[], None]) -> None:
        self._greenlets.spawn(func).link_exception(self._on_greenlet_crash)

    def _on_greenlet_crash(self, greenlet: gevent.Greenlet) -> None:
        error = greenlet.exception
        log.error("append-only file %s: background greenlet crashed", self._path,
                  exc_info=(type(error), error, error.__traceback__))
        self._degrade(error, "background I/O")

    def _run_blocking(self, func: Callable[..., object], *args: object) -> object:
        """Run ``func(*args)`` in the threadpool; return its value or raise its exception here."""
        return run_in_thread(func, *args, pool=self._threadpool)

    def _flush_loop(self) -> None:
        """Write everything queued (and fsync it under ``ALWAYS``) as one batch per round."""
        while True:
            if not self._queue:
                if self._state is not AofState.OPEN:
                    return
                self._flush_wakeup.wait()
                self._flush_wakeup.clear()
                continue
            with self._io_lock:
                batches = self._queue.take()
                if batches:
                    self._flush(batches)

    def _flush(self, batches: list[Batch]) -> None:
        data = b"".join(r for batch in batches for r in batch.records)
        sync = self._o.policy is FsyncPolicy.ALWAYS
        self._flushing = True
        try:
            if self._inline_ok(len(data)):
                started = self._o.clock()
                self._write_out(self._fd, data, self._written, sync)
                if self._o.clock() - started > _INLINE_SLOW_S:  # a slow disk: out of the loop
                    self._threaded_until = self._o.clock() + _THREADED_AFTER_SLOW_S
            else:
                self._run_blocking(self._write_out, self._fd, data, self._written, sync)
        except OSError as e:
            self._degrade(e, "write and fsync" if sync else "write", batches)
            return
        except BaseException as e:
            # A bug or a kill: fail the batch we hold (the crash handler cannot see it), then
            # let the greenlet die so the crash is logged.
            self._degrade(e, "flusher", batches)
            raise
        finally:
            self._flushing = False
        self._written += len(data)
        self._dirty.set()
        for batch in batches:
            batch.resolve()

    def _inline_ok(self, size: int) -> bool:
        """Whether this batch is written (and fsynced) in the hub's own thread: a small batch
        while the disk answers fast (``inline_io``). Handing it to the threadpool costs two
        thread wake-ups and a GIL hand-over, more than a fast fsync (~0.2 ms here)."""
        return (size <= _INLINE_MAX_BYTES and self._o.inline_io
                and self._o.clock() >= self._threaded_until)

    def _write_out(self, fd: int, data: bytes, start: int, sync: bool) -> None:
        _rw.write_all(self._o.write, fd, data, start)
        failpoints.hit("aof.before_fsync")
        if sync:
            self._o.fsync(fd)

    def _everysec_loop(self) -> None:
        """fsync at most once per interval while there is unsynced data."""
        while self._state is AofState.OPEN:
            self._dirty.wait()
            if self._state is not AofState.OPEN:
                return
            due_in = self._o.everysec_interval - (self._o.clock() - self._last_sync)
            if due_in > 0:
                # A timed wait, not a poll: woken early only by close() or a test's kick.
                self._syncer_kick.wait(due_in)
                self._syncer_kick.clear()
                continue
            self._dirty.clear()
            with self._io_lock:
                if self._state is not AofState.OPEN:
                    return
                # the interval counts from when the fsync started: what it covers
                started = self._o.clock()
                try:
                    self._run_blocking(self._o.fsync, self._fd)
                except OSError as e:
                    self._degrade(e, "background fsync")
                    return
                self._last_sync = started

    def _kick_syncer(self) -> None:
        """Make the ``EVERYSEC`` greenlet read the clock again now (tests with a manual clock)."""
        self._syncer_kick.set()

    def _degrade(self, error: BaseException, what: str, batches: Iterable[Batch] = ()) -> None:
        """Fail every record not yet durable and refuse later appends. Never blocks."""
        if self._failure is None:
            self._failure = AofWriteError(
                f"{what} of append-only file {self._path} failed: {error!r}; records not yet "
                f"durable are not acknowledged and the file is degraded (close and reopen it)")
            self._failure.__cause__ = error
            if self._state is AofState.OPEN:
                self._state = AofState.DEGRADED
            log.error("%s", self._failure)
        for batch in batches:
            batch.fail(self._failure)
        self._queue.fail_all(self._failure)
        if self._rewrite_job is not None:
            self._rewrite_job.abort(f"the file was degraded: {error!r}")
        for event in (self._dirty, self._syncer_kick, self._flush_wakeup):
            event.set()

    # -- closing -------------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, fsync (under every policy), close. Idempotent.

        A degraded file is just closed. A rewrite in progress is abandoned.

        Raises:
            AofWriteError: the final write or fsync failed (the descriptor is closed anyway).
            AofTimeoutError: the flusher did not finish within ``timeout`` seconds; the records
                it held are failed and the descriptor is closed.
        """
        if self._state in (AofState.CLOSING, AofState.CLOSED):
            return
        healthy = self._failure is None
        self._state = AofState.CLOSING
        if self._rewrite_job is not None:
            self._rewrite_job.abort("the file was closed")
        for event in (self._dirty, self._syncer_kick, self._flush_wakeup):
            event.set()
        try:
            if not self._greenlets.join(timeout):
                self._greenlets.kill(block=True, timeout=1.0)
                self._degrade(AofTimeoutError(f"close waited {timeout} s"), "close")
                raise AofTimeoutError(f"closing {self._path}: queued records were not written "
                                      f"within {timeout} s and are not acknowledged")
            with self._io_lock:
                if self._failure is None:
                    try:
                        self._run_blocking(self._o.fsync, self._fd)
                    except OSError as e:
                        self._degrade(e, "final fsync")
        finally:
            os.close(self._fd)
            self._state = AofState.CLOSED
        if healthy and self._failure is not None:
            raise self._failure
