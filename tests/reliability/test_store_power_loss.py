"""Power loss under each fsync policy, through the store actor's own acknowledgements.

The store actor runs in this process on the durable shim (``StoreOptions(write=, fsync=)``);
writers ``ask`` it for puts and note each reply. At a seeded moment the power goes; a new store
actor starts on the image and every acknowledged write is checked:

* ``always``: 0 acknowledged writes lost (values and the latest value of a rewritten key);
* ``everysec`` (the actor's manual clock drives the AOF's clock): only writes acknowledged after
  the last background fsync started, less than a second before the cut, are lost;
* ``no``: every write since the store opened its file (the bound; see test_aof_power_loss).

Prints ``FIGURE store power-loss ...`` lines.
"""

from __future__ import annotations

import random

import gevent
import pytest
from gevent.event import Event

from support import wait_until
from support.durable_shim import PowerLossDisk
from titan_actors.actors import ActorSystem, ManualClock
from titan_actors.actors.store import StoreActor, StoreOptions
from titan_actors.wire.messages import store as s

T = 5.0
SEEDS = [5, 6, 7]


class Store:
    """A store actor over ``directory`` (on ``disk`` when given)."""

    def __init__(self, directory, policy: str, clock: ManualClock,
                 disk: PowerLossDisk | None = None) -> None:
        io = {"write": disk.write, "fsync": disk.fsync} if disk else {}
        self.system = ActorSystem()
        self.instances: list[StoreActor] = []

        def make() -> StoreActor:
            self.instances.append(StoreActor(StoreOptions(directory, aof_fsync=policy, **io),
                                             clock=clock))
            return self.instances[-1]
        self.ref = self.system.spawn(make, name="store")
        self.get("")  # started: its AOF was opened at the clock's present time

    def put(self, key: str, value: str) -> None:
        assert self.ref.ask(s.StorePut(key, value), timeout=T) is None

    def get(self, key: str) -> str | None:
        reply = self.ref.ask(s.StoreGet(key), timeout=T)
        return reply.value if reply.found else None

    def stop(self) -> None:
        self.system.stop_all(timeout=T)


@pytest.fixture
def disk(tmp_path):
    with PowerLossDisk(tmp_path / "store") as made:
        yield made


def _lost(image_dir, acked: dict[str, str], clock: ManualClock) -> list[str]:
    again = Store(image_dir, "always", clock)
    try:
        return [key for key, value in acked.items() if again.get(key) != value]
    finally:
        again.stop()


def _figure(policy: str, seed: int, acked: int, lost: int, **more: object) -> None:
    extra = "".join(f" {k}={v}" for k, v in more.items())
    print(f"FIGURE store power-loss policy={policy} seed={seed} acked={acked} lost={lost}{extra}")


@pytest.mark.parametrize("seed", SEEDS)
def test_always_loses_no_acknowledged_write(disk, tmp_path, seed):
    rng = random.Random(seed)
    clock = ManualClock()
    store = Store(disk.directory, "always", clock, disk)
    acked: dict[str, str] = {}   # unique keys, and each writer's counter key at its latest
    cut_at = rng.randrange(30, 120)
    enough = Event()

    def writer(name: int) -> None:
        for n in range(40):
            store.put(f"w{name}-{n}", f"v{n}")
            acked[f"w{name}-{n}"] = f"v{n}"
            store.put(f"counter{name}", str(n))
            acked[f"counter{name}"] = str(n)
            if len(acked) >= cut_at:
                enough.set()

    writers = [gevent.spawn(writer, i) for i in range(4)]
    try:
        assert enough.wait(T)
        before = dict(acked)
        tear = rng.choice([None, "random"])
        image = disk.power_loss(tmp_path / "cut", tear=tear, seed=seed)
    finally:
        gevent.joinall(writers, timeout=T)
        store.stop()
    lost = _lost(image.directory, {k: v for k, v in before.items()
                                   if not k.startswith("counter")}, clock)
    again = Store(image.directory, "always", clock)
    try:  # a counter may be newer than acknowledged (an unacknowledged write landed), never older
        stale = [k for k, v in before.items() if k.startswith("counter")
                 and int(again.get(k) or -1) < int(v)]
    finally:
        again.stop()
    _figure("always", seed, len(before), len(lost) + len(stale), tear=tear)
    assert lost == [] and stale == []


@pytest.mark.parametrize("seed", SEEDS)
def test_everysec_loses_only_writes_of_the_last_second(disk, tmp_path, seed):
    rng = random.Random(seed)
    clock = ManualClock()
    store = Store(disk.directory, "everysec", clock, disk)
    acked: dict[str, tuple[str, float]] = {}
    last_sync = clock.monotonic()
    try:
        for n in range(rng.randrange(60, 150)):
            clock.advance(rng.uniform(0.0, 0.2))
            store.put(f"k{n}", f"v{n}")
            acked[f"k{n}"] = (f"v{n}", clock.monotonic())
            if clock.monotonic() - last_sync >= 1.0:  # the background fsync's turn
                fsyncs = disk.fsyncs
                store.instances[-1].aof._kick_syncer()
                wait_until(lambda f=fsyncs: disk.fsyncs > f, T, what="the everysec fsync")
                last_sync = clock.monotonic()
        cut = clock.monotonic()
        image = disk.power_loss(tmp_path / "cut", tear=rng.choice([None, "random"]), seed=seed)
    finally:
        store.stop()
    lost = _lost(image.directory, {k: v for k, (v, _) in acked.items()}, clock)
    ages = [cut - acked[k][1] for k in lost]
    _figure("everysec", seed, len(acked), len(lost), oldest_lost_age=f"{max(ages, default=0):.2f}s")
    assert all(acked[k][1] > last_sync for k in lost)
    assert all(age < 1.2 for age in ages)


def test_no_loses_the_writes_since_the_file_was_opened(disk, tmp_path):
    clock = ManualClock()
    store = Store(disk.directory, "no", clock, disk)
    try:
        for n in range(40):
            store.put(f"k{n}", f"v{n}")
        image = disk.power_loss(tmp_path / "cut")
    finally:
        store.stop()  # the close fsyncs: nothing is lost after a clean stop
    acked = {f"k{n}": f"v{n}" for n in range(40)}
    lost = _lost(image.directory, acked, clock)
    after_stop = _lost(disk.power_loss(tmp_path / "cut2").directory, acked, clock)
    _figure("no", 0, 40, len(lost), after_clean_stop=len(after_stop))
    assert len(lost) == 40 and after_stop == []
