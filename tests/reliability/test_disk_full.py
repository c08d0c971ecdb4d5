"""A full disk under the append-only files: errors, never a false acknowledgement; degraded
persistence that a user can see; recovery once space returns.

In process (everywhere), the AOF's ``write`` fails with ENOSPC on demand:

* the master: the change that meets the full disk is refused with an error saying it is applied
  in memory but not durable; every later change is refused before it touches anything; ``Ping``
  reports the degradation; once space is back the master writes its state anew (every
  ``persistence_retry``), accepts changes again, and a restart shows the in-memory change kept
  and the refused one absent. With a worker: its report refused while degraded is delivered
  after the recovery (the worker registers again) and the runs complete.
* the store, the same way.

As root, on a real 512 KiB tmpfs filled by a filler file: a real ``titanctl master`` and a real
``titanctl store`` (skipped, saying why, when not root or the mount fails; always unmounted).
Prints ``FIGURE disk-full ...`` with the recovery time after the filler is deleted.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support import wait_until
from support.cluster import make_cluster_fixture  # noqa: F401 (the make_cluster fixture)
from support.processes import titanctl
from support.server_process import MasterProcess, StoreProcess
from titan_actors.actors import ActorSystem, ManualClock
from titan_actors.actors.master import MasterActor, MasterOptions
from titan_actors.actors.store import StoreActor, StoreOptions
from titan_actors.client import MasterClient
from titan_actors.errors import AofWriteError, PersistenceError
from titan_actors.scheduler import JobSpec, JobState, RunSpec
from titan_actors.wire.messages import master as m
from titan_actors.wire.messages import store as s
from titan_actors.wire.messages.control import Ping
from titan_web.metrics import exposition
from titan_web.status import read_status

T = 5.0
APPLIED = "applied this change in memory but could not make it durable"
REFUSED = "refused this SubmitRun and changed nothing"


class FullDisk:
    """An ``os.write`` that fails with ENOSPC while ``full`` is set."""

    def __init__(self) -> None:
        self.full = threading.Event()

    def write(self, fd: int, data) -> int:
        if self.full.is_set():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


def _spec(name: str, command: tuple[str, ...] = ("true",)) -> RunSpec:
    return RunSpec(name, (JobSpec("only", command=command),))


def _names(runs) -> set[str]:
    return {run.name for run in runs}


# -- in process -------------------------------------------------------------------------------

class Master:
    """A master actor over ``directory`` with a manual clock (no server, no workers)."""

    def __init__(self, directory: Path, clock: ManualClock, **options) -> None:
        self.system = ActorSystem()
        self.ref = self.system.spawn(MasterActor, MasterOptions(directory, **options),
                                     clock=clock, name="master")

    def ask(self, message):
        return self.ref.ask(message, timeout=T)

    def names(self) -> set[str]:
        return _names(self.ask(m.ListRuns(100)).runs)

    def stop(self) -> None:
        assert self.system.stop_all(timeout=T)


def test_the_master_refuses_changes_while_the_disk_is_full_and_recovers(tmp_path):
    disk, clock = FullDisk(), ManualClock()
    master = Master(tmp_path / "master", clock, write=disk.write)
    try:
        master.ask(m.SubmitRun(_spec("before")))
        assert master.ask(Ping(b"x")).degraded == ""
        disk.full.set()
        with pytest.raises(AofWriteError, match=APPLIED) as applied:
            master.ask(m.SubmitRun(_spec("in-memory")))
        assert "No space left on device" in str(applied.value)
        assert master.names() == {"before", "in-memory"}  # applied, not acknowledged
        with pytest.raises(PersistenceError, match=REFUSED):
            master.ask(m.SubmitRun(_spec("refused")))
        assert master.names() == {"before", "in-memory"}  # refused before it changed anything
        degraded = master.ask(Ping(b"x")).degraded
        assert "master.aof cannot be written" in degraded and "No space left" in degraded

        clock.advance(1.0)  # an attempt to write the state anew: the disk is still full
        assert master.ask(Ping(b"x")).degraded
        assert not (tmp_path / "master" / "master.aof.rewrite.tmp").exists()  # removed
        disk.full.clear()
        clock.advance(1.0)
        assert master.ask(Ping(b"x")).degraded == ""
        master.ask(m.SubmitRun(_spec("after")))
    finally:
        master.stop()
    again = Master(tmp_path / "master", clock)
    try:
        assert again.names() == {"before", "in-memory", "after"}
    finally:
        again.stop()


def test_a_file_that_failed_on_its_own_makes_the_next_change_refused_up_front(tmp_path):
    # a background fsync (everysec) or a compaction after its rename fails outside any request:
    # the next change must be refused before it touches the scheduler, not applied and failed
    clock = ManualClock()
    made: list[MasterActor] = []
    system = ActorSystem()
    ref = system.spawn(lambda: made.append(MasterActor(MasterOptions(tmp_path / "m"),
                                                       clock=clock)) or made[-1], name="master")
    try:
        ref.ask(m.SubmitRun(_spec("before")), timeout=T)
        made[-1].aof._degrade(OSError(errno.EIO, "background fsync failed"), "background fsync")
        with pytest.raises(PersistenceError, match=REFUSED):
            ref.ask(m.SubmitRun(_spec("refused")), timeout=T)
        assert _names(ref.ask(m.ListRuns(10), timeout=T).runs) == {"before"}
        clock.advance(1.0)
        assert ref.ask(Ping(b""), timeout=T).degraded == ""
        ref.ask(m.SubmitRun(_spec("after")), timeout=T)
    finally:
        assert system.stop_all(timeout=T)


def test_the_store_refuses_writes_while_the_disk_is_full_and_recovers(tmp_path):
    disk, clock = FullDisk(), ManualClock()
    options = StoreOptions(tmp_path / "store", aof_fsync="always", write=disk.write)
    system = ActorSystem()
    store = system.spawn(StoreActor, options, clock=clock, name="store")
    try:
        store.ask(s.StorePut("before", "1"), timeout=T)
        disk.full.set()
        with pytest.raises(AofWriteError, match="applied this write in memory"):
            store.ask(s.StorePut("in-memory", "2"), timeout=T)
        assert store.ask(s.StoreGet("in-memory"), timeout=T) == s.StoreValue(True, "2")
        with pytest.raises(PersistenceError, match="refused this write and changed nothing"):
            store.ask(s.StorePut("refused", "3"), timeout=T)
        assert store.ask(s.StoreGet("refused"), timeout=T) == s.StoreValue(False, "")
        assert "No space left" in store.ask(Ping(b"x"), timeout=T).degraded
        clock.advance(1.0)
        assert store.ask(Ping(b"x"), timeout=T).degraded
        disk.full.clear()
        clock.advance(1.0)
        assert store.ask(Ping(b"x"), timeout=T).degraded == ""
        store.ask(s.StorePut("after", "4"), timeout=T)
    finally:
        assert system.stop_all(timeout=T)
    system = ActorSystem()
    store = system.spawn(StoreActor, StoreOptions(tmp_path / "store"), name="store")
    try:
        assert store.ask(s.StoreKeys(""), timeout=T).keys == ("after", "before", "in-memory")
    finally:
        system.stop_all(timeout=T)


def test_a_worker_report_refused_while_degraded_is_recorded_after_recovery(make_cluster,
                                                                             tmp_path, caplog):
    disk = FullDisk()
    cluster = make_cluster(master_options={"write": disk.write, "persistence_retry": 0.1})
    cluster.start_master()
    cluster.add_worker("w1")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    first = cluster.client.submit(_spec("waits", ("bash", "-c", f"read line < {gate}"))).run_id
    cluster.client.wait_job(f"{first}/only", JobState.RUNNING)
    disk.full.set()
    with pytest.raises(AofWriteError, match=APPLIED):
        cluster.client.submit(_spec("queued"))
    with caplog.at_level(logging.INFO, logger="titan.master"):
        fd = os.open(gate, os.O_WRONLY)  # the job reads a line and exits
        os.write(fd, b"go\n")
        os.close(fd)
        wait_until(lambda: any("refused a JobFinished" in r.getMessage() for r in caplog.records),
                   T, what="the worker's report to be refused")
    assert cluster.client.job(f"{first}/only").job.state is JobState.RUNNING
    assert cluster.client.ping().degraded
    seen = read_status(cluster.client)  # what the web console's status line and /metrics show
    assert "No space left on device" in seen.degraded
    assert "titan_persistence_degraded 1" in exposition(seen, {}, True, 0, 0)
    cleared = time.monotonic()
    disk.full.clear()
    wait_until(lambda: cluster.client.ping().degraded == "", T, what="the recovery")
    recovered = time.monotonic() - cleared
    assert "titan_persistence_degraded 0" in exposition(read_status(cluster.client), {}, True,
                                                        0, 0)
    runs = {run.name: run.run_id for run in cluster.client.runs(10)}
    for name in ("waits", "queued"):  # the report arrives with the worker's new registration
        jobs = cluster.client.wait_run(runs[name], 10)
        assert {info.state for info in jobs.values()} == {JobState.COMPLETED}, name
    print(f"FIGURE disk-full in-process master+worker retry=0.1s recovered_in={recovered:.2f}s")


# -- real processes on a small tmpfs ----------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs mounted for this test (root only), unmounted at its end."""
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs needs root; this test runs as uid {os.geteuid()}")
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs on {where}: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


