"""An actor acknowledges only after its record is durable, without blocking its loop.

The pattern every persistent actor (master, store) follows: append the record, return the
append's Barrier as the reply; the asker hears back after the fsync, and a failed write is an
error for the asker, never a false acknowledgement.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import pytest
from gevent.event import Event

from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.aof import AppendOnlyFile
from titan_actors.errors import AofWriteError


@dataclass(frozen=True, slots=True)
class Put:
    value: bytes


@dataclass(frozen=True, slots=True)
class Count:
    pass


class Journal(Actor):
    def __init__(self, aof: AppendOnlyFile) -> None:
        super().__init__()
        self.aof = aof
        self.values: list[bytes] = []

    @handles(Put)
    def _put(self, msg: Put):
        self.values.append(msg.value)
        return self.aof.append(msg.value)  # the reply leaves when the record is durable

    @handles(Count)
    def _count(self, msg: Count) -> int:
        return len(self.values)


def test_acknowledged_after_fsync_and_group_committed(tmp_path):
    release = Event()
    fsyncs: list[int] = []

    def slow_fsync(fd: int) -> None:
        release.wait(10)  # runs in the threadpool: the actor keeps going meanwhile
        fsyncs.append(fd)
        os.fsync(fd)

    AppendOnlyFile.open(tmp_path / "j.aof", "always").close()  # created with a real fsync
    aof = AppendOnlyFile.open(tmp_path / "j.aof", "always", fsync=slow_fsync)
    system = ActorSystem()
    ref = system.spawn(Journal, aof)
    try:
        pending = [ref.ask_async(Put(f"v{n}".encode()), timeout=10) for n in range(20)]
        assert ref.ask(Count(), timeout=5) == 20  # not blocked by the pending fsync
        assert not any(reply.ready() for reply in pending)
        release.set()
        for reply in pending:
            assert reply.get(10) is None
        assert len(fsyncs) < 20  # batches shared fsyncs
    finally:
        system.stop_all(timeout=5)
        aof.close()
    reopened = AppendOnlyFile.open(tmp_path / "j.aof", "always")
    assert list(reopened.take_replayed()) == [f"v{n}".encode() for n in range(20)]
    reopened.close()


def test_a_failed_fsync_is_an_error_for_the_asker(tmp_path):
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    AppendOnlyFile.open(tmp_path / "j.aof", "always").close()
    aof = AppendOnlyFile.open(tmp_path / "j.aof", "always", fsync=full_disk)
    system = ActorSystem()
    ref = system.spawn(Journal, aof)
    try:
        with pytest.raises(AofWriteError):
            ref.ask(Put(b"lost"), timeout=5)
        assert aof.degraded
    finally:
        system.stop_all(timeout=5)
        aof.close()
