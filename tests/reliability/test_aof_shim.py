"""The power-loss shim itself (``support/durable_shim.py``): what it keeps and what it drops.

Raw files first (the model), then the shim under a real AppendOnlyFile: after every step of a
compaction the image loads, and holds every record acknowledged before the cut.
"""

from __future__ import annotations

import os

import pytest

from support.durable_shim import PowerLossDisk
from titan_actors.aof import AppendOnlyFile, FsyncPolicy, replay
from titan_actors.aof.rewrite import REWRITE_STEPS, fsync_directory

T = 5.0


@pytest.fixture
def disk(tmp_path):
    (tmp_path / "data").mkdir()
    with PowerLossDisk(tmp_path / "data") as made:
        yield made


def _open(disk: PowerLossDisk, name: str) -> int:
    return os.open(disk.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def test_only_fsynced_writes_and_names_survive(disk, tmp_path):
    fd = _open(disk, "f")
    disk.write(fd, b"one,")
    disk.fsync(fd)
    disk.write(fd, b"two,")
    disk.write(fd, b"three")
    fsync_directory(disk.directory, disk.fsync)
    late = _open(disk, "late")  # created after the directory fsync
    disk.write(late, b"x")
    disk.fsync(late)
    assert disk.unsynced_bytes("f") == 9

    image = disk.power_loss(tmp_path / "cut")
    assert image.files == {"f": b"one,"}
    assert image.dropped == {"f": 9}
    assert (tmp_path / "cut" / "f").read_bytes() == b"one,"
    current = disk.power_loss(tmp_path / "cut2", namespace="current")
    assert current.files == {"f": b"one,", "late": b"x"}  # the OS had written the name
    for descriptor in (fd, late):
        os.close(descriptor)


def test_a_torn_write_keeps_a_prefix_of_the_last_unsynced_write(disk, tmp_path):
    fd = _open(disk, "f")
    fsync_directory(disk.directory, disk.fsync)
    disk.write(fd, b"AAAA")
    disk.fsync(fd)
    disk.write(fd, b"BBBB")
    disk.write(fd, b"CCCC")
    os.close(fd)
    assert disk.power_loss(tmp_path / "a", tear=2).files["f"] == b"AAAABBBBCC"
    assert disk.power_loss(tmp_path / "b", tear=0, survive=0).files["f"] == b"AAAA"
    assert disk.power_loss(tmp_path / "c", tear=3, survive=0).files["f"] == b"AAAABBB"
    assert disk.power_loss(tmp_path / "d", survive=2).files["f"] == b"AAAABBBBCCCC"
    randoms = {disk.power_loss(tmp_path / f"r{seed}", tear="random", seed=seed).files["f"]
               for seed in range(30)}
    assert randoms == {b"AAAABBBB" + b"C" * n for n in range(4)}  # torn: never whole
    assert disk.power_loss(tmp_path / "again", tear="random", seed=7).files["f"] == \
        disk.power_loss(tmp_path / "again2", tear="random", seed=7).files["f"]


def test_a_rename_without_a_directory_fsync_may_be_lost(disk, tmp_path):
    live = _open(disk, "live")
    disk.write(live, b"old")
    disk.fsync(live)
    fsync_directory(disk.directory, disk.fsync)
    os.close(live)
    temp = _open(disk, "live.tmp")
    disk.write(temp, b"new")
    disk.fsync(temp)
    os.close(temp)
    os.replace(disk.directory / "live.tmp", disk.directory / "live")
    # the old inode is unlinked now; the shim still holds it
    assert disk.power_loss(tmp_path / "lost").files == {"live": b"old"}
    assert disk.power_loss(tmp_path / "kept", namespace="current").files == {"live": b"new"}
    fsync_directory(disk.directory, disk.fsync)
    assert disk.power_loss(tmp_path / "synced").files == {"live": b"new"}


def test_files_present_at_the_start_count_as_durable(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old").write_bytes(b"from before")
    with PowerLossDisk(tmp_path / "d") as disk:
        fd = os.open(tmp_path / "d" / "old", os.O_WRONLY | os.O_APPEND)
        disk.write(fd, b" and more")
        os.close(fd)
        assert disk.power_loss(tmp_path / "cut").files == {"old": b"from before"}


def test_under_always_every_acknowledged_record_survives_each_step_of_a_compaction(
        disk, tmp_path):
    cuts: list = []
    path = disk.directory / "state.aof"

    def step(name: str) -> None:  # a power cut right after this step (the hub thread waits)
        for namespace in ("synced", "current"):
            cuts.append((name, namespace, disk.power_loss(
                tmp_path / f"{name}-{namespace}", namespace=namespace)))

    aof = AppendOnlyFile.open(path, FsyncPolicy.ALWAYS, write=disk.write, fsync=disk.fsync,
                              _step_hook=step)
    for n in range(50):
        aof.append(b"r%d" % n).wait(T)
    aof.rewrite([b"snapshot"])
    aof.append(b"after").wait(T)
    aof.close()
    assert [c[0] for c in cuts[::2]] == list(REWRITE_STEPS)
    loaded = {}
    for name, namespace, image in cuts:
        # the old file (50 records) or the new one (the snapshot): the same acknowledged state;
        # a temp file the cut left behind is removed by the next open, and breaks nothing
        reopened = AppendOnlyFile.open(image.directory / "state.aof", FsyncPolicy.ALWAYS)
        assert reopened.replayed.records in (tuple(b"r%d" % n for n in range(50)),
                                             (b"snapshot",)), (name, namespace)
        assert not (image.directory / "state.aof.rewrite.tmp").exists()
        loaded[name, namespace] = len(reopened.replayed.records)
        reopened.append(b"next").wait(T)
        reopened.close()
    assert loaded == {("temp_written", "synced"): 50, ("temp_written", "current"): 50,
                      ("temp_fsynced", "synced"): 50, ("temp_fsynced", "current"): 50,
                      ("replaced", "synced"): 50, ("replaced", "current"): 1,  # rename lost?
                      ("dir_fsynced", "synced"): 1, ("dir_fsynced", "current"): 1}
    final = disk.power_loss(tmp_path / "final")
    assert replay(final.directory / "state.aof").records == (b"snapshot", b"after")
