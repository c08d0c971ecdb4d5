"""The store: string values with optional expiry, and sets of strings, kept durable in an AOF.

Every write becomes one record, appended to ``store.aof`` in the data directory and applied to
memory by the same function replay uses, so a restarted store loads exactly what it had
acknowledged. The reply to a write leaves only once its record is durable under the fsync
policy (``always``: after the fsync; ``everysec`` / ``no``: once written to the OS, with Redis's
loss window). A write that needs no record (removing an absent member) still waits for the last
append, so no reply ever overtakes an earlier write's durability.

Expiries are wall-clock epoch seconds from the injected clock, persisted as such: an expired key
reads as missing, is dropped when touched and by a periodic sweep, and stays expired after a
restart. Dropping an expired key writes no record (replay sees it expired too); compaction leaves
it out. Strings and sets are separate keyspaces.

When the AOF cannot be written (a full disk), the write that hit the failure is applied in memory
but not acknowledged (its error says so), and every later write is refused before it changes
anything. Every ``persistence_retry`` seconds the store tries to restore persistence by writing
its live state as a new AOF (as a compaction does); once that succeeds, writes are accepted again.
``Ping`` answers with what is degraded, if anything.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import failpoints
from ..aof import AppendOnlyFile, restore_from_snapshot
from ..errors import AofWriteError, DecodeError, PersistenceError, UsageError
from ..wire import codec
from ..wire.messages import store as s
from ..wire.messages.control import Ping, Pong
from .base import Actor, handles
from .future import Future

__all__ = ["StoreActor", "StoreOptions", "decode_record", "encode_record"]

log = logging.getLogger("titan.store")

_TYPE = struct.Struct("!H")
_RECORDS = (s.PutRecord, s.DeleteRecord, s.SetAddRecord, s.SetRemoveRecord, s.SetMembersRecord)
_RECORD_IDS = frozenset(cls.TYPE_ID for cls in _RECORDS)
# members per compaction record are capped by bytes, well under the AOF's record limit
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """The store's settings (the composition root fills them from the config).

    ``fsync`` and ``write`` replace ``os.fsync`` / ``os.write`` for the AOF (tests slow, fail or
    watch them); ``rewrite_min_size`` and ``rewrite_percentage`` are the AOF's compaction
    thresholds; ``sweep_interval`` is the period, in seconds of the actor's clock, of the sweep
    that drops expired keys; ``persistence_retry`` the period of the attempts to restore a
    degraded AOF.
    """

    data_dir: Path
    aof_fsync: str = "everysec"
    sweep_interval: float = 1.0
    rewrite_min_size: int = 64 * 1024 * 1024
    rewrite_percentage: int = 100
    fsync: Callable[[int], None] = os.fsync
    write: Callable[[int, bytes], int] = os.write
    persistence_retry: float = 1.0


@dataclass(frozen=True, slots=True)
class _Sweep:
    pass


@dataclass(frozen=True, slots=True)
class _Acknowledge:
    """A durable write's reply, sent once the armed ``store.write.before_ack`` failpoint ran."""

    reply: Future
    value: Any


@dataclass(frozen=True, slots=True)
class _Restore:
    """Timer message: a degraded AOF tries to become writable again."""


def encode_record(record: Any) -> bytes:
    """The AOF payload of a store record: its u16 type id, then its codec payload."""
    type_id, payload = codec.encode_any(record)
    return _TYPE.pack(type_id) + payload


def decode_record(data: bytes) -> Any:
    """The store record in an AOF payload. Raises DecodeError for anything else."""
    if len(data) < _TYPE.size:
        raise DecodeError("a store AOF record shorter than its type id")
    (type_id,) = _TYPE.unpack_from(data)
    if type_id not in _RECORD_IDS:
        raise DecodeError(f"type id {type_id} is not a store record")
    return codec.decode_any(type_id, data[_TYPE.size:])


