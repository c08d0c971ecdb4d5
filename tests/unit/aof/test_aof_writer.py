"""The writer: fsync policies, group commit, barriers, and no false acknowledgement."""

from __future__ import annotations

import errno
import logging
import os
import threading

import gevent
import pytest
from gevent.event import Event

from support import wait_until
from titan_actors.aof import AofState, AppendOnlyFile, FsyncPolicy, replay
from titan_actors.aof import record as rec
from titan_actors.aof.replay import DamageKind
from titan_actors.errors import (
    AofClosedError,
    AofCorruptError,
    AofRecordTooLargeError,
    AofTimeoutError,
    AofTornTailError,
    AofWriteError,
    ConfigError,
)

T = 5.0  # seconds: the longest any wait in these tests may take


class Fsync:
    """An ``os.fsync`` that counts calls and, while ``hold`` is set, blocks them until released.

    It runs in threadpool threads; ``entered`` (a gevent Event of the test's hub) is set through
    the hub's thread-safe callback when a held call starts.
    """

    def __init__(self, fail: OSError | None = None) -> None:
        self.calls = 0
        self.hold = False
        self.fail = fail
        self.entered = Event()
        self._release = threading.Event()
        self._loop = gevent.get_hub().loop

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.hold:
            self._loop.run_callback_threadsafe(self.entered.set)
            self._release.wait(T)
        if self.fail is not None:
            raise self.fail
        os.fsync(fd)

    def release(self) -> None:
        self.hold = False
        self._release.set()


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def failing_write(after_bytes: int, error: int = errno.ENOSPC):
    """A ``write`` that accepts ``after_bytes`` bytes in all, then a partial write, then fails."""
    budget = [after_bytes]

    def write(fd: int, data) -> int:
        if budget[0] <= 0:
            raise OSError(error, os.strerror(error))
        n = os.write(fd, bytes(data[:budget[0]]))
        budget[0] -= n
        return n

    return write


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state.aof"


def test_open_creates_the_file_with_its_header(path):
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    try:
        assert path.read_bytes() == rec.encode_file_header()
        assert aof.replayed.records == () and aof.state is AofState.OPEN
    finally:
        aof.close()


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_appends_survive_reopen_under_every_policy(path, policy):
    aof = AppendOnlyFile.open(path, policy.value)
    for i in range(20):
        aof.append(b"r%d" % i).wait(T)
    aof.close()
    again = AppendOnlyFile.open(path, policy)
    assert again.replayed.records == tuple(b"r%d" % i for i in range(20))
    assert again.take_replayed() == tuple(b"r%d" % i for i in range(20))
    assert again.replayed.records == () and again.replayed.record_count == 20
    again.append(b"more").wait(T)
    again.close()
    assert replay(path).records[-2:] == (b"r19", b"more")


def test_barrier_resolves_only_after_the_fsync_that_covers_it(path):
    fsync = Fsync()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync)
    fsync.hold = True
    barrier = aof.append(b"one")
    assert fsync.entered.wait(T)
    gevent.idle()
    assert not barrier.ready()
    fsync.release()
    barrier.wait(T)
    assert barrier.successful()
    aof.close()


def test_group_commit_writes_appends_made_during_an_fsync_with_the_next_one(path):
    fsync = Fsync()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync)
    before = fsync.calls
    fsync.hold = True
    first = aof.append(b"first")
    assert fsync.entered.wait(T)
    rest = [aof.append(b"r%d" % i) for i in range(49)]
    gevent.idle()
    assert not any(b.ready() for b in [first, *rest])
    fsync.release()
    for b in [first, *rest]:
        b.wait(T)
    assert fsync.calls - before == 2  # one for "first", one for the 49 that queued behind it
    aof.close()
    assert len(replay(path).records) == 50


def test_the_records_of_one_batch_share_a_barrier_and_no_other_batch_does(path):
    fsync = Fsync()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync)
    fsync.hold = True
    first = aof.append(b"first")
    assert fsync.entered.wait(T)  # "first" is being written: the next ones wait together
    second, third = aof.append(b"second"), aof.append(b"third")
    assert second is third and second is not first
    gevent.idle()
    assert not first.ready() and not second.ready()
    fsync.release()
    first.wait(T)
    second.wait(T)
    fourth = aof.append(b"fourth")
    assert fourth is not second
    fourth.wait(T)
    aof.close()
    assert replay(path).records == (b"first", b"second", b"third", b"fourth")


