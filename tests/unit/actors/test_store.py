"""Layer 1: the store actor alone, with a manual clock and a temporary data directory."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from support import wait_until
from titan_actors.actors import ActorSystem, ManualClock
from titan_actors.actors.store import StoreActor, StoreOptions, decode_record
from titan_actors.aof import replay
from titan_actors.errors import AofWriteError, PersistenceError, UsageError
from titan_actors.wire.messages import store as s

T = 5.0


class Store:
    """A running store actor, its ref and its instance (for the few white-box checks)."""

    def __init__(self, options: StoreOptions, clock: ManualClock) -> None:
        self.system = ActorSystem()
        self.instances: list[StoreActor] = []

        def make() -> StoreActor:
            actor = StoreActor(options, clock=clock)
            self.instances.append(actor)
            return actor
        self.ref = self.system.spawn(make, name="store")

    @property
    def actor(self) -> StoreActor:
        return self.instances[-1]

    def ask(self, message):
        return self.ref.ask(message, timeout=T)

    def get(self, key: str) -> str | None:
        reply = self.ask(s.StoreGet(key))
        return reply.value if reply.found else None

    def stop(self) -> None:
        assert self.system.stop_all(timeout=T)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def start(tmp_path, clock):
    started: list[Store] = []

    def start_store(**overrides) -> Store:
        store = Store(StoreOptions(tmp_path / "store", **overrides), clock)
        started.append(store)
        return store
    yield start_store
    for store in started:
        store.system.stop_all(timeout=T)


def test_get_put_delete(start):
    store = start()
    assert store.ask(s.StoreGet("k")) == s.StoreValue(False, "")
    assert store.ask(s.StorePut("k", "v1")) is None
    assert store.ask(s.StoreGet("k")) == s.StoreValue(True, "v1")
    store.ask(s.StorePut("k", "v2"))
    assert store.get("k") == "v2"
    assert store.ask(s.StoreDelete("k")) == s.StoreCount(1)
    assert store.get("k") is None
    assert store.ask(s.StoreDelete("k")) == s.StoreCount(0)
    store.ask(s.StorePut("empty", ""))
    assert store.ask(s.StoreGet("empty")) == s.StoreValue(True, "")


def test_sets_add_remove_members_and_an_empty_set_disappears(start):
    store = start()
    assert store.ask(s.StoreSetAdd("team", "bob")) == s.StoreCount(1)
    assert store.ask(s.StoreSetAdd("team", "bob")) == s.StoreCount(0)
    assert store.ask(s.StoreSetAdd("team", "alice")) == s.StoreCount(1)
    assert store.ask(s.StoreMembers("team")) == s.StoreMembersReply(("alice", "bob"))
    assert store.ask(s.StoreSetRemove("team", "bob")) == s.StoreCount(1)
    assert store.ask(s.StoreSetRemove("team", "bob")) == s.StoreCount(0)
    assert store.ask(s.StoreSetRemove("nobody", "x")) == s.StoreCount(0)
    store.ask(s.StoreSetRemove("team", "alice"))
    assert store.ask(s.StoreMembers("team")) == s.StoreMembersReply(())
    assert store.ask(s.StoreKeys("")) == s.StoreKeysReply(())


def test_keys_by_prefix_and_delete_removes_value_and_set(start):
    store = start()
    store.ask(s.StorePut("job/a", "1"))
    store.ask(s.StoreSetAdd("job/b", "x"))
    store.ask(s.StoreSetAdd("job/a", "y"))
    store.ask(s.StorePut("other", "2"))
    assert store.ask(s.StoreKeys("job/")) == s.StoreKeysReply(("job/a", "job/b"))
    assert store.ask(s.StoreDelete("job/a")) == s.StoreCount(1)
    assert store.get("job/a") is None
    assert store.ask(s.StoreMembers("job/a")) == s.StoreMembersReply(())
    assert store.ask(s.StoreKeys()) == s.StoreKeysReply(("job/b", "other"))


def test_an_expired_key_reads_as_missing_and_the_sweep_drops_it(start, clock):
    store = start(sweep_interval=5.0)
    now = clock.time()
    store.ask(s.StorePut("short", "a", expires_at=now + 2))
    store.ask(s.StorePut("long", "b", expires_at=now + 100))
    store.ask(s.StorePut("forever", "c"))
    clock.advance(1)
    assert store.get("short") == "a"
    clock.advance(1)  # exactly at the expiry: expired
    assert "short" in store.actor._values  # not swept yet
    assert store.ask(s.StoreKeys()) == s.StoreKeysReply(("forever", "long"))
    clock.advance(3)  # the sweep is due
    wait_until(lambda: "short" not in store.actor._values, T, what="the sweep")
    assert store.get("short") is None
    assert store.get("long") == "b"
    assert store.ask(s.StoreDelete("short")) == s.StoreCount(0)
    # a put without an expiry clears the old one
    store.ask(s.StorePut("long", "b2"))
    clock.advance(200)
    assert store.get("long") == "b2"
    assert store.get("forever") == "c"


def test_a_lazy_read_drops_an_expired_key(start, clock):
    store = start(sweep_interval=1000.0)
    store.ask(s.StorePut("k", "v", expires_at=clock.time() + 1))
    clock.advance(2)
    assert store.get("k") is None
    assert "k" not in store.actor._values


def test_a_bad_expiry_is_refused(start):
    store = start()
    for bad in (-1.0, float("nan")):
        with pytest.raises(UsageError, match="expires_at"):
            store.ask(s.StorePut("k", "v", expires_at=bad))
    assert store.get("k") is None


def test_keys_sets_and_expiries_survive_a_restart(start, clock):
    store = start()
    now = clock.time()
    store.ask(s.StorePut("plain", "1"))
    store.ask(s.StorePut("expires-later", "2", expires_at=now + 100))
    store.ask(s.StorePut("expires-soon", "3", expires_at=now + 10))
    store.ask(s.StorePut("deleted", "4"))
    store.ask(s.StoreDelete("deleted"))
    store.ask(s.StoreSetAdd("set", "a"))
    store.ask(s.StoreSetAdd("set", "b"))
    store.ask(s.StoreSetAdd("gone", "x"))
    store.ask(s.StoreSetRemove("gone", "x"))
    store.ask(s.StoreSetRemove("set", "a"))
    store.stop()

    clock.advance(50)  # "expires-soon" expired while the store was down
    again = start()
    assert again.get("plain") == "1"
    assert again.get("expires-later") == "2"
    assert again.get("expires-soon") is None
    assert again.get("deleted") is None
    assert again.ask(s.StoreMembers("set")) == s.StoreMembersReply(("b",))
    assert again.ask(s.StoreKeys()) == s.StoreKeysReply(("expires-later", "plain", "set"))
    clock.advance(50)
    assert again.get("expires-later") is None


def test_unicode_and_delimiters_round_trip_through_the_file(start):
    tricky = ["a|b;c\nd\r\n\t", "\x00nul\x00", "emoji 🎉👩‍👩‍👧", "\u2028\u2029\ufeff",
              "\U0010ffff", " spaced key ", "=:,\"'{}[]"]
    store = start()
    for n, text in enumerate(tricky):
        store.ask(s.StorePut(text, text * 2))
        store.ask(s.StoreSetAdd(f"set{n}\n", text))
    store.stop()
    again = start()
    for n, text in enumerate(tricky):
        assert again.get(text) == text * 2
        assert again.ask(s.StoreMembers(f"set{n}\n")) == s.StoreMembersReply((text,))


def test_writes_are_answered_only_once_durable(start):
    hold, release = threading.Event(), threading.Event()
    fsyncs: list[int] = []

    def gated_fsync(fd: int) -> None:
        if hold.is_set():
            release.wait(T)  # runs in the threadpool: the actor keeps going meanwhile
        fsyncs.append(fd)
        os.fsync(fd)

    store = start(aof_fsync="always", fsync=gated_fsync)
    try:
        store.ask(s.StoreSetAdd("set", "m"))
        hold.set()
        put = store.ref.ask_async(s.StorePut("k", "v"), timeout=T)
        # a write that changes nothing still waits for the earlier one to be durable
        again = store.ref.ask_async(s.StoreSetAdd("set", "m"), timeout=T)
        assert store.get("k") == "v"  # reads are not blocked by the pending fsync
        assert not put.ready() and not again.ready()
        before = len(fsyncs)
        release.set()
        assert put.get(T) is None
        assert again.get(T) == s.StoreCount(0)
        assert len(fsyncs) > before
    finally:
        release.set()


def test_under_everysec_a_write_is_in_the_file_before_it_is_answered(start, clock):
    """What survives a SIGKILL of the store process: the write(2) of each record happens
    before its reply, with no fsync needed (here every fsync is held until the end)."""
    release = threading.Event()

    def held_fsync(fd: int) -> None:
        release.wait(T)  # the everysec syncer's, in the threadpool
        os.fsync(fd)

    store = start(aof_fsync="everysec")
    store.stop()  # the file exists; reopen it with fsyncs held
    store = start(aof_fsync="everysec", fsync=held_fsync)
    try:
        store.ask(s.StorePut("k", "v", expires_at=clock.time() + 60))
        assert store.ask(s.StoreSetAdd("set", "m")) == s.StoreCount(1)
        store.ask(s.StoreDelete("gone"))
        records = [decode_record(r) for r in
                   replay(store.actor.options.data_dir / "store.aof").records]
        assert records == [s.PutRecord("k", "v", clock.time() + 60), s.SetAddRecord("set", "m")]
    finally:
        release.set()


def test_a_failed_fsync_is_an_error_and_refuses_later_writes(start):
    failing = threading.Event()

    def fsync(fd: int) -> None:
        if failing.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        os.fsync(fd)

    store = start(aof_fsync="always", fsync=fsync)
    store.ask(s.StorePut("kept", "1"))
    failing.set()
    with pytest.raises(AofWriteError):
        store.ask(s.StorePut("lost", "2"))
    with pytest.raises(PersistenceError, match="cannot persist"):
        store.ask(s.StoreSetAdd("set", "x"))
    assert store.get("kept") == "1"


def test_compaction_keeps_the_live_state(start, clock, tmp_path):
    path = tmp_path / "store" / "store.aof"
    store = start(rewrite_percentage=0)  # grow the file first, without compaction
    now = clock.time()
    store.ask(s.StorePut("expired", "x", expires_at=now + 1))
    for n in range(300):
        store.ask(s.StorePut("counter", str(n)))
        store.ask(s.StoreSetAdd("set", f"m{n % 7}"))
    store.ask(s.StorePut("ttl", "t", expires_at=now + 1000))
    store.ask(s.StoreSetRemove("set", "m0"))
    store.stop()
    assert len(replay(path).records) > 300  # a put each; re-adding a member writes nothing

    clock.advance(2)
    # the file grows 1 % over its size at open within a few writes: compaction starts
    store = start(rewrite_min_size=0, rewrite_percentage=1)
    for n in range(300, 310):
        store.ask(s.StorePut("counter", str(n)))
    wait_until(lambda: not store.actor._compacting, T, what="compaction to finish")
    records = [decode_record(p) for p in replay(path).records]
    assert len(records) < 30
    assert not any(r.key == "expired" for r in records)
    store.stop()

    again = start()
    assert again.get("counter") == "309"
    assert again.get("ttl") == "t"
    assert again.get("expired") is None
    members = tuple(f"m{n}" for n in range(1, 7))
    assert again.ask(s.StoreMembers("set")) == s.StoreMembersReply(members)
    clock.advance(1000)
    assert again.get("ttl") is None


@pytest.mark.parametrize("action", ["raise@2", "sleep:0.01@2"])
def test_the_before_ack_failpoint_runs_in_the_actor_not_in_a_hub_callback(start, action):
    """Armed, ``store.write.before_ack`` may block or raise: the reply of a durable write then
    goes through the actor, so a sleep delays it and a raise fails it, and nothing hangs."""
    from titan_actors import failpoints
    failpoints.load({"TITAN_FAILPOINTS": f"store.write.before_ack={action}"})
    try:
        store = start()
        assert store.ask(s.StorePut("a", "1")) is None
        if action.startswith("raise"):
            with pytest.raises(OSError, match="failpoint store.write.before_ack"):
                store.ask(s.StorePut("b", "2"))
        else:
            assert store.ask(s.StorePut("b", "2")) is None
        assert store.ask(s.StorePut("c", "3")) is None
        assert (store.get("a"), store.get("b"), store.get("c")) == ("1", "2", "3")
    finally:
        failpoints.load({})
