"""Compaction: the live state survives a rewrite, appends made meanwhile, and a crash anywhere."""

from __future__ import annotations

import os
import shutil
import threading

import gevent
import pytest
from gevent.event import Event

from titan_actors.aof import AppendOnlyFile, FsyncPolicy, replay
from titan_actors.aof.rewrite import REWRITE_STEPS, temp_path
from titan_actors.errors import (
    AofClosedError,
    AofRecordTooLargeError,
    AofRewriteError,
    AofWriteError,
)

T = 5.0


def put(key: str, value: str) -> bytes:
    return f"S{key}={value}".encode()


def delete(key: str) -> bytes:
    return f"D{key}".encode()


def fold(records) -> dict[str, str]:
    """The live state a sequence of records describes."""
    state: dict[str, str] = {}
    for r in records:
        text = r.decode()
        if text[0] == "S":
            key, value = text[1:].split("=", 1)
            state[key] = value
        else:
            state.pop(text[1:], None)
    return state


def snapshot(state: dict[str, str]) -> list[bytes]:
    return [put(k, v) for k, v in sorted(state.items())]


def fill(aof: AppendOnlyFile, n: int = 60) -> dict[str, str]:
    """Append ``n`` overwrites and deletes of a few keys; return the live state."""
    records = []
    for i in range(n):
        records.append(delete(f"k{i % 7}") if i % 5 == 4 else put(f"k{i % 7}", f"v{i}"))
    for r in records:
        aof.append(r).wait(T)
    return fold(records)


class TempFsyncGate:
    """An fsync that, once armed, holds the next fsync of a rewrite's temp file until released.

    (Opening a missing file also writes a temp file: arm the gate after opening.)
    """

    def __init__(self) -> None:
        self.entered = Event()
        self.armed = False
        self._release = threading.Event()
        self._loop = gevent.get_hub().loop

    def __call__(self, fd: int) -> None:
        if self.armed and os.readlink(f"/proc/self/fd/{fd}").endswith(".rewrite.tmp"):
            self.armed = False
            self._loop.run_callback_threadsafe(self.entered.set)
            self._release.wait(T)
        os.fsync(fd)

    def release(self) -> None:
        self._release.set()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state.aof"


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_rewrite_preserves_the_state_and_shrinks_the_file(path, policy):
    aof = AppendOnlyFile.open(path, policy)
    state = fill(aof, 200)
    before = aof.size
    aof.rewrite(snapshot(state))
    assert aof.size < before and not temp_path(path).exists()
    aof.append(put("after", "1")).wait(T)
    aof.close()
    records = replay(path).records
    assert records == (*snapshot(state), put("after", "1"))
    assert fold(records) == {**state, "after": "1"}


@pytest.mark.parametrize("policy", [FsyncPolicy.ALWAYS, FsyncPolicy.EVERYSEC, FsyncPolicy.NO])
def test_records_appended_while_the_snapshot_is_written_are_kept(path, policy):
    gate = TempFsyncGate()
    aof = AppendOnlyFile.open(path, policy, fsync=gate)
    state = fill(aof)
    gate.armed = True
    rewriter = gevent.spawn(aof.rewrite, snapshot(state))
    assert gate.entered.wait(T)  # the snapshot is written, its fsync is held
    during = [put("k1", "during"), delete("k2"), put("new", "x")]
    for r in during:
        aof.append(r).wait(T)  # acknowledged from the old file meanwhile
    gate.release()
    rewriter.get(timeout=T)
    aof.close()
    records = replay(path).records
    assert records == (*snapshot(state), *during)
    assert fold(records) == fold([*snapshot(state), *during])


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_records_appended_during_the_swap_land_after_it(path, policy):
    barriers = []

    def hook(step):
        if step == "temp_written":  # appends are held now: they queue for the new file
            barriers.append(aof.append(put("swap", "1")))
            assert not barriers[-1].ready()

    aof = AppendOnlyFile.open(path, policy, _step_hook=hook)
    state = fill(aof)
    aof.rewrite(snapshot(state))
    gevent.idle()  # let the flusher start writing the held record: "end" must queue behind it
    aof.append(put("end", "2")).wait(T)
    barriers[0].wait(T)
    aof.close()
    assert replay(path).records == (*snapshot(state), put("swap", "1"), put("end", "2"))


class SimulatedCrash(Exception):
    pass


@pytest.mark.parametrize("step", REWRITE_STEPS)
def test_a_crash_at_any_step_recovers_the_old_or_the_new_file(path, tmp_path, step):
    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()

    def hook(name):
        if name == step:
            # What a process killed right here leaves on disk.
            for f in (path, temp_path(path)):
                if f.exists():
                    shutil.copy(f, crash_dir / f.name)
            raise SimulatedCrash(name)

    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, _step_hook=hook)
    state = fill(aof)
    old_records = replay(path).records
    new_records = tuple(snapshot(state))
    with pytest.raises(AofRewriteError) as info:
        aof.rewrite(new_records)
    assert isinstance(info.value.__cause__, SimulatedCrash)
    aof.close()

    recovered = AppendOnlyFile.open(crash_dir / path.name, FsyncPolicy.ALWAYS)
    assert recovered.replayed.records in (old_records, new_records)
    expected = old_records if step in ("temp_written", "temp_fsynced") else new_records
    assert recovered.replayed.records == expected
    assert fold(recovered.replayed.records) == state
    assert not temp_path(crash_dir / path.name).exists()  # the leftover was removed
    recovered.close()


