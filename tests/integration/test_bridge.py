"""Layers 2 and 3: actors talking through the bridge, over the in-memory pair and real sockets.

Every test here runs on both transports (the fake passes the same tests as the real thing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gevent
import pytest
from gevent import socket
from gevent.event import Event

from support import wait_until
from titan_actors.actors import Actor, ActorSystem, Sender, handles
from titan_actors.errors import (
    BrokenError,
    HandshakeError,
    MailboxFullError,
    PermissionDeniedError,
    RemoteError,
    UsageError,
)
from titan_actors.wire import codec
from titan_actors.wire.auth import ClientHandshake, KeyRing, ServerHandshake
from titan_actors.wire.bridge import Endpoint, make_send_lock
from titan_actors.wire.connection import Connection
from titan_actors.wire.greeting import client_handshake, server_handshake
from titan_actors.wire.memory import memory_pair
from titan_actors.wire.messages.control import Ping, Pong
from titan_actors.wire.registry import Message, message
from titan_actors.wire.roles import Capability, Role
from titan_actors.wire.server import ActorServer, dial


@message(64001, requires=Capability.QUERY)
class Echo(Message):
    text: str


@message(64002, requires=Capability.QUERY)
class Fail(Message):
    kind: str


@message(64003, requires=Capability.QUERY)
class Hold(Message):
    pass


@message(64004, requires=Capability.QUERY)
class Note(Message):
    n: int
    padding: bytes = b""


@message(64005, requires=Capability.SUBMIT)
class Submit(Message):
    name: str


@message(64006, requires=Capability.QUERY)
class CallBack(Message):
    text: str


@message(64007, requires=Capability.QUERY)
class Count(Message):
    pass


class EchoActor(Actor):
    def __init__(self, gate: Event, holding: Event | None = None) -> None:
        super().__init__()
        self.gate = gate
        self.holding = holding or Event()
        self.notes: list[int] = []
        self.peers: list[str] = []

    @handles(Echo)
    def _echo(self, msg: Echo, sender: Sender) -> Echo:
        self.peers.append(sender.peer.identity)
        return Echo(msg.text)

    @handles(Fail)
    def _fail(self, msg: Fail) -> None:
        if msg.kind == "usage":
            raise UsageError("the field 'x' must be positive")
        raise KeyError("not a TitanError")

    @handles(Hold)
    def _hold(self, msg: Hold) -> None:
        self.holding.set()
        self.gate.wait(10)

    @handles(Note)
    def _note(self, msg: Note) -> None:
        self.notes.append(msg.n)

    @handles(Count)
    def _count(self, msg: Count) -> Note:
        return Note(len(self.notes))

    @handles(Submit)
    def _submit(self, msg: Submit) -> None:
        return None

    @handles(CallBack)
    def _callback(self, msg: CallBack, sender: Sender) -> Echo:
        answer = sender.ref.ask(Ping((msg.text + "!").encode()), timeout=5)
        try:
            sender.ref.ask(Echo("a client grants its server no queries"), timeout=5)
        except PermissionDeniedError as error:
            refused = str(error)
        return Echo(f"via {answer.payload.decode()} ({refused})")

    @handles(Ping)
    def _ping(self, msg: Ping) -> Pong:
        return Pong(msg.payload, "echo", "test")


@pytest.fixture
def system():
    system = ActorSystem()
    yield system
    system.stop_all(timeout=5)


@pytest.fixture
def gate():
    gate = Event()
    yield gate
    gate.set()


def _memory_link(server_ref, client_local, *, role=Role.CLIENT, keys=None, client_keys=None,
                 seal=False, options=None):
    left, right = memory_pair()
    client_conn = Connection(left, send_lock=make_send_lock())
    server_conn = Connection(right, send_lock=make_send_lock())
    server_side = gevent.spawn(server_handshake, server_conn,
                               ServerHandshake("server", keys, "memory", seal=seal))
    session = client_handshake(client_conn, ClientHandshake(role, "tester", client_keys or keys))
    server_session = server_side.get(timeout=5)
    server_ep = Endpoint(server_conn, server_session, local=server_ref, name="server",
                         **(options or {})).start()
    client_ep = Endpoint(client_conn, session, local=client_local, name="client",
                         **(options or {})).start()
    return client_ep, server_ep


@pytest.fixture(params=["memory", "socket"])
def link(request, system, gate):
    """Build (client endpoint, server-side closer) over the transport under test."""
    made: list = []
    servers: list = []

    def build(*, role=Role.CLIENT, keys=None, client_keys=None, seal=False, client_local=None,
              mailbox_size=1000, holding=None, options=None):
        server_ref = system.spawn(EchoActor, gate, holding, mailbox_size=mailbox_size)
        if request.param == "memory":
            client_ep, server_ep = _memory_link(server_ref, client_local, role=role, keys=keys,
                                                client_keys=client_keys, seal=seal,
                                                options=options)
            made.extend([client_ep, server_ep])
            return client_ep, server_ref, server_ep.close
        from titan_actors.config import SealFrames
        server = ActorServer(server_ref, keys=keys,
                             seal_frames=SealFrames.ALWAYS if seal else SealFrames.AUTO,
                             endpoint_options=options).start()
        servers.append(server)
        client_ep = dial(*server.address, role=role, identity="tester",
                         keys=client_keys or keys, local=client_local, timeout=5,
                         **(options or {}))
        made.append(client_ep)

        def close_server_side():
            for endpoint in list(server.endpoints):
                endpoint.close()
        return client_ep, server_ref, close_server_side

    yield build
    for endpoint in made:
        endpoint.close()
    for server in servers:
        server.stop(timeout=2)


def test_ask_and_tell_round_trip(link):
    client, server_ref, _ = link()
    assert client.remote.ask(Echo("a|b;c\n\x00 ✓"), timeout=5) == Echo("a|b;c\n\x00 ✓")
    for n in range(50):
        client.remote.tell(Note(n))
    assert client.remote.ask(Count(), timeout=5) == Note(50)
    assert client.remote.ask(Submit("x"), timeout=5) is None


def test_handler_errors_cross_the_wire_by_class(link):
    client, _, _ = link()
    with pytest.raises(UsageError, match="must be positive"):
        client.remote.ask(Fail("usage"), timeout=5)
    with pytest.raises(RemoteError, match="KeyError"):
        client.remote.ask(Fail("other"), timeout=5)
    assert client.remote.ask(Echo("still fine"), timeout=5) == Echo("still fine")


def test_the_server_can_ask_back_over_the_same_connection(link, system, gate):
    client_actor = system.spawn(EchoActor, gate)
    client, _, _ = link(client_local=client_actor)
    reply = client.remote.ask(CallBack("hi"), timeout=5)
    assert reply.text == "via hi! (role server may not send Echo (needs query))"


def test_lost_connection_fails_pending_asks_at_once(link, gate):
    holding = Event()
    client, _, close_server_side = link(holding=holding)
    pending = client.remote.ask_async(Hold(), timeout=30)
    assert holding.wait(5)
    close_server_side()
    with pytest.raises(BrokenError):
        pending.get(5)  # well before the 30 s ask timeout
    with pytest.raises((BrokenError,)):
        client.remote.tell(Note(1))


def test_roles_limit_what_a_peer_may_send(link):
    client, _, _ = link(role=Role.WORKER)
    assert client.remote.ask(Ping(b"x"), timeout=5).payload == b"x"
    with pytest.raises(PermissionDeniedError, match="role worker may not send Submit"):
        client.remote.ask(Submit("job"), timeout=5)
    with pytest.raises(PermissionDeniedError, match="may not send Echo"):
        client.remote.ask(Echo("q"), timeout=5)


def test_a_full_mailbox_holds_back_the_sender_and_loses_nothing(link, gate):
    holding = Event()
    client, server_ref, _ = link(mailbox_size=2, holding=holding,
                                 options={"outgoing_limit": 4})
    client.remote.tell(Hold())
    assert holding.wait(5)
    sent, held_back = 0, False
    for n in range(5000):  # 64 KiB notes: the socket buffers fill after a few hundred at most
        try:
            client.remote.tell(Note(n, b"x" * 65536), timeout=0.05)
        except MailboxFullError:
            held_back = True  # the sender waits: backpressure reached it
            break
        sent += 1
    assert held_back, "the sender was never held back"
    assert client.is_open  # a caller's short timeout does not break the link
    gate.set()
    wait_until(lambda: client.remote.ask(Count(), timeout=5) == Note(sent), timeout=20,
               what="every note handled")


def test_a_tell_that_cannot_be_delivered_breaks_the_link_instead_of_vanishing(link, gate):
    holding = Event()
    client, _, _ = link(mailbox_size=1, holding=holding,
                        options={"delivery_timeout": 0.1})
    client.remote.tell(Hold())
    assert holding.wait(5)
    client.remote.tell(Note(1))  # fills the mailbox
    client.remote.tell(Note(2))  # cannot be delivered within 0.1 s
    wait_until(lambda: not client.is_open, what="the server to break the link")


def test_authenticated_and_sealed_link(link):
    keys = KeyRing(os.urandom(32))
    client, _, _ = link(keys=keys, seal=True)
    assert client.connection.sealed
    for n in range(20):
        assert client.remote.ask(Echo(f"sealed {n}"), timeout=5) == Echo(f"sealed {n}")


def test_wrong_key_is_refused(link):
    with pytest.raises(HandshakeError):
        link(keys=KeyRing(os.urandom(32)), client_keys=KeyRing(os.urandom(32)))


def test_role_key_cannot_claim_another_role(link):
    cluster = os.urandom(32)
    from titan_actors.wire.auth import role_key
    worker_only = KeyRing(role=Role.WORKER, role_secret=role_key(cluster, Role.WORKER))
    client, _, _ = link(keys=KeyRing(cluster), client_keys=worker_only, role=Role.WORKER)
    assert client.remote.ask(Ping(b""), timeout=5).identity == "echo"
    with pytest.raises(HandshakeError, match="cannot act as client"):
        link(keys=KeyRing(cluster), client_keys=worker_only, role=Role.CLIENT)


def test_garbage_closes_one_connection_and_others_are_served(system, gate):
    server = ActorServer(system.spawn(EchoActor, gate)).start()
    try:
        good = dial(*server.address, timeout=5)
        raw = socket.create_connection(server.address, timeout=5)
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(5)
        assert raw.recv(100) == b""  # closed by the server, nothing echoed
        raw.close()
        assert good.remote.ask(Echo("ok"), timeout=5) == Echo("ok")
        good.close()
    finally:
        server.stop(timeout=2)


def test_injected_frame_on_a_sealed_connection_closes_it(system, gate):
    from titan_actors.config import SealFrames
    keys = KeyRing(os.urandom(32))
    server = ActorServer(system.spawn(EchoActor, gate), keys=keys,
                         seal_frames=SealFrames.ALWAYS).start()
    try:
        client = dial(*server.address, keys=keys, timeout=5)
        assert client.remote.ask(Echo("before"), timeout=5) == Echo("before")
        # an attacker on the path writes an unsealed frame into the stream
        client.connection._transport.sendall(codec.encode_frame(Echo("injected")))
        wait_until(lambda: not client.is_open, what="the server to drop the connection")
        fresh = dial(*server.address, keys=keys, timeout=5)
        assert fresh.remote.ask(Echo("after"), timeout=5) == Echo("after")
        fresh.close()
    finally:
        server.stop(timeout=2)


@dataclass
class _Seen:
    endpoints: list


def test_server_reports_connects_and_disconnects(system, gate):
    seen = _Seen([])
    gone = Event()
    server = ActorServer(system.spawn(EchoActor, gate), on_connect=seen.endpoints.append,
                         on_disconnect=lambda ep: gone.set()).start()
    try:
        client = dial(*server.address, identity="worker-7", role=Role.WORKER, timeout=5)
        wait_until(lambda: seen.endpoints, what="on_connect")
        assert seen.endpoints[0].peer.identity == "worker-7"
        assert seen.endpoints[0].peer.role is Role.WORKER
        client.close()
        assert gone.wait(5)
    finally:
        server.stop(timeout=2)
