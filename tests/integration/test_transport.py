"""Connection conformance: the in-memory pair and real sockets behave the same; and TLS."""

from __future__ import annotations

import os
import subprocess

import gevent
import pytest
from gevent import socket

from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.config import SealFrames
from titan_actors.errors import BrokenError, ClosedError, ConnectTimeoutError, FrameTooLargeError
from titan_actors.wire import codec
from titan_actors.wire.auth import KeyRing
from titan_actors.wire.bridge import make_send_lock
from titan_actors.wire.connection import Connection
from titan_actors.wire.memory import memory_pair
from titan_actors.wire.messages.control import Ping, Pong
from titan_actors.wire.server import ActorServer, dial, should_seal
from titan_actors.wire.tls import client_context, server_context


def _socket_pair():
    return socket.socketpair()


@pytest.fixture(params=["memory", "socket"])
def pair(request):
    left, right = memory_pair() if request.param == "memory" else _socket_pair()
    a = Connection(left, send_lock=make_send_lock(), max_payload=64 * 1024)
    b = Connection(right, send_lock=make_send_lock(), max_payload=64 * 1024)
    yield a, b
    a.close()
    b.close()


def test_messages_arrive_whole_and_in_order(pair):
    a, b = pair
    texts = ["", "x" * 40_000, "a|b;c\n\x00", "✓" * 1000] * 5
    sender = gevent.spawn(lambda: [a.send(Ping(t.encode()), request_id=n)
                                   for n, t in enumerate(texts)])
    got = [b.recv_message() for _ in texts]
    sender.get(timeout=5)
    assert [msg.payload.decode() for msg, _ in got] == texts
    assert [frame.request_id for _, frame in got] == list(range(len(texts)))


def test_batches_and_empty_replies(pair):
    a, b = pair
    a.send_batch([(*codec.encode_any(Ping(b"1")), 0, 1), (0, b"", 0, 2)])
    first, frame1 = b.recv_message()
    empty, frame2 = b.recv_message()
    assert first == Ping(b"1") and empty is None and frame2.request_id == 2


def test_peer_close_is_broken_and_own_close_is_closed(pair):
    a, b = pair
    a.close()
    with pytest.raises(BrokenError, match="closed the connection"):
        b.recv()
    with pytest.raises(ClosedError, match="closed by this side"):
        a.send(Ping(b""))


def test_an_oversized_frame_is_refused_from_its_header(pair):
    a, b = pair
    gevent.spawn(a.send_raw, Ping.TYPE_ID, b"\x00" * (70 * 1024))
    with pytest.raises(FrameTooLargeError):
        b.recv()


def test_memory_pair_pushes_back_on_a_full_buffer():
    left, right = memory_pair(capacity=1024)
    writer = gevent.spawn(left.sendall, b"x" * 4096)
    gevent.idle()
    assert not writer.ready()  # waiting for the reader: backpressure
    received = b""
    while len(received) < 4096:
        received += right.recv(65536)
    writer.get(timeout=5)


class _Pinger(Actor):
    @handles(Ping)
    def _ping(self, msg):
        return Pong(msg.payload, "tls-server", "test")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_connection_with_a_key(certificate):
    cert, key = certificate
    server_ctx = server_context(cert, key)
    client_ctx = client_context(cert)
    keys = KeyRing(os.urandom(32))
    system = ActorSystem()
    server = ActorServer(system.spawn(_Pinger), keys=keys, tls=server_ctx).start()
    try:
        client = dial(*server.address, keys=keys, tls=client_ctx, timeout=5)
        assert client.remote.ask(Ping(b"secret"), timeout=5).payload == b"secret"
        assert not client.connection.sealed  # TLS already protects the frames
        client.close()
        with pytest.raises((BrokenError, ConnectTimeoutError)):
            dial(*server.address, keys=keys, timeout=2)  # plain TCP to a TLS port
    finally:
        server.stop(timeout=2)
        system.stop_all(timeout=2)


def test_sealing_policy():
    assert should_seal(SealFrames.AUTO, "10.0.0.5", over_tls=False, has_key=True)
    assert not should_seal(SealFrames.AUTO, "10.0.0.5", over_tls=True, has_key=True)
    assert not should_seal(SealFrames.AUTO, "127.0.0.1", over_tls=False, has_key=True)
    assert should_seal(SealFrames.ALWAYS, "127.0.0.1", over_tls=True, has_key=True)
    assert not should_seal(SealFrames.ALWAYS, "10.0.0.5", over_tls=False, has_key=False)


def test_non_loopback_bind_without_a_key_is_refused():
    from titan_actors.errors import ConfigError
    with pytest.raises(ConfigError, match="key"):
        ActorServer(None, host="0.0.0.0")


def test_idle_connections_cannot_hold_a_tls_server(certificate):
    cert, key = certificate
    system = ActorSystem()
    server = ActorServer(system.spawn(_Pinger), tls=server_context(cert, key),
                         max_connections=2, handshake_timeout=0.2).start()
    idle = [socket.create_connection(server.address) for _ in range(2)]  # never speak TLS
    try:
        client = dial(*server.address, tls=client_context(cert), timeout=5)
        assert client.remote.ask(Ping(b"in"), timeout=5).payload == b"in"
        client.close()
    finally:
        for sock in idle:
            sock.close()
        server.stop(timeout=2)
        system.stop_all(timeout=2)


def test_a_server_refuses_a_role_key(tmp_path):
    from titan_actors.errors import ConfigError
    from titan_actors.wire.auth import role_key
    from titan_actors.wire.roles import Role
    worker_only = KeyRing(role=Role.WORKER, role_secret=role_key(os.urandom(32), Role.WORKER))
    with pytest.raises(ConfigError, match="cluster key"):
        ActorServer(None, keys=worker_only)