def test_concurrent_appenders_need_fewer_fsyncs_than_appends(path):
    fsync = Fsync()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync)
    before = fsync.calls

    def appender(n):
        for i in range(10):
            aof.append(b"%d-%d" % (n, i)).wait(T)

    group = [gevent.spawn(appender, n) for n in range(50)]
    gevent.joinall(group, timeout=T, raise_error=True)
    assert fsync.calls - before < 500 / 5
    aof.close()
    records = replay(path).records
    assert sorted(records) == sorted(b"%d-%d" % (n, i) for n in range(50) for i in range(10))
    for n in range(50):  # each appender's records keep their order
        mine = [r for r in records if r.startswith(b"%d-" % n)]
        assert mine == [b"%d-%d" % (n, i) for i in range(10)]


def test_rawlink_notifies_without_blocking_the_appender(path):
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    seen = Event()
    results = []
    barrier = aof.append(b"x")
    barrier.rawlink(lambda b: (results.append(b.successful()), seen.set()))
    assert seen.wait(T)
    assert results == [True]
    aof.close()


@pytest.mark.parametrize("policy", [FsyncPolicy.ALWAYS, FsyncPolicy.EVERYSEC, FsyncPolicy.NO])
def test_a_failed_write_fails_the_barrier_and_degrades_the_file(path, policy, caplog):
    good = AppendOnlyFile.open(path, policy)
    good.append(b"kept").wait(T)
    good.close()
    record_size = len(rec.encode_record(b"lost-0"))
    aof = AppendOnlyFile.open(path, policy, write=failing_write(record_size + 5))
    aof.append(b"ok-0").wait(T)
    with caplog.at_level(logging.ERROR, logger="titan.aof"):
        barrier = aof.append(b"lost-0")  # partly written, then ENOSPC
        with pytest.raises(AofWriteError, match="No space left") as info:
            barrier.wait(T)
    assert isinstance(info.value.__cause__, OSError)
    assert aof.degraded and aof.state is AofState.DEGRADED
    assert "degraded" in caplog.text
    later = aof.append(b"lost-1")
    with pytest.raises(AofWriteError):
        later.wait(T)
    aof.close()  # a degraded file just closes
    result = replay(path)
    assert result.records == (b"kept", b"ok-0") and result.damage is None  # partial cut back


@pytest.mark.parametrize("policy", [FsyncPolicy.ALWAYS, FsyncPolicy.EVERYSEC])
def test_short_writes_still_land_every_record_whole(path, policy):
    def dribble(fd: int, data) -> int:
        return os.write(fd, bytes(data[:5]))

    AppendOnlyFile.open(path, policy).close()
    aof = AppendOnlyFile.open(path, policy, write=dribble)
    for n in range(3):
        aof.append(b"record-%d" % n).wait(T)
    aof.close()
    assert replay(path).records == (b"record-0", b"record-1", b"record-2")


@pytest.mark.parametrize("policy", [FsyncPolicy.EVERYSEC, FsyncPolicy.NO])
def test_a_write_that_writes_nothing_fails_at_once_and_leaves_nothing(path, policy):
    def stuck(fd: int, data) -> int:
        return 0

    good = AppendOnlyFile.open(path, policy)
    good.append(b"kept").wait(T)
    good.close()
    aof = AppendOnlyFile.open(path, policy, write=stuck)
    with pytest.raises(AofWriteError, match="write returned 0"):
        aof.append(b"lost").wait(T)
    assert aof.degraded
    aof.close()
    result = replay(path)
    assert result.records == (b"kept",) and result.damage is None


def test_a_failed_fsync_fails_the_barrier(path):
    fsync = Fsync()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync)
    fsync.fail = OSError(errno.EIO, "Input/output error")
    with pytest.raises(AofWriteError, match="Input/output error"):
        aof.append(b"x").wait(T)
    assert aof.degraded
    aof.close()