def _fill(directory: Path) -> Path:
    """A filler file that takes every free block of ``directory``'s filesystem."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    finally:
        os.close(fd)
    return filler


def test_a_master_on_a_full_disk_never_acknowledges_falsely_and_recovers(small_disk, tmp_path):
    master = MasterProcess(small_disk / "data", log_dir=tmp_path)
    acked: list[str] = []
    try:
        master.start()
        with MasterClient(*master.address, timeout=10, identity="test") as client:
            client.submit(_spec("before"))
            acked.append("before")
            filler = _fill(small_disk)
            failure = None
            for n in range(2000):  # the AOF's last page may still have room for a few
                try:
                    client.submit(_spec(f"run{n}"))
                    acked.append(f"run{n}")
                except PersistenceError as error:
                    failure, in_memory = error, f"run{n}"
                    break
            assert failure is not None, "2000 submissions on a full disk all succeeded"
            assert APPLIED in str(failure) and "No space left on device" in str(failure)
            with pytest.raises(PersistenceError, match=REFUSED):
                client.submit(_spec("refused"))
            pinged = titanctl("ping", "--master", "{}:{}".format(*master.address))
            assert pinged.returncode == 1, pinged.stdout + pinged.stderr
            assert "DEGRADED" in pinged.stderr and "No space left on device" in pinged.stderr

            removed = time.monotonic()
            filler.unlink()
            wait_until(lambda: client.ping().degraded == "", 15, interval=0.02,
                       what="the master to restore its persistence")
            recovered = time.monotonic() - removed
            client.submit(_spec("after"))
            acked.append("after")
            assert titanctl("ping", "--master", "{}:{}".format(*master.address)).returncode == 0
        master.stop()
        master.start()
        with MasterClient(*master.address, timeout=10, identity="test") as client:
            names = _names(client.runs(10_000))
    finally:
        master.stop()
    assert set(acked) <= names and in_memory in names and "refused" not in names
    print(f"FIGURE disk-full master tmpfs=512k acked={len(acked)} false_acks=0 "
          f"recovered_in={recovered:.2f}s (persistence_retry 1s)")


def test_a_store_on_a_full_disk_never_acknowledges_falsely_and_recovers(small_disk, tmp_path):
    store = StoreProcess(small_disk / "data", log_dir=tmp_path)
    acked: dict[str, str] = {}
    try:
        store.start()  # the store's own default policy: everysec
        with store.client("test") as client:
            filler = _fill(small_disk)
            failure = None
            for n in range(20000):
                try:
                    client.ask(s.StorePut(f"k{n}", f"value {n}"))
                    acked[f"k{n}"] = f"value {n}"
                except PersistenceError as error:
                    failure, in_memory = error, f"k{n}"
                    break
            assert failure is not None, "20000 writes on a full disk all succeeded"
            assert "applied this write in memory" in str(failure)
            with pytest.raises(PersistenceError, match="refused this write and changed nothing"):
                client.ask(s.StorePut("refused", "x"))
            assert "No space left on device" in client.ask(Ping(b"x")).degraded

            removed = time.monotonic()
            filler.unlink()
            wait_until(lambda: client.ask(Ping(b"x")).degraded == "", 15, interval=0.02,
                       what="the store to restore its persistence")
            recovered = time.monotonic() - removed
            client.ask(s.StorePut("after", "y"))
            acked["after"] = "y"
        store.stop()
        store.start()
        with store.client("checker") as client:
            lost = [k for k, v in acked.items() if client.ask(s.StoreGet(k)).value != v]
            assert client.ask(s.StoreGet(in_memory)).found
            assert not client.ask(s.StoreGet("refused")).found
    finally:
        store.stop()
    assert lost == []
    print(f"FIGURE disk-full store tmpfs=512k acked={len(acked)} false_acks=0 "
          f"recovered_in={recovered:.2f}s (persistence_retry 1s)")
