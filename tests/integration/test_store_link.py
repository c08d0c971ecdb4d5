"""Layer 3: the master forwarding store requests to a store served by another actor system, over
real sockets on port 0, as ``titanctl store`` and ``titanctl master --store-address`` compose them
(a cluster key, the store accepting PEER and ADMIN only); the store stops, restarts on the same
port and data directory, and the master's link reconnects by itself.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import gevent
import pytest

from support import closed_port, wait_until
from support.cluster import ThreadedClient
from titan_actors.actors.master import MasterActor, MasterOptions
from titan_actors.actors.store import StoreActor, StoreOptions
from titan_actors.actors.store_link import StoreLink, StoreLinkOptions
from titan_actors.actors.system import ActorSystem
from titan_actors.errors import HandshakeError, StoreUnavailableError
from titan_actors.wire.auth import KeyRing
from titan_actors.wire.roles import Role
from titan_actors.wire.server import ActorServer, dial

KEY = KeyRing(os.urandom(32))
T = 5.0
WAIT = 0.5  # the link's bounded wait for a missing connection, in these tests


class StoreServer:
    """A store actor served on a port, as ``run_store`` builds it."""

    def __init__(self, directory: Path, port: int = 0, **options) -> None:
        self.system = ActorSystem()
        self.server = ActorServer(None, port=port, identity="store", keys=KEY,
                                  allowed_roles=frozenset({Role.PEER, Role.ADMIN}))
        self.address = self.server.listen()
        self.ref = self.system.spawn(StoreActor, StoreOptions(directory, **options),
                                     name="store")
        self.server.target = self.ref
        self.server.start()

    def stop(self) -> None:
        self.server.stop(timeout=2)
        assert self.system.stop_all(timeout=T), "the store did not stop"


class Master:
    """A master whose store is a StoreLink, and a client of it (in the threadpool)."""

    def __init__(self, directory: Path, store_address: tuple[str, int], keys=KEY,
                 wait: float = WAIT) -> None:
        self.link = StoreLink(StoreLinkOptions(store_address, unreachable_timeout=wait,
                                               reconnect_min=0.01, reconnect_max=0.1),
                              keys=keys).start()
        self.system = ActorSystem()
        self.server = ActorServer(None, port=0, identity="master", keys=KEY)
        address = self.server.listen()
        self.ref = self.system.spawn(MasterActor, MasterOptions(directory, "master", address),
                                     keys=KEY, name="master", store=self.link)
        self.server.target = self.ref
        self.server.start()
        self.client = ThreadedClient(*address, keys=KEY)

    def close(self) -> None:
        self.client.close()
        self.server.stop(timeout=2)
        assert self.system.stop_all(timeout=T)
        self.link.close()


@pytest.fixture
def parts(tmp_path):
    """Start stores and masters; everything started is stopped at the end."""
    started: list = []

    class Parts:
        def store(self, port: int = 0, **options) -> StoreServer:
            started.append(StoreServer(tmp_path / "store", port, **options))
            return started[-1]

        def master(self, store_address, **kwargs) -> Master:
            started.append(Master(tmp_path / f"master{len(started)}", store_address, **kwargs))
            return started[-1]
    yield Parts()
    for part in reversed(started):
        try:
            part.close() if isinstance(part, Master) else part.stop()
        except Exception:  # a part the test stopped already
            pass


def _address(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _background(function, *args) -> gevent.Greenlet:
    """Run ``function`` in a greenlet whose value is ``(None, result)`` or ``(error, None)``
    (an expected error is the test's to check, not a greenlet error)."""
    def outcome():
        try:
            return None, function(*args)
        except Exception as error:
            return error, None
    return gevent.spawn(outcome)


def test_store_requests_survive_a_store_restart_and_the_link_reconnects_by_itself(parts):
    store = parts.store()
    master = parts.master(store.address)
    client = master.client
    client.store_put("k", "v|;\n✓")
    client.store_put("expiring", "soon", ttl=3600)
    assert client.store_sadd("team", "bob") == 1 and client.store_sadd("team", "al") == 1
    assert client.store_get("k") == "v|;\n✓"
    assert master.link.connected

    port = store.address[1]
    store.stop()
    wait_until(lambda: not master.link.connected, T, what="the link to notice")
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as refused:
        client.store_get("k")
    assert time.monotonic() - started < WAIT + 2.0  # bounded: no hang
    assert f"store at {_address(store.address)} is unreachable" in str(refused.value)
    assert client.ping().identity == "master"  # the master goes on serving

    store = parts.store(port)
    assert master.link.wait_connected(T), "the link did not reconnect"
    assert client.store_get("k") == "v|;\n✓"
    assert client.store_get("expiring") == "soon"
    assert client.store_members("team") == ("al", "bob")
    assert client.store_sadd("team", "bob") == 0


def test_a_request_waiting_for_the_link_is_sent_once_the_store_is_back(parts):
    store = parts.store()
    master = parts.master(store.address, wait=T)
    master.client.store_put("k", "before")
    port = store.address[1]
    store.stop()
    wait_until(lambda: not master.link.connected, T, what="the link to notice")
    waiting = _background(master.client.store_put, "k", "while down")
    wait_until(lambda: master.link._waiting, T, what="the request to wait for the link")
    parts.store(port)
    assert waiting.get(timeout=T) == (None, None)
    assert master.client.store_get("k") == "while down"


def test_a_request_in_flight_when_the_store_dies_fails_naming_it(parts):
    hold, entered, release = threading.Event(), threading.Event(), threading.Event()

    def held_fsync(fd: int) -> None:
        if hold.is_set():
            entered.set()
            release.wait(T)  # in the threadpool: the write is not acknowledged meanwhile
        os.fsync(fd)

    store = parts.store(aof_fsync="always", fsync=held_fsync)
    master = parts.master(store.address)
    master.client.store_put("before", "1")
    hold.set()
    try:
        put = _background(master.client.store_put, "k", "v")
        wait_until(entered.is_set, T, what="the fsync of the put")
        store.server.stop(timeout=2)  # the store's side of the connection goes away
        error, _ = put.get(timeout=T)
        assert isinstance(error, StoreUnavailableError), error
        assert f"store at {_address(store.address)} broke" in str(error)
        assert "may or may not have been applied" in str(error)
    finally:
        release.set()


def test_an_unreachable_store_fails_requests_in_bounded_time_and_the_master_goes_on(parts):
    address = ("127.0.0.1", closed_port())
    master = parts.master(address)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="refused") as refused:
        master.client.store_put("k", "v")
    assert WAIT <= time.monotonic() - started < WAIT + 2.0
    assert _address(address) in str(refused.value)
    assert master.client.ping().identity == "master"


def test_the_store_admits_the_master_as_peer_and_no_client(parts):
    store = parts.store()
    with pytest.raises(HandshakeError):
        dial(*store.address, role=Role.CLIENT, keys=KEY, timeout=T)
    keyless = parts.master(store.address, keys=None)  # it cannot prove the PEER role
    with pytest.raises(StoreUnavailableError, match=_address(store.address)):
        keyless.client.store_get("k")