def test_a_crashed_flusher_fails_pending_barriers(path, greenlet_errors):
    greenlet_errors.expect()

    def broken_write(fd, data):
        raise RuntimeError("bug in the write path")

    AppendOnlyFile.open(path, FsyncPolicy.ALWAYS).close()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, write=broken_write)
    barrier = aof.append(b"x")
    with pytest.raises(AofWriteError) as info:
        barrier.wait(T)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert aof.degraded
    aof.close()


def settle() -> None:
    """Let every greenlet run and every threadpool task (an fsync) finish, so that an fsync
    wrongly started is counted before the test asserts that none happened."""
    gevent.idle()
    gevent.get_hub().threadpool.join()
    gevent.idle()


def test_everysec_fsyncs_at_most_once_per_interval(path):
    fsync, clock = Fsync(), Clock(100.0)
    aof = AppendOnlyFile.open(path, FsyncPolicy.EVERYSEC, fsync=fsync, clock=clock)
    before = fsync.calls
    barrier = aof.append(b"a")
    assert barrier.ready() and barrier.successful()  # resolved at once: the loss window
    aof._kick_syncer()
    settle()
    assert fsync.calls == before  # less than a second since open
    clock.now = 101.0
    aof._kick_syncer()
    wait_until(lambda: fsync.calls == before + 1, T, what="the first background fsync")
    aof.append(b"b")
    clock.now = 101.5
    aof._kick_syncer()
    settle()
    assert fsync.calls == before + 1
    clock.now = 102.1
    aof._kick_syncer()
    wait_until(lambda: fsync.calls == before + 2, T, what="the second background fsync")
    clock.now = 200.0  # no unsynced data: no fsync however long it has been
    aof._kick_syncer()
    settle()
    assert fsync.calls == before + 2
    aof.close()


def test_policy_no_never_fsyncs_until_close(path):
    fsync = Fsync()
    aof = AppendOnlyFile.open(path, "no", fsync=fsync)
    before = fsync.calls
    for i in range(100):
        assert aof.append(b"%d" % i).successful()
    settle()
    assert fsync.calls == before
    aof.close()
    assert fsync.calls == before + 1
    assert len(replay(path).records) == 100


def test_append_after_close_is_refused(path):
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    aof.close()
    aof.close()  # idempotent
    with pytest.raises(AofClosedError, match=str(path)):
        aof.append(b"x")


def test_close_flushes_queued_records(path):
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    barriers = [aof.append(b"%d" % i) for i in range(10)]
    aof.close()
    assert all(b.successful() for b in barriers)
    assert len(replay(path).records) == 10


def test_oversized_append_is_refused(path):
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, max_record_size=8)
    with pytest.raises(AofRecordTooLargeError):
        aof.append(b"123456789")
    aof.close()


def test_a_full_queue_makes_append_wait_for_the_batch_in_flight(path):
    fsync = Fsync()
    record_size = len(rec.encode_record(b"r0"))
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync,
                              max_pending_bytes=2 * record_size, append_timeout=T)
    fsync.hold = True
    first = aof.append(b"r0")
    assert fsync.entered.wait(T)
    aof.append(b"r1"), aof.append(b"r2")  # fills the queue
    late = gevent.spawn(aof.append, b"r3")
    gevent.idle()
    assert not late.ready()  # waiting for room
    fsync.release()
    late.get(timeout=T).wait(T)
    first.wait(T)
    aof.close()
    assert replay(path).records == (b"r0", b"r1", b"r2", b"r3")


def test_a_queue_that_stays_full_times_out(path):
    fsync = Fsync()
    record_size = len(rec.encode_record(b"r0"))
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync,
                              max_pending_bytes=record_size, append_timeout=0.05)
    fsync.hold = True
    aof.append(b"r0")
    assert fsync.entered.wait(T)
    aof.append(b"r1")
    with pytest.raises(AofTimeoutError, match="max_pending_bytes"):
        aof.append(b"r2")
    fsync.release()
    aof.close()


def test_barrier_wait_times_out_without_acknowledging(path):
    fsync = Fsync()
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync)
    fsync.hold = True
    barrier = aof.append(b"x")
    with pytest.raises(AofTimeoutError):
        barrier.wait(0.01)
    fsync.release()
    barrier.wait(T)
    aof.close()


