"""Layers 2 and 3: frames written at once, without the writer greenlet, when it is idle.

A frame due while the endpoint's writer is idle and nothing is queued is written straight away
with a write that never waits; what the transport does not take goes to the writer ahead of any
later frame. These tests make that write take little or nothing, or overflow real socket
buffers, and check that every frame still arrives whole, in order, and (sealed) in counter order.
"""

from __future__ import annotations

import os

import gevent
import pytest
from gevent import socket

from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.config import SealFrames
from titan_actors.wire.auth import ClientHandshake, KeyRing, ServerHandshake
from titan_actors.wire.bridge import Endpoint, make_send_lock
from titan_actors.wire.connection import Connection
from titan_actors.wire.greeting import client_handshake, server_handshake
from titan_actors.wire.memory import memory_pair
from titan_actors.wire.registry import Message, message
from titan_actors.wire.roles import Capability, Role
from titan_actors.wire.server import ActorServer, dial


@message(64201, requires=Capability.QUERY)
class Shout(Message):
    text: str


@message(64202, requires=Capability.QUERY)
class Mark(Message):
    n: int


@message(64203, requires=Capability.QUERY)
class Marks(Message):
    seen: tuple[int, ...] = ()


class Recorder(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.marks: list[int] = []

    @handles(Shout)
    def _shout(self, msg: Shout) -> Shout:
        return Shout(msg.text.upper())

    @handles(Mark)
    def _mark(self, msg: Mark) -> None:
        self.marks.append(msg.n)

    @handles(Marks)
    def _marks(self, msg: Marks) -> Marks:
        return Marks(tuple(self.marks))


@pytest.fixture
def system():
    system = ActorSystem()
    yield system
    system.stop_all(timeout=5)


class _Stingy:
    """A ``send_nowait`` that takes nothing every other call and at most a few bytes else."""

    def __init__(self, transport, most: int) -> None:
        self.transport, self.most, self.calls = transport, most, 0

    def __call__(self, data) -> int:
        self.calls += 1
        if self.calls % 2:
            raise BlockingIOError("would block")
        piece = bytes(data[:self.most])
        self.transport.sendall(piece)  # a few bytes always fit the in-memory buffer
        return len(piece)


def _stingy_link(system, seal: bool):
    keys = KeyRing(os.urandom(32)) if seal else None
    left, right = memory_pair()
    senders = (_Stingy(left, 5), _Stingy(right, 3))
    client_conn = Connection(left, send_lock=make_send_lock(), send_nowait=senders[0])
    server_conn = Connection(right, send_lock=make_send_lock(), send_nowait=senders[1])
    server_side = gevent.spawn(server_handshake, server_conn,
                               ServerHandshake("server", keys, "memory", seal=seal))
    session = client_handshake(client_conn, ClientHandshake(Role.CLIENT, "tester", keys))
    server_ep = Endpoint(server_conn, server_side.get(timeout=5),
                         local=system.spawn(Recorder), name="server").start()
    client_ep = Endpoint(client_conn, session, name="client").start()
    return client_ep, server_ep, senders


@pytest.mark.parametrize("seal", [False, True], ids=["plain", "sealed"])
def test_partly_written_frames_are_finished_first_and_order_holds(system, seal):
    client, server, senders = _stingy_link(system, seal)
    try:
        asks = []
        for n in range(300):
            client.remote.tell(Mark(n))
            if n % 7 == 0:
                asks.append((n, client.remote.ask_async(Shout(f"m{n}-" + "x" * n), timeout=10)))
            if n % 3 == 0:
                gevent.idle()  # a new loop iteration: the next frame may be written at once
        for n, reply in asks:
            assert reply.get(10) == Shout(f"M{n}-" + "X" * n)
        assert client.remote.ask(Marks(), timeout=10) == Marks(tuple(range(300)))
        assert all(sender.calls > 10 for sender in senders)  # the unwaiting path was taken
        assert client.is_open and server.is_open
    finally:
        client.close()
        server.close()


def _small_buffers(connection: Connection) -> None:
    """Shrink the kernel's buffers so that a frame of a few MB never fits in one write."""
    sock = connection._transport
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)


@pytest.mark.parametrize("seal", [False, True], ids=["plain", "sealed"])
def test_frames_larger_than_the_socket_buffers_arrive_whole(system, seal):
    keys = KeyRing(os.urandom(32)) if seal else None
    server = ActorServer(system.spawn(Recorder), keys=keys,
                         seal_frames=SealFrames.ALWAYS if seal else SealFrames.AUTO,
                         on_connect=lambda endpoint: _small_buffers(endpoint.connection)).start()
    try:
        client = dial(*server.address, keys=keys, timeout=5)
        assert client.connection.can_send_nowait
        _small_buffers(client.connection)
        big = "y" * (3 * 1024 * 1024)
        asks = [client.remote.ask_async(Shout(f"{n}{big}"), timeout=30) for n in range(6)]
        client.remote.tell(Mark(1))
        for n, reply in enumerate(asks):
            assert reply.get(30) == Shout(f"{n}{big.upper()}")
        assert client.remote.ask(Marks(), timeout=10) == Marks((1,))
        client.close()
    finally:
        server.stop(timeout=2)