def test_a_failure_before_the_rename_keeps_appending_to_the_old_file(path):
    held = []

    def hook(step):
        if step == "temp_written":
            held.append(aof.append(put("held", "1")))
        if step == "temp_fsynced":
            raise OSError(5, "Input/output error")

    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, _step_hook=hook)
    state = fill(aof)
    with pytest.raises(AofRewriteError, match="before the rename.*old file"):
        aof.rewrite(snapshot(state))
    assert not temp_path(path).exists() and not aof.degraded
    held[0].wait(T)  # the record queued during the swap went to the old file instead
    aof.append(put("after", "2")).wait(T)
    aof.close()
    assert fold(replay(path).records) == {**state, "held": "1", "after": "2"}


def test_a_failure_after_the_rename_degrades_the_file(path):
    held = []

    def hook(step):
        if step == "temp_written":
            held.append(aof.append(put("held", "1")))
        if step == "replaced":
            raise OSError(5, "Input/output error")

    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, _step_hook=hook)
    state = fill(aof)
    with pytest.raises(AofRewriteError, match="degraded"):
        aof.rewrite(snapshot(state))
    assert aof.degraded
    with pytest.raises(AofWriteError):
        held[0].wait(T)  # its directory entry may not be durable: not acknowledged
    aof.close()
    reopened = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    assert fold(reopened.replayed.records) in (state, {**state, "held": "1"})
    reopened.close()


def test_a_leftover_temp_file_is_removed_on_open(path):
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    aof.append(put("a", "1")).wait(T)
    aof.close()
    temp_path(path).write_bytes(b"half a rewrite")
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    assert aof.replayed.records == (put("a", "1"),)
    assert not temp_path(path).exists()
    aof.close()


def test_a_rewrite_buffer_past_its_limit_abandons_the_rewrite(path, greenlet_errors):
    greenlet_errors.expect()  # the rewriting greenlet ends with the error asserted below
    gate = TempFsyncGate()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=gate, rewrite_buffer_limit=20)
    state = fill(aof)
    gate.armed = True
    rewriter = gevent.spawn(aof.rewrite, snapshot(state))
    assert gate.entered.wait(T)
    for i in range(5):
        aof.append(put("during", str(i))).wait(T)
    gate.release()
    with pytest.raises(AofRewriteError, match="rewrite buffer passed its limit"):
        rewriter.get(timeout=T)
    assert not temp_path(path).exists() and not aof.degraded
    aof.close()
    assert fold(replay(path).records) == {**state, "during": "4"}


def test_needs_rewrite_follows_size_and_growth(path):
    aof = AppendOnlyFile.open(path, FsyncPolicy.NO, rewrite_min_size=200,
                              rewrite_percentage=100)
    assert not aof.needs_rewrite()
    while aof.size <= 200:
        aof.append(put("k", "v" * 10))
    assert aof.needs_rewrite()
    aof.rewrite([put("k", "v" * 10)])
    assert not aof.needs_rewrite()  # small again
    base = aof.size
    while aof.size <= 2 * base or aof.size <= 200:
        aof.append(put("k", "v" * 10))
    assert aof.needs_rewrite()
    aof.close()
    disabled = AppendOnlyFile.open(path, FsyncPolicy.NO, rewrite_min_size=0,
                                   rewrite_percentage=0)
    assert not disabled.needs_rewrite()
    disabled.close()


def test_rewrite_refusals(path):
    gate = TempFsyncGate()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=gate, max_record_size=16)
    with pytest.raises(AofRecordTooLargeError):
        aof.rewrite([b"x" * 17])
    gate.armed = True
    first = gevent.spawn(aof.rewrite, [b"a"])
    assert gate.entered.wait(T)
    assert aof.rewriting
    with pytest.raises(AofRewriteError, match="already in progress"):
        aof.rewrite([b"b"])
    gate.release()
    first.get(timeout=T)
    aof.close()
    with pytest.raises(AofClosedError):
        aof.rewrite([b"c"])
    assert replay(path).records == (b"a",)


def test_close_during_a_rewrite_abandons_it(path, greenlet_errors):
    greenlet_errors.expect()  # the rewriting greenlet ends with the error asserted below
    gate = TempFsyncGate()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=gate)
    aof.append(b"kept").wait(T)
    gate.armed = True
    rewriter = gevent.spawn(aof.rewrite, [b"new"])
    assert gate.entered.wait(T)
    aof.close()
    gate.release()
    with pytest.raises(AofRewriteError, match="closed"):
        rewriter.get(timeout=T)
    assert replay(path).records == (b"kept",)
    assert not temp_path(path).exists()
