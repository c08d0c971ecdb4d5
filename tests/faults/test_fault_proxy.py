"""The fault proxy itself (``support/fault_proxy.py``), against echo servers: a raw byte echo for
each mode, and the actor echo server process (``support/echo_server.py``) for a whole protocol
exchange through it."""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support.fault_proxy import Direction, FaultProxy
from support.processes import stop_and_check, wait_for_file
from titan_actors.errors import TitanError
from titan_actors.wire.blocking import BlockingClient
from titan_actors.wire.messages.control import Ping, Pong

ECHO_SERVER = str(Path(__file__).resolve().parents[1] / "support" / "echo_server.py")
QUIET = 0.3  # how long "nothing arrives" is watched for


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(4096):
                self.server.received += len(data)
                self.request.sendall(data)
        except ConnectionResetError:  # the proxy resets connections on purpose
            pass


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.received = 0
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    made = FaultProxy(server.server_address).start()
    made.echo = server
    yield made
    made.stop()
    server.shutdown()
    server.server_close()


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.settimeout(5)
    return sock


def nothing_arrives(sock: socket.socket) -> bool:
    sock.settimeout(QUIET)
    try:
        sock.recv(100)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_pass_and_delay(proxy):
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert sock.recv(100) == b"hello"
        proxy.delay(150)
        started = time.monotonic()
        sock.sendall(b"slow")
        assert sock.recv(100) == b"slow"
        assert time.monotonic() - started >= 0.3  # 150 ms each way
    assert proxy.stats().forwarded_up == 9


def test_a_one_way_drop_loses_that_direction_and_the_heal_resets(proxy):
    with connect(proxy) as sock:
        proxy.drop(Direction.DOWN)
        sock.sendall(b"lost")
        proxy.wait_stats(lambda s: s.discarded == 4, what="the echo to be dropped")
        assert proxy.echo.received == 4 and nothing_arrives(sock)
        proxy.drop(Direction.UP)
        sock.sendall(b"gone")
        assert nothing_arrives(sock) and proxy.echo.received == 4
        proxy.heal()  # the stream has holes: both sides are reset
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    with connect(proxy) as sock:  # new connections pass again
        sock.sendall(b"again")
        assert sock.recv(100) == b"again"


def test_blackhole_holds_new_connections_until_the_heal(proxy):
    proxy.blackhole()
    with connect(proxy) as sock:
        sock.sendall(b"held")
        assert nothing_arrives(sock)
        assert proxy.stats().dialled == 0
        proxy.heal()  # nothing was read: it arrives intact
        assert sock.recv(100) == b"held"


def test_half_open_keeps_the_bytes_and_delivers_them_at_the_heal(proxy):
    with connect(proxy) as sock:
        sock.sendall(b"a")
        assert sock.recv(10) == b"a"
        proxy.half_open()
        sock.sendall(b"bc")
        assert nothing_arrives(sock)
        assert proxy.stats().discarded == 0
        proxy.heal()
        assert sock.recv(10) == b"bc"


def test_reset_after_n_bytes(proxy):
    with connect(proxy) as sock:
        proxy.reset_after(6)
        sock.sendall(b"abcd")  # 4 up, then 2 of the echo down, then RST
        with pytest.raises(ConnectionResetError):
            while sock.recv(10):
                pass
    stats = proxy.wait_stats(lambda s: s.resets == 1)
    assert stats.forwarded_up + stats.forwarded_down == 6


def test_a_protocol_exchange_through_the_proxy(tmp_path):
    ready = tmp_path / "ready"
    server = subprocess.Popen([sys.executable, ECHO_SERVER, str(ready)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(wait_for_file(ready, server))
        with FaultProxy(("127.0.0.1", port)) as proxy:
            client = BlockingClient("127.0.0.1", proxy.port, timeout=5)
            assert isinstance(client.ask(Ping(b"x")), Pong)
            proxy.reset_after(0)  # resets the open connection at once
            with pytest.raises(TitanError):
                client.ask(Ping(b"y"), timeout=2)
            client.close()
            proxy.heal()
            again = BlockingClient("127.0.0.1", proxy.port, timeout=5)
            assert again.ask(Ping(b"z")).payload == b"z"
            again.close()
    finally:
        stop_and_check(server)
