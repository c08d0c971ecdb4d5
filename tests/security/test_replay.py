"""Replayed handshakes and frames are refused by a real master, and nothing they carry is done.

A recording proxy (threads and plain sockets, in the test process) sits between a real client
and a ``titanctl master --key-file``; it keeps every byte the client sent. Replayed byte for byte
on a new connection, a session fails at its Proof (the master's nonce is new each time) and
the request frames behind it are never read. With sealed frames (``--seal-frames always``, what
``auto`` does off loopback), a frame sent twice on its own connection, or carried into another
session, fails its MAC and closes that connection. (Unsealed frames, on loopback, are as safe as
the TCP stream: injecting into it takes the host's root.) Each case submits a run: the count of
runs of that name, and the master's AOF, show what took effect.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from support.secure_master import KeyedMaster
from titan_actors.client import MasterClient
from titan_actors.errors import BrokenError, ClosedError, TitanError
from titan_actors.scheduler.model import JobKind, JobSpec, RunSpec
from titan_actors.wire.connection import Connection
from titan_actors.wire.frame import HEADER, HEADER_SIZE, FrameReader
from titan_actors.wire.messages.handshake import Challenge, HandshakeRejected
from titan_actors.wire.messages.master import SubmitRun
from titan_actors.wire.roles import Role

SUBMIT = SubmitRun.TYPE_ID


class RecordingProxy:
    """Forwards each connection to ``target`` and records what the client sent on it;
    ``duplicate`` (a type id): the first frame of that type is forwarded twice."""

    def __init__(self, target: tuple[str, int], duplicate: int | None = None) -> None:
        self.target, self.duplicate = target, duplicate
        self.sent: list[bytearray] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target, timeout=10)
            self._sockets += [client, server]
            record = bytearray()
            self.sent.append(record)
            self._start(self._upstream, client, server, record)
            self._start(self._pump, server, client)

    def _upstream(self, source: socket.socket, sink: socket.socket, record: bytearray) -> None:
        buffer, doubled = bytearray(), False
        try:
            while data := source.recv(65536):
                record += data
                buffer += data
                while len(buffer) >= HEADER_SIZE:  # forward whole frames, one may go twice
                    _, _, _, type_id, _, length = HEADER.unpack_from(buffer)
                    if len(buffer) < HEADER_SIZE + length:
                        break
                    frame = bytes(buffer[:HEADER_SIZE + length])
                    del buffer[:HEADER_SIZE + length]
                    again = type_id == self.duplicate and not doubled
                    doubled = doubled or again
                    sink.sendall(frame + frame if again else frame)
        except OSError:
            pass
        finally:
            _shut(sink)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _shut(sink)

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux)
        except OSError:
            pass
        self._listener.close()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
        assert not [t for t in self._threads if t.is_alive()], "proxy threads left running"


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture(scope="module")
def masters(tmp_path_factory):
    """A master sealing frames as on loopback (``auto``: not sealed) and one sealing always
    (as ``auto`` does off loopback)."""
    made = {mode: KeyedMaster(tmp_path_factory.mktemp(f"replay-{mode}"), "--seal-frames", mode)
            for mode in ("auto", "always")}
    try:
        for master in made.values():
            master.start()
        yield made
    finally:
        for master in made.values():
            master.stop()


@pytest.fixture
def proxy_to():
    made: list[RecordingProxy] = []

    def make(master: KeyedMaster, duplicate: int | None = None) -> RecordingProxy:
        made.append(RecordingProxy((master.host, master.port), duplicate))
        return made[-1]
    yield make
    for proxy in made:
        proxy.close()


def _gate_run(name: str) -> RunSpec:
    """A run that needs no worker and stays (a gate waiting for a decision)."""
    return RunSpec(name, (JobSpec("g", kind=JobKind.GATE, max_wait_seconds=600),))


def _runs_named(master: KeyedMaster, name: str) -> int:
    with master.client(Role.ADMIN, "auditor") as admin:
        return sum(run.name == name for run in admin.runs(1000))


def _aof(master: KeyedMaster) -> Path:
    return master.data / "master" / "master.aof"


def _replay(master: KeyedMaster, recorded: bytes) -> list[object]:
    """Send ``recorded`` on a new connection; return every message the master answered with,
    until it closed the connection."""
    sock = socket.create_connection((master.host, master.port), timeout=10)
    sock.sendall(recorded)
    connection, answers = Connection(sock), []
    try:
        while True:
            answers.append(connection.recv_message()[0])
    except (BrokenError, ClosedError):
        return answers
    finally:
        connection.close()


@pytest.mark.parametrize("mode", ["auto", "always"])
def test_a_recorded_session_replayed_on_a_new_connection_is_refused(masters, mode, proxy_to):
    master, name = masters[mode], f"replayed-{mode}"
    proxy = proxy_to(master)
    with MasterClient("127.0.0.1", proxy.port, keys=master.keyring(Role.CLIENT),
                      identity="recorded", timeout=10) as client:
        client.submit(_gate_run(name))
        client.store_put("recorded", "once")
    recorded = bytes(proxy.sent[0])
    assert recorded.count(b"recorded") >= 2  # the Hello's identity and the key were sent
    before = _aof(master).read_bytes()

    for _ in range(2):
        answers = _replay(master, recorded)
        assert [type(a) for a in answers] == [Challenge, HandshakeRejected], answers
        assert "failed to prove its key" in answers[1].reason

    assert _runs_named(master, name) == 1
    assert _aof(master).read_bytes() == before  # nothing of the replay was recorded


def test_a_sealed_frame_sent_twice_closes_its_connection_and_is_done_once(masters, proxy_to):
    master, name = masters["always"], "sent-twice"
    proxy = proxy_to(master, duplicate=SUBMIT)
    client = MasterClient("127.0.0.1", proxy.port, keys=master.keyring(Role.CLIENT),
                          identity="doubled", timeout=10)
    try:
        client.submit(_gate_run(name))  # the reply may or may not beat the close
        client.ping()
        raise AssertionError("the connection survived a replayed frame")
    except TitanError:
        pass
    finally:
        client.close()
    assert _runs_named(master, name) == 1
    assert "failed its MAC check" in master.log()


def test_a_sealed_frame_carried_into_another_session_is_refused(masters, proxy_to):
    master, name = masters["always"], "carried"
    proxy = proxy_to(master)
    with MasterClient("127.0.0.1", proxy.port, keys=master.keyring(Role.CLIENT),
                      identity="first", timeout=10) as client:
        client.submit(_gate_run(name))
    captured = next(frame for frame in _frames(bytes(proxy.sent[0]))
                    if HEADER.unpack_from(frame)[3] == SUBMIT)

    second = MasterClient(master.host, master.port, keys=master.keyring(Role.CLIENT),
                          identity="second", timeout=10)
    try:
        second._conn._sock.sendall(captured)  # into the live, sealed second session
        with pytest.raises(TitanError):
            second.ping()
    finally:
        second.close()
    assert _runs_named(master, name) == 1


def _frames(stream: bytes) -> list[bytes]:
    """The raw frames of ``stream`` (header and payload, as sent)."""
    reader, out, pos = FrameReader(), [], 0
    for frame in reader.feed(stream):
        size = HEADER_SIZE + len(frame.payload)
        out.append(stream[pos:pos + size])
        pos += size
    return out
