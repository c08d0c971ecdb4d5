"""Torn tails and mid-file damage in the master's and the store's own files, loaded by the real
loaders (a StoreActor, a MasterActor).

* A crash tears the end of the file: cut at EVERY byte offset inside the last few records, the
  file loads, holds exactly the records before the cut (the state after them, as the actor
  shows it), and is truncated back to its last whole record so the next append is clean.
* A flipped bit before the last record (every header byte and a sample of payload bytes of every
  record but the last) is refused: the error names the file and the record's byte offset, at
  open, in ``titanctl aof check`` (exit 1) and when a real ``titanctl store`` starts on it.

Prints ``FIGURE aof torn-tail ...`` / ``FIGURE aof bit-flip ...`` lines (offsets tested).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from support.processes import titanctl
from titan_actors.actors import ActorSystem, ManualClock
from titan_actors.actors.master import MasterActor, MasterOptions
from titan_actors.actors.store import StoreActor, StoreOptions
from titan_actors.aof import AppendOnlyFile, FsyncPolicy, check_aof, replay
from titan_actors.aof import record as rec
from titan_actors.errors import AofCorruptError
from titan_actors.master import records as master_records
from titan_actors.scheduler import JobSpec, RunSpec, Scheduler
from titan_actors.wire.messages import master as m
from titan_actors.wire.messages import store as s

T = 5.0
T0 = 1_800_000_000.0
LAST_RECORDS = 3  # every offset inside the last three records is cut


def record_starts(data: bytes) -> list[int]:
    """The byte offset of each record of a well-formed file, then the file's size."""
    starts, offset = [], rec.FILE_HEADER_SIZE
    while offset < len(data):
        starts.append(offset)
        length, _, _ = rec.decode_record_header(data, offset)
        offset += rec.RECORD_HEADER_SIZE + length
    return starts + [len(data)]


# -- the store's file -------------------------------------------------------------------------

def _store_state(ref) -> dict:
    keys = ref.ask(s.StoreKeys(""), timeout=T).keys
    state = {}
    for key in keys:
        value = ref.ask(s.StoreGet(key), timeout=T)
        members = ref.ask(s.StoreMembers(key), timeout=T).members
        state[key] = (value.value if value.found else None, members)
    return state


class StoreOn:
    """A store actor over ``directory``, stopped on exit."""

    def __init__(self, directory: Path) -> None:
        self.system = ActorSystem()
        self.ref = self.system.spawn(StoreActor, StoreOptions(directory, aof_fsync="always"),
                                     clock=ManualClock(), name="store")

    def __enter__(self):
        return self.ref

    def __exit__(self, *exc: object) -> None:
        self.system.stop_all(timeout=T)


@pytest.fixture(scope="module")
def store_file(tmp_path_factory) -> tuple[bytes, list[dict]]:
    """A store AOF of mixed writes, and the state after each record (one record per write)."""
    directory = tmp_path_factory.mktemp("store")
    states = [{}]
    writes = [s.StorePut("a", "1"), s.StoreSetAdd("set", "x"), s.StorePut("b", "ü" * 20),
              s.StorePut("a", "2", expires_at=T0 + 3600), s.StoreSetAdd("set", "y"),
              s.StoreDelete("b"), s.StoreSetRemove("set", "x"), s.StorePut("c", "last;\n")]
    with StoreOn(directory) as ref:
        for write in writes:
            ref.ask(write, timeout=T)
            states.append(_store_state(ref))
    data = (directory / "store.aof").read_bytes()
    assert len(record_starts(data)) == len(writes) + 1
    return data, states


def test_the_store_loads_a_tail_torn_at_every_offset(store_file, tmp_path):
    data, states = store_file
    starts = record_starts(data)
    tested = 0
    for cut in range(starts[-1 - LAST_RECORDS] + 1, len(data)):
        whole = sum(1 for end in starts[1:] if end <= cut)
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / "store.aof").write_bytes(data[:cut])
        with StoreOn(directory) as ref:
            assert _store_state(ref) == states[whole], cut
            ref.ask(s.StorePut("after", "crash"), timeout=T)
        # the torn bytes were truncated away before the append: the file is clean
        assert replay(directory / "store.aof").damage is None, cut
        tested += 1
    print(f"FIGURE aof torn-tail format=store offsets={tested} records={LAST_RECORDS} lost=0")


