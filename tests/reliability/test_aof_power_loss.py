"""Power loss under each fsync policy, on the append-only file itself, with the durable shim.

* ``always``: writers append concurrently; at a seeded random moment the power goes (sometimes
  tearing the last write): every record acknowledged before the cut is in the image, in order,
  and the image loads.
* ``everysec`` (a manual clock, so the second is exact): the records lost are only ones
  acknowledged after the last background fsync started, less than ``interval`` (plus one step of
  the clock) before the cut.
* ``no``: the writer never fsyncs on its own, so a power cut loses every record since the last
  fsync it did make: at open, at a compaction, at close. That is the bound the file guarantees;
  on Linux the kernel writes dirty pages back within ``vm.dirty_expire_centisecs`` (30 s by
  default), which is the practical window. The shim has no writeback, so it shows the bound.

Each test prints ``FIGURE aof power-loss ...`` lines (seed, acknowledged, lost).
"""

from __future__ import annotations

import random

import gevent
import pytest
from gevent.event import Event

from support import wait_until
from support.durable_shim import PowerLossDisk
from titan_actors.aof import AppendOnlyFile, FsyncPolicy, replay

T = 5.0
SEEDS = [11, 22, 33]


@pytest.fixture
def disk(tmp_path):
    with PowerLossDisk(tmp_path / "data") as made:
        yield made


def _figure(policy: str, seed: int, acked: int, lost: int, **more: object) -> None:
    extra = "".join(f" {k}={v}" for k, v in more.items())
    print(f"FIGURE aof power-loss policy={policy} seed={seed} acked={acked} lost={lost}{extra}")


@pytest.mark.parametrize("seed", SEEDS)
def test_always_loses_no_acknowledged_record(disk, tmp_path, seed):
    rng = random.Random(seed)
    path = disk.directory / "state.aof"
    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, write=disk.write, fsync=disk.fsync)
    acked: list[bytes] = []
    cut_at = rng.randrange(40, 160)
    enough = Event()

    def writer(name: int) -> None:
        for n in range(60):
            aof.append(b"w%d-%d" % (name, n)).wait(T)
            acked.append(b"w%d-%d" % (name, n))
            if len(acked) >= cut_at:
                enough.set()

    writers = [gevent.spawn(writer, i) for i in range(4)]
    try:
        assert enough.wait(T)
        before = list(acked)  # acknowledged before the power went
        tear = rng.choice([None, "random"])
        image = disk.power_loss(tmp_path / "cut", tear=tear, seed=seed)
    finally:
        gevent.joinall(writers, timeout=T)
        aof.close()
    records = replay(image.directory / "state.aof").records
    lost = [r for r in before if r not in set(records)]
    _figure("always", seed, len(before), len(lost), tear=tear,
            unsynced_dropped=image.dropped["state.aof"])
    assert lost == []
    for name in range(4):  # each writer's records are a prefix of what it appended
        mine = [r for r in records if r.startswith(b"w%d-" % name)]
        assert mine == [b"w%d-%d" % (name, n) for n in range(len(mine))]


@pytest.mark.parametrize("seed", SEEDS)
def test_everysec_loses_only_the_last_interval(disk, tmp_path, seed):
    rng = random.Random(seed)
    interval = 1.0
    now = [100.0]
    path = disk.directory / "state.aof"
    aof = AppendOnlyFile.open(path, FsyncPolicy.EVERYSEC, write=disk.write, fsync=disk.fsync,
                              clock=lambda: now[0], everysec_interval=interval)
    acked: list[tuple[bytes, float]] = []
    last_sync = now[0]
    try:
        for n in range(rng.randrange(80, 200)):
            step = rng.uniform(0.0, 0.2)
            now[0] += step
            aof.append(b"r%d" % n).wait(T)  # resolved once written to the OS
            acked.append((b"r%d" % n, now[0]))
            if now[0] - last_sync >= interval:  # what the background syncer does on its own
                fsyncs = disk.fsyncs
                aof._kick_syncer()
                wait_until(lambda f=fsyncs: disk.fsyncs > f, T, what="the everysec fsync")
                last_sync = now[0]
        cut = now[0]
        image = disk.power_loss(tmp_path / "cut", tear=rng.choice([None, "random"]),
                                seed=seed)
    finally:
        aof.close()
    kept = set(replay(image.directory / "state.aof").records)
    lost = [(r, t) for r, t in acked if r not in kept]
    _figure("everysec", seed, len(acked), len(lost),
            oldest_lost_age=f"{cut - min((t for _, t in lost), default=cut):.2f}s")
    assert all(t > last_sync for _, t in lost)  # written after the last fsync started
    assert all(cut - t < interval + 0.2 for _, t in lost)
    assert [r for r, _ in acked if r in kept] == [r for r, _ in acked][:len(kept)]


def test_no_loses_what_was_written_since_the_last_fsync_it_made(disk, tmp_path):
    path = disk.directory / "state.aof"
    aof = AppendOnlyFile.open(path, FsyncPolicy.NO, write=disk.write, fsync=disk.fsync)
    for n in range(50):
        aof.append(b"old%d" % n).wait(T)
    first = replay(disk.power_loss(tmp_path / "cut1").directory / "state.aof").records
    aof.rewrite([b"old%d" % n for n in range(50)])  # a compaction fsyncs the new base
    for n in range(30):
        aof.append(b"new%d" % n).wait(T)
    second = replay(disk.power_loss(tmp_path / "cut2").directory / "state.aof").records
    aof.close()  # close fsyncs under every policy
    third = replay(disk.power_loss(tmp_path / "cut3").directory / "state.aof").records
    _figure("no", 0, 50, 50 - len(first), phase="since-open")
    _figure("no", 0, 80, 80 - len(second), phase="after-compaction")
    assert first == ()
    assert second == tuple(b"old%d" % n for n in range(50))
    assert third == second + tuple(b"new%d" % n for n in range(30))