def test_open_truncates_a_torn_tail_and_logs_it(path, caplog):
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    for p in (b"a", b"b", b"c"):
        aof.append(p).wait(T)
    aof.close()
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(rec.encode_record(b"torn")[:-2])
    with caplog.at_level(logging.WARNING, logger="titan.aof"):
        aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    assert aof.replayed.records == (b"a", b"b", b"c")
    assert aof.replayed.damage.kind is DamageKind.TORN
    assert path.stat().st_size == good
    assert f"truncated append-only file {path} to byte offset {good}" in caplog.text
    aof.append(b"d").wait(T)
    aof.close()
    assert replay(path).records == (b"a", b"b", b"c", b"d")


def test_open_after_a_cut_at_every_offset_of_the_last_two_records_keeps_the_rest(path):
    records = [b"first", b"second", b"third-record"]
    starts, data = [], bytearray(rec.encode_file_header())
    for r in records:
        starts.append(len(data))
        data += rec.encode_record(r)
    ends = [*starts[1:], len(data)]
    for cut in range(starts[-2], len(data)):
        path.write_bytes(bytes(data[:cut]))
        aof = AppendOnlyFile.open(path, FsyncPolicy.NO)
        kept = tuple(r for r, end in zip(records, ends, strict=True) if end <= cut)
        assert aof.replayed.records == kept, cut
        aof.append(b"next").wait(T)
        aof.close()
        assert replay(path, strict=True).records == (*kept, b"next"), cut


def test_strict_open_refuses_a_torn_tail_and_leaves_the_file(path):
    data = rec.encode_file_header() + rec.encode_record(b"a") + rec.encode_record(b"b")[:-1]
    path.write_bytes(data)
    with pytest.raises(AofTornTailError):
        AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, strict=True)
    assert path.read_bytes() == data


def test_open_refuses_mid_file_corruption_and_leaves_the_file(path):
    data = bytearray(rec.encode_file_header() + rec.encode_record(b"abc") * 3)
    data[rec.FILE_HEADER_SIZE + rec.RECORD_HEADER_SIZE] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(AofCorruptError):
        AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
    assert path.read_bytes() == bytes(data)


def test_bad_settings_are_refused(path):
    with pytest.raises(ConfigError, match="'sometimes' is not one of always, everysec, no"):
        AppendOnlyFile.open(path, "sometimes")
    with pytest.raises(ConfigError, match="everysec_interval"):
        AppendOnlyFile.open(path, "everysec", everysec_interval=0)
    assert not path.exists()


def test_small_batches_are_fsynced_in_the_hubs_thread_unless_a_replacement_may_block(path):
    threads: list[int] = []

    def fsync(fd: int) -> None:
        threads.append(threading.get_ident())
        os.fsync(fd)

    inline = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync, inline_io=True)
    threads.clear()  # creating the file fsyncs too
    inline.append(b"one").wait(10)
    assert threads == [threading.get_ident()]  # no hand-over to the threadpool
    inline.close()
    threaded = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync)  # the default
    threads.clear()
    threaded.append(b"two").wait(10)
    assert len(threads) == 1 and threads[0] != threading.get_ident()
    threaded.close()
    assert list(threaded.take_replayed()) == [b"one"]


def test_after_a_slow_inline_fsync_the_threadpool_takes_the_flushes_for_a_while(path):
    now = [1000.0]
    threads: list[int] = []
    slow = [True]

    def fsync(fd: int) -> None:
        threads.append(threading.get_ident())
        if slow[0]:
            now[0] += 0.05  # this fsync "took" 50 ms on the writer's clock
        os.fsync(fd)

    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, fsync=fsync, inline_io=True,
                              clock=lambda: now[0])
    threads.clear()
    aof.append(b"slow").wait(10)       # inline, and slow
    slow[0] = False
    aof.append(b"after").wait(10)      # the next ones: in the threadpool
    now[0] += 11.0                     # 10 s later: inline again
    aof.append(b"later").wait(10)
    aof.close()
    me = threading.get_ident()
    assert threads[0] == me and threads[1] != me and threads[2] == me
