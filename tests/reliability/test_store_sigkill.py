"""Layer 4: concurrent writers against a real ``titanctl store`` process, SIGKILLed at seeded
random moments and started again on the same data directory.

Each writer (a thread with its own connection, as the master's link talks to the store) puts
unique keys and keeps overwriting one counter key, noting every acknowledged write. When the
acknowledgements reach a seeded random count the store is SIGKILLed; the writers see their
connection break and stop. After the last round the store starts once more and every
acknowledged write is read back:

* ``always``: 0 lost (a unique key with its value; a counter at least at its acknowledged value);
* ``everysec``: any loss must be a write acknowledged within 2 s of its kill. SIGKILL keeps the
  page cache, so expect 0 here too (the power-loss shim is what tells the policies apart).

Prints ``FIGURE store sigkill ...`` with the seed. The default run does a short version; the
``slow`` one more rounds, writers and seeds.
"""

from __future__ import annotations

import itertools
import random
import threading
import time

import pytest

from support.server_process import StoreProcess
from titan_actors.wire.messages import store as s


class Acks:
    """What the writers were told: key -> (value, round, monotonic time of the reply)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, int, float]] = {}
        self.counters: dict[str, int] = {}
        self.total = 0
        self.changed = threading.Condition()

    def note(self, key: str, value: str, round_: int, counter: str | None = None) -> None:
        with self.changed:
            self.total += 1
            if counter is None:
                self.values[key] = (value, round_, time.monotonic())
            else:
                self.counters[counter] = int(value)
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.values) >= count, timeout)


def _writer(store: StoreProcess, acks: Acks, name: str, round_: int) -> None:
    try:
        client = store.client(name)
    except Exception:  # killed before this writer connected
        return
    with client:
        for n in itertools.count():
            key, value = f"{name}-r{round_}-{n}", f"v{n}|{round_}"
            try:
                client.ask(s.StorePut(key, value))
                acks.note(key, value, round_)
                client.ask(s.StorePut(f"counter-{name}", str(n)))
                acks.note("", str(n), round_, counter=f"counter-{name}")
            except Exception:  # the store was killed: this round is over for this writer
                return


def _scenario(tmp_path, policy: str, seed: int, rounds: int, writers: int) -> None:
    rng = random.Random(seed)
    store = StoreProcess(tmp_path / "data", {"TITAN_AOF_FSYNC": policy})
    acks = Acks()
    kills: list[float] = []
    try:
        for round_ in range(rounds):
            store.start()
            target = len(acks.values) + rng.randrange(30, 250)
            threads = [threading.Thread(target=_writer, args=(store, acks, f"w{i}", round_))
                       for i in range(writers)]
            for thread in threads:
                thread.start()
            assert acks.wait_for(target, 60), f"round {round_}: writes stalled\n{store.log()}"
            kills.append(time.monotonic())
            store.kill()
            for thread in threads:
                thread.join(30)
                assert not thread.is_alive()
        store.start()
        with store.client("checker") as client:
            lost = [key for key, (value, _, _) in acks.values.items()
                    if client.ask(s.StoreGet(key)) != s.StoreValue(True, value)]
            stale = [key for key, n in acks.counters.items()
                     if int(client.ask(s.StoreGet(key)).value or -1) < n]
    finally:
        store.stop()
    ages = [kills[acks.values[key][1]] - acks.values[key][2] for key in lost]
    print(f"FIGURE store sigkill policy={policy} seed={seed} rounds={rounds} writers={writers} "
          f"acked={acks.total} lost={len(lost)} "
          f"stale_counters={len(stale)} oldest_lost_age={max(ages, default=0):.2f}s")
    assert stale == []
    if policy == "always":
        assert lost == []
    else:
        assert all(age < 2.0 for age in ages), ages


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_acknowledged_writes_survive_sigkills(tmp_path, policy):
    _scenario(tmp_path, policy, seed=1, rounds=2 if policy == "always" else 1, writers=3)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [101, 202, 303])
@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_acknowledged_writes_survive_many_sigkills(tmp_path, policy, seed):
    _scenario(tmp_path, policy, seed, rounds=8, writers=6)
