"""Malformed frames against a real ``titanctl master`` process, over raw sockets.

What the master does with each (docs/architecture.md, "Bad input on a connection"): before the
handshake, bytes that are not a frame (garbage, wrong magic, an oversize or "negative" length,
a payload that does not decode, an unknown type id) close the connection with nothing sent back;
another protocol version and a first message that is not a Hello get a HandshakeRejected that
says why, then the close; a connection that stops halfway is closed at once when the peer
closes, and after the handshake timeout when it merely goes quiet. After the handshake, a frame
whose header is bad closes the connection; a well-framed request the master cannot take (unknown
type id, undecodable payload, not allowed for the role) gets an error reply naming the problem
and the connection goes on. Meanwhile a normal client is served, and once the abuse is over the
master holds no more fds, threads or memory than before it.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest

from support import wait_until
from support.master_process import (
    MasterProcess,
    NormalClient,
    handshaken,
    raw,
    read_until_closed,
)
from titan_actors.errors import (
    DecodeError,
    PermissionDeniedError,
    UnknownMessageTypeError,
)
from titan_actors.wire import codec
from titan_actors.wire.frame import HEADER, MAGIC, PROTOCOL_VERSION, Flag, FrameReader, pack_frame
from titan_actors.wire.messages.control import Ping, Pong
from titan_actors.wire.messages.handshake import HandshakeRejected, Hello
from titan_actors.wire.messages.worker import Heartbeat
from titan_actors.wire.remote_errors import reply_value
from titan_actors.wire.roles import Role

MAX_FRAME = 1 << 20
HANDSHAKE_TIMEOUT = 2.0
PROMPT = 1.5  # a refusal that needs no timeout comes well within this


def hello_frame(nonce: bytes | None = None, version: int = PROTOCOL_VERSION) -> bytes:
    hello = Hello(Role.CLIENT, "hostile", os.urandom(32) if nonce is None else nonce, b"", "1")
    type_id, payload = codec.encode_any(hello)
    return pack_frame(type_id, payload, version=version)


def header(type_id: int, length: int, *, magic: bytes = MAGIC, version: int = PROTOCOL_VERSION,
           flags: int = 0, request_id: int = 0) -> bytes:
    return HEADER.pack(magic, version, flags, type_id, request_id, length)


HELLO_ID = codec.encode_any(Hello(Role.CLIENT, "", b"", b"", ""))[0]
PING_ID, PING_PAYLOAD = codec.encode_any(Ping(b"early"))
NOT_A_TYPE = 59999
# (name, bytes sent, half-close after sending, what the master sends back before closing)
BEFORE_HANDSHAKE = [
    ("http request", b"GET / HTTP/1.1\r\nHost: titan\r\n\r\n", False, None),
    ("random bytes", bytes(range(256)) * 4, False, None),
    ("wrong magic", header(HELLO_ID, 10, magic=b"XY") + bytes(10), False, None),
    ("oversize length", header(HELLO_ID, MAX_FRAME + 1), False, None),
    ("negative length", header(HELLO_ID, 0x8000_0000), False, None),
    ("length 2**32-1", header(HELLO_ID, 0xFFFF_FFFF), False, None),
    ("undefined flag bits", header(HELLO_ID, 0, flags=0x80), False, None),
    ("truncated header", hello_frame()[:9], True, None),
    ("truncated body", hello_frame()[:-5], True, None),
    ("undecodable payload", header(HELLO_ID, 7) + b"\xff" * 7, False, None),
    ("hello with an unknown role", header(HELLO_ID, 1) + b"\x63", False, None),
    ("unknown type id", header(NOT_A_TYPE, 3) + b"abc", False, None),
    ("wrong version", hello_frame(version=PROTOCOL_VERSION + 1), False,
     "protocol version 2"),
    ("a request before the hello", pack_frame(PING_ID, PING_PAYLOAD, request_id=1), False,
     "expected Hello, got Ping"),
    ("a short nonce", hello_frame(nonce=b"short"), False, "nonce must be 32 bytes"),
]


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    made = MasterProcess(tmp_path_factory.mktemp("hostile-frames"),
                         {"TITAN_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
                          "TITAN_MAX_FRAME_SIZE": str(MAX_FRAME)})
    yield made
    made.stop()
    log = made.log()
    assert "Traceback" not in log and "failed with" not in log, log[-5000:]


def refusal_reason(sent_back: bytes) -> str | None:
    """The reason of the HandshakeRejected the master sent back (None when it sent nothing)."""
    if not sent_back:
        return None
    frames = FrameReader().feed(sent_back)
    assert len(frames) == 1, f"expected one frame back, got {sent_back!r}"
    message = codec.decode_frame_message(frames[0])
    assert isinstance(message, HandshakeRejected), message
    return message.reason


def attack_before_handshake(master: MasterProcess, data: bytes, half_close: bool) -> bytes:
    with raw(master.address) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed before it all went: fine, it is refused
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        sent_back, took = read_until_closed(sock, HANDSHAKE_TIMEOUT + 5)
    assert took < PROMPT, f"the refusal took {took:.2f} s"
    return sent_back


@pytest.mark.parametrize("name, data, half_close, reason", BEFORE_HANDSHAKE,
                         ids=[case[0] for case in BEFORE_HANDSHAKE])
def test_bad_bytes_before_the_handshake_are_refused_promptly(master, name, data, half_close,
                                                             reason):
    sent_back = attack_before_handshake(master, data, half_close)
    got = refusal_reason(sent_back)
    if reason is None:
        assert got is None, f"{name}: the master answered {got!r}"
    else:
        assert got is not None and reason in got, f"{name}: refused with {got!r}"


def test_a_connection_that_goes_quiet_mid_frame_is_closed_at_the_handshake_timeout(master):
    with raw(master.address) as sock:
        sock.sendall(hello_frame()[:20])
        sent_back, took = read_until_closed(sock, HANDSHAKE_TIMEOUT + 5)
    assert sent_back == b""
    assert HANDSHAKE_TIMEOUT - 0.5 < took < HANDSHAKE_TIMEOUT + 2, took


def ask_raw(connection, type_id: int, payload: bytes, request_id: int):
    """Send one request frame as is and return the value of its reply (or raise its error)."""
    connection.send_raw(type_id, payload, request_id=request_id)
    while True:
        frame = connection.recv()
        if frame.flags & Flag.REPLY and frame.request_id == request_id:
            return reply_value(frame)


def still_served(connection, request_id: int = 99) -> None:
    pong = ask_raw(connection, PING_ID, codec.encode(Ping(b"still")), request_id)
    assert isinstance(pong, Pong) and pong.payload == b"still"


def test_well_framed_requests_the_master_cannot_take_get_an_error_and_the_link_goes_on(master):
    connection = handshaken(master.address)
    try:
        with pytest.raises(UnknownMessageTypeError, match=str(NOT_A_TYPE)):
            ask_raw(connection, NOT_A_TYPE, b"abc", 1)
        with pytest.raises(DecodeError, match="Ping"):
            ask_raw(connection, PING_ID, struct.pack("!I", 1000) + b"short", 2)
        type_id, payload = codec.encode_any(Heartbeat((), False))
        with pytest.raises(PermissionDeniedError, match="client may not send Heartbeat"):
            ask_raw(connection, type_id, payload, 3)
        connection.send_raw(NOT_A_TYPE, b"a tell of nothing")  # logged and dropped
        connection.send_raw(PING_ID, b"", flags=Flag.REPLY, request_id=12345)  # nobody asked
        with pytest.raises(PermissionDeniedError, match="Hello is not a request"):
            ask_raw(connection, *codec.encode_any(Hello(Role.ADMIN, "x", bytes(32), b"", "")),
                    request_id=4)
        still_served(connection)
    finally:
        connection.close()
    assert "hostile" in master.log()


AFTER_HANDSHAKE = [
    ("wrong magic", header(PING_ID, 0, magic=b"HT")),
    ("other version", header(PING_ID, 0, version=9)),
    ("oversize length", header(PING_ID, MAX_FRAME + 1, request_id=5)),
    ("negative length", header(PING_ID, 0x8000_0000, request_id=5)),
    ("truncated body then close", header(PING_ID, 100, request_id=5) + bytes(50)),
    ("truncated header then close", header(PING_ID, 0, request_id=5)[:7]),
]


@pytest.mark.parametrize("name, data", AFTER_HANDSHAKE, ids=[c[0] for c in AFTER_HANDSHAKE])
def test_a_bad_header_after_the_handshake_closes_that_connection(master, name, data):
    connection = handshaken(master.address)
    sock = connection._transport
    try:
        still_served(connection)
        sock.sendall(data)
        if "then close" in name:
            sock.shutdown(socket.SHUT_WR)
        sent_back, took = read_until_closed(sock, 10)
    finally:
        connection.close()
    assert sent_back == b"" and took < PROMPT, (sent_back, took)


def test_abuse_leaves_other_clients_served_and_nothing_leaked(master):
    for _ in range(3):  # warm up: the first connections allocate what the master keeps
        attack_before_handshake(master, BEFORE_HANDSHAKE[0][1], False)
    baseline = master.usage()
    with NormalClient(master) as normal:
        normal.wait_pings(5)
        for round_ in range(10):
            for _name, data, half_close, _reason in BEFORE_HANDSHAKE:
                attack_before_handshake(master, data, half_close)
            for name, data in AFTER_HANDSHAKE:
                connection = handshaken(master.address, identity=f"abuser-{round_}")
                sock = connection._transport
                sock.sendall(data)
                if "then close" in name:
                    sock.shutdown(socket.SHUT_WR)
                read_until_closed(sock, 10)
                connection.close()
            normal.wait_pings(1)
    assert normal.worst < 1.0, f"a normal ping took {normal.worst:.2f} s during the abuse"
    wait_until(lambda: master.usage().fds <= baseline.fds, timeout=10,
               what=f"the master's fds back to {baseline.fds} (now {master.usage().fds})")
    after = master.usage()
    print(f"\nmaster before the abuse: {baseline}; after {len(BEFORE_HANDSHAKE) * 10} refused "
          f"and {len(AFTER_HANDSHAKE) * 10} broken connections: {after}; normal client: "
          f"{normal.pings} pings, {normal.submits} submits, worst {normal.worst * 1000:.0f} ms")
    assert after.threads <= baseline.threads + 2, (baseline, after)
    assert after.rss - baseline.rss < 20 * 2**20, (baseline, after)