# -- the master's file ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def master_file(tmp_path_factory) -> tuple[Path, bytes]:
    """A master AOF as the scheduler writes it: a run submitted, dispatched, finished."""
    scheduler = Scheduler()
    scheduler.set_worker("w1", frozenset({"GENERAL"}), 2)
    jobs = (JobSpec("fetch", command=("true",)),
            JobSpec("crunch", parents=("fetch",), command=("wc", "-l")),
            JobSpec("report", parents=("crunch",), command=("echo", "dønе")))
    records = scheduler.submit(RunSpec("torn", jobs), T0)[1]
    for step in range(3):
        for assignment in scheduler.assign(T0 + step):
            records.append(assignment.record)
            records += scheduler.finished(assignment.run_id, assignment.job_id,
                                          assignment.attempt, assignment.epoch, 0, T0 + step)
    directory = tmp_path_factory.mktemp("master")
    aof = AppendOnlyFile.open(directory / "master.aof", FsyncPolicy.ALWAYS)
    for record in records:
        aof.append(master_records.encode(record)).wait(T)
    aof.close()
    return directory / "master.aof", (directory / "master.aof").read_bytes()


def _expected_master(payloads: tuple[bytes, ...]) -> list:
    scheduler = Scheduler()
    for payload in payloads:
        scheduler.apply(master_records.decode(payload))
    return [master_records.encode(r) for r in scheduler.snapshot()]


def test_the_master_loads_a_tail_torn_at_every_offset(master_file, tmp_path):
    path, data = master_file
    payloads = replay(path).records
    starts = record_starts(data)
    tested = 0
    for cut in range(starts[-1 - LAST_RECORDS] + 1, len(data)):
        whole = sum(1 for end in starts[1:] if end <= cut)
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / "master.aof").write_bytes(data[:cut])
        system = ActorSystem()
        masters: list[MasterActor] = []

        def make(directory=directory, masters=masters) -> MasterActor:
            masters.append(MasterActor(MasterOptions(directory), clock=ManualClock()))
            return masters[-1]
        ref = system.spawn(make, name="master")
        try:
            runs = ref.ask(m.ListRuns(10), timeout=T).runs
            assert len(runs) == (1 if whole else 0), cut
            snapshot = [master_records.encode(r) for r in masters[-1].scheduler.snapshot()]
            assert snapshot == _expected_master(payloads[:whole]), cut
        finally:
            system.stop_all(timeout=T)
        assert replay(directory / "master.aof").damage is None, cut
        tested += 1
    print(f"FIGURE aof torn-tail format=master offsets={tested} records={LAST_RECORDS} lost=0")


# -- mid-file damage --------------------------------------------------------------------------

def _flips(data: bytes, seed: int) -> list[tuple[int, int]]:
    """(byte offset, record start) of every header byte and a sample of payload bytes of each
    record but the last."""
    rng = random.Random(seed)
    starts = record_starts(data)
    chosen = []
    for start, end in zip(starts[:-2], starts[1:-1], strict=True):
        body = start + rec.RECORD_HEADER_SIZE
        offsets = list(range(start, body))
        if end > body:
            offsets += sorted({body, end - 1, *rng.sample(range(body, end), min(4, end - body))})
        chosen += [(offset, start) for offset in offsets]
    return chosen


@pytest.mark.parametrize("which", ["store", "master"])
def test_a_flipped_bit_before_the_last_record_is_refused_naming_file_and_offset(
        which, store_file, master_file, tmp_path):
    data = store_file[0] if which == "store" else master_file[1]
    seed = 8
    flips = _flips(data, seed)
    path = tmp_path / f"{which}.aof"
    for offset, start in flips:
        damaged = bytearray(data)
        damaged[offset] ^= 1 << (offset % 8)
        path.write_bytes(damaged)
        with pytest.raises(AofCorruptError) as refused:
            AppendOnlyFile.open(path, FsyncPolicy.ALWAYS)
        assert f"{path} is corrupt at byte offset {start}:" in str(refused.value), offset
        report = check_aof(path)
        assert not report.loadable and report.damage.offset == start, offset
        assert path.read_bytes() == damaged  # refused, never "repaired"
    print(f"FIGURE aof bit-flip format={which} seed={seed} offsets={len(flips)} "
          f"records={len(record_starts(data)) - 2} refused={len(flips)}")


def test_titanctl_refuses_a_damaged_store_file(store_file, tmp_path):
    data = store_file[0]
    starts = record_starts(data)
    damaged = bytearray(data)
    damaged[starts[2] + rec.RECORD_HEADER_SIZE] ^= 0x40  # a payload byte of the third record
    directory = tmp_path / "data"
    (directory / "store").mkdir(parents=True)
    path = directory / "store" / "store.aof"
    path.write_bytes(damaged)
    checked = titanctl("aof", "check", str(path))
    assert checked.returncode == 1
    assert f"CORRUPT at byte offset {starts[2]}" in checked.stdout
    started = titanctl("store", "--data-dir", str(directory), "--store-port", "0", timeout=30)
    assert started.returncode != 0
    assert f"{path} is corrupt at byte offset {starts[2]}" in started.stderr
    assert path.read_bytes() == damaged