class StoreActor(Actor):
    """The store actor. See the module docstring."""

    def __init__(self, options: StoreOptions, *, clock=None) -> None:
        super().__init__(clock=clock)
        self.options = options
        self.aof: AppendOnlyFile | None = None
        self._values: dict[str, tuple[str, float]] = {}
        self._sets: dict[str, set[str]] = {}
        self._expiring: set[str] = set()
        self._last_barrier: Future | None = None
        self._compacting = False

    # -- life ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        o = self.options
        o.data_dir.mkdir(parents=True, exist_ok=True)
        self.aof = AppendOnlyFile.open(o.data_dir / "store.aof", o.aof_fsync, fsync=o.fsync,
                                       write=o.write, clock=self.clock.monotonic,
                                       rewrite_min_size=o.rewrite_min_size,
                                       rewrite_percentage=o.rewrite_percentage)
        count = 0
        for payload in self.aof.take_replayed():
            self._apply(decode_record(payload))
            count += 1
        log.info("store replayed %d records: %d values, %d sets", count, len(self._values),
                 len(self._sets))
        self.send_every(o.sweep_interval, _Sweep())
        self.send_every(o.persistence_retry, _Restore())

    def on_stop(self) -> None:
        if self.aof is not None:
            self.aof.close()

    def on_failure(self, error: BaseException) -> None:
        # a restarted store reopens the file: release this one (what it held is not acked)
        if self.aof is not None:
            try:
                self.aof.close(timeout=5.0)
            except PersistenceError as close_error:
                log.error("closing the store AOF after a crash failed: %s", close_error)

    # -- state --------------------------------------------------------------------------------

    def _apply(self, record: Any) -> None:
        """Apply one record to memory: the only place writes change state (live and replay)."""
        if isinstance(record, s.PutRecord):
            self._values[record.key] = (record.value, record.expires_at)
            if record.expires_at:
                self._expiring.add(record.key)
            else:
                self._expiring.discard(record.key)
        elif isinstance(record, s.DeleteRecord):
            self._values.pop(record.key, None)
            self._expiring.discard(record.key)
            self._sets.pop(record.key, None)
        elif isinstance(record, s.SetAddRecord):
            self._sets.setdefault(record.key, set()).add(record.member)
        elif isinstance(record, s.SetMembersRecord):
            self._sets.setdefault(record.key, set()).update(record.members)
        elif isinstance(record, s.SetRemoveRecord):
            members = self._sets.get(record.key)
            if members is not None:
                members.discard(record.member)
                if not members:
                    del self._sets[record.key]
        else:  # pragma: no cover - decode_record admits only the types above
            raise DecodeError(f"{type(record).__name__} is not a store record")

    def _live(self, key: str) -> tuple[str, float] | None:
        """The value of ``key`` unless absent or expired (an expired one is dropped now)."""
        entry = self._values.get(key)
        if entry is not None and entry[1] and entry[1] <= self.clock.time():
            self._drop_expired(key)
            return None
        return entry

    def _drop_expired(self, key: str) -> None:
        del self._values[key]
        self._expiring.discard(key)

    def _snapshot(self) -> Iterator[bytes]:
        """The live state as records (consumed at once by ``AppendOnlyFile.rewrite``)."""
        now = self.clock.time()
        for key, (value, expires_at) in self._values.items():
            if not expires_at or expires_at > now:
                yield encode_record(s.PutRecord(key, value, expires_at))
        for key, members in self._sets.items():
            chunk: list[str] = []
            size = 0
            for member in sorted(members):
                chunk.append(member)
                size += len(member.encode()) + 4
                if size >= _CHUNK_BYTES:
                    yield encode_record(s.SetMembersRecord(key, tuple(chunk)))
                    chunk, size = [], 0
            if chunk:
                yield encode_record(s.SetMembersRecord(key, tuple(chunk)))

    # -- committing ---------------------------------------------------------------------------

    def _commit(self, record: Any | None, value: Any = None) -> Any:
        """Append and apply ``record`` (None: no change); return ``value`` once durable.

        Returns a Future that resolves with ``value`` after the record (or, without one, the
        last record appended) is durable, or fails with AofWriteError (the record is applied in
        memory, not acknowledged; the message says so); ``value`` itself when nothing is
        pending. Raises PersistenceError (and nothing is applied) when the AOF is degraded or
        refuses the record (too large, closed, queue full).
        """
        if self.aof.degraded:
            raise PersistenceError(f"the store cannot persist, so it refused this write and "
                                   f"changed nothing: {self.degraded_reason()}")
        if record is not None:
            self._last_barrier = self.aof.append(encode_record(record))
            self._apply(record)
            self._maybe_compact()
        barrier = self._last_barrier
        if barrier is None or barrier.ready() and barrier.successful():
            failpoints.hit("store.write.before_ack")
            return value
        reply = Future("durable store reply")

        def durable(done: Future) -> None:
            if done.successful() and failpoints.armed("store.write.before_ack"):
                self.notify(_Acknowledge(reply, value))  # not in a hub callback: it may block
            elif done.successful():
                reply.set(value)
            else:
                reply.set_exception(self._not_durable(done.exception))
        barrier.add_done_callback(durable)
        return reply

    def _not_durable(self, error: BaseException | None) -> AofWriteError:
        failure = AofWriteError(
            f"the store applied this write in memory but could not make it durable ({error}); "
            f"it is not acknowledged: it is kept, and written to disk, if the store restores "
            f"its append-only file before it stops (it tries every "
            f"{self.options.persistence_retry:g} s), and lost if it stops first")
        failure.__cause__ = error
        return failure

    def degraded_reason(self) -> str:
        """Why the store cannot persist now, or "" when it can."""
        if self.aof is None or not self.aof.degraded:
            return ""
        cause = self.aof.failure.__cause__ or self.aof.failure
        return (f"its append-only file {self.aof.path} cannot be written ({cause!r}); it tries "
                f"to restore it from memory every {self.options.persistence_retry:g} s")

    @handles(_Acknowledge)
    def _acknowledge(self, msg: _Acknowledge) -> None:
        try:
            failpoints.hit("store.write.before_ack")
        except failpoints.FailpointError as error:
            msg.reply.set_exception(error)
            return
        msg.reply.set(msg.value)

    @handles(_Restore)
    def _restore(self, msg: _Restore) -> None:
        """Write the live state as a new AOF, while the current one is degraded."""
        if not self.aof.degraded or self._compacting:
            return  # (a compaction still writing: the next tick tries again)
        reason = self.degraded_reason()
        try:
            self.aof = restore_from_snapshot(self.aof, self._snapshot())
        except PersistenceError as error:
            log.debug("the store's persistence is still degraded: %s", error)
            return
        self._last_barrier = None
        log.warning("store persistence restored: %s rewritten from memory (%d values, %d sets); "
                    "it was degraded because %s", self.aof.path, len(self._values),
                    len(self._sets), reason)

    @handles(Ping)
    def _ping(self, msg: Ping) -> Pong:
        from .. import __version__
        return Pong(msg.payload, "store", __version__, self.degraded_reason())

    def _maybe_compact(self) -> None:
        if not self._compacting and self.aof.needs_rewrite():
            self._compacting = True
            self.spawn(self._compact)

    def _compact(self) -> None:
        """Rewrite the AOF as the live state. The snapshot is taken without yielding, so it
        covers every record appended so far; later ones follow it in the new file."""
        try:
            self.aof.rewrite(self._snapshot())
        except PersistenceError as error:
            log.error("store AOF compaction failed (the old file is kept): %s", error)
        finally:
            self._compacting = False

    # -- requests -----------------------------------------------------------------------------

    @handles(s.StoreGet)
    def _get(self, msg: s.StoreGet) -> s.StoreValue:
        entry = self._live(msg.key)
        return s.StoreValue(False, "") if entry is None else s.StoreValue(True, entry[0])

    @handles(s.StorePut)
    def _put(self, msg: s.StorePut) -> Any:
        if not msg.expires_at >= 0.0:  # also refuses NaN
            raise UsageError(f"expires_at for key {msg.key!r} must be epoch seconds >= 0 "
                             f"(0 for never), got {msg.expires_at!r}")
        return self._commit(s.PutRecord(msg.key, msg.value, msg.expires_at))

    @handles(s.StoreDelete)
    def _delete(self, msg: s.StoreDelete) -> Any:
        found = self._live(msg.key) is not None or msg.key in self._sets
        return self._commit(s.DeleteRecord(msg.key) if found else None, s.StoreCount(int(found)))

    @handles(s.StoreSetAdd)
    def _set_add(self, msg: s.StoreSetAdd) -> Any:
        new = msg.member not in self._sets.get(msg.key, ())
        return self._commit(s.SetAddRecord(msg.key, msg.member) if new else None,
                            s.StoreCount(int(new)))

    @handles(s.StoreSetRemove)
    def _set_remove(self, msg: s.StoreSetRemove) -> Any:
        present = msg.member in self._sets.get(msg.key, ())
        return self._commit(s.SetRemoveRecord(msg.key, msg.member) if present else None,
                            s.StoreCount(int(present)))

    @handles(s.StoreMembers)
    def _members(self, msg: s.StoreMembers) -> s.StoreMembersReply:
        return s.StoreMembersReply(tuple(sorted(self._sets.get(msg.key, ()))))

    @handles(s.StoreKeys)
    def _keys(self, msg: s.StoreKeys) -> s.StoreKeysReply:
        now = self.clock.time()
        keys = {k for k, (_, exp) in self._values.items()
                if k.startswith(msg.prefix) and (not exp or exp > now)}
        keys.update(k for k in self._sets if k.startswith(msg.prefix))
        return s.StoreKeysReply(tuple(sorted(keys)))

    @handles(_Sweep)
    def _sweep(self, msg: _Sweep) -> None:
        now = self.clock.time()
        expired = [k for k in self._expiring if self._values[k][1] <= now]
        for key in expired:
            self._drop_expired(key)
        if expired:
            log.debug("store sweep dropped %d expired keys", len(expired))
