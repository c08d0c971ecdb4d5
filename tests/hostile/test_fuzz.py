"""Fuzzing the frame reader, every message decoder and the server side of the handshake.

Whatever bytes arrive, the only errors are the project's named protocol errors: ProtocolError
(bad frames and payloads), AuthError (a refused handshake, a frame failing its seal) and
ConnectionError_ (the stream ended). Never IndexError, struct.error, UnicodeDecodeError,
MemoryError, RecursionError... Each test runs a few examples per case by default; its
``slow``-marked twin (``make test-long``) runs many more. Inputs that once crashed are kept as
``@example``s, and the files under ``corpus/`` are replayed by every run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from unit.wire.strategies import messages

import titan_actors.wire.messages  # noqa: F401  (registers every message type)
from titan_actors.errors import AuthError, ConnectionError_, HandshakeError, ProtocolError
from titan_actors.wire import codec
from titan_actors.wire.auth import JobToken, KeyRing, ServerHandshake
from titan_actors.wire.connection import Connection
from titan_actors.wire.frame import HEADER, MAGIC, PROTOCOL_VERSION, FrameReader, pack_frame
from titan_actors.wire.greeting import server_handshake
from titan_actors.wire.messages.handshake import Hello, JobTokenClaims, Proof
from titan_actors.wire.registry import registered
from titan_actors.wire.roles import Role

NAMED = (ProtocolError, AuthError, ConnectionError_)
TYPES = sorted(registered().items())
CORPUS = Path(__file__).parent / "corpus"


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def fuzz_tests(body, default: int, slow: int, regressions=(), **strategies):
    """Two tests of ``body`` given ``strategies``: ``default`` examples, and ``slow`` examples
    marked slow. ``regressions``: keyword dicts of inputs every run tries first."""
    def build(examples: int):
        test = given(**strategies)(body)
        for inputs in regressions:
            test = example(**inputs)(test)
        return fuzz(examples)(test)
    return build(default), pytest.mark.slow(build(slow))


# -- one message type at a time --------------------------------------------------------------

def decode_only_named_errors(cls: type, data: bytes) -> None:
    try:
        message = codec.decode(cls, data)
    except ProtocolError:
        return
    assert type(message) is cls
    codec.encode(message)  # what decoded encodes again


PER_TYPE = pytest.mark.parametrize("type_id, cls", TYPES, ids=[c.__name__ for _, c in TYPES])


def random_bytes(type_id, cls, data):
    decode_only_named_errors(cls, data)


test_random_bytes_decode_to_a_message_or_a_protocol_error, test_random_bytes_many = (
    PER_TYPE(test) for test in fuzz_tests(random_bytes, 8, 400, data=st.binary(max_size=300)))


@st.composite
def mutated(draw, cls: type) -> bytes:
    """A valid payload of ``cls``, then cut, extended, or with bytes overwritten."""
    payload = bytearray(codec.encode(draw(messages(cls))))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["cut", "flip", "insert", "big count"]))
        at = draw(st.integers(0, len(payload)))
        if how == "cut":
            del payload[at:]
        elif how == "flip" and payload:
            payload[min(at, len(payload) - 1)] = draw(st.integers(0, 255))
        elif how == "insert":
            payload[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:  # a length or count prefix claiming far more than there is
            payload[at:at] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                                                   b"\x00\x10\x00\x01", b"\x80\x00\x00\x00"]))
    return bytes(payload)


def mutated_payloads(type_id, cls, data):
    decode_only_named_errors(cls, data.draw(mutated(cls)))


test_mutated_payloads_decode_to_a_message_or_a_protocol_error, test_mutated_payloads_many = (
    PER_TYPE(test) for test in fuzz_tests(mutated_payloads, 8, 400, data=st.data()))


# -- frames ----------------------------------------------------------------------------------

@st.composite
def frame_streams(draw) -> bytes:
    """Frames of real messages, some with a header field made wrong, run together."""
    out = bytearray()
    for _ in range(draw(st.integers(1, 4))):
        type_id, cls = draw(st.sampled_from(TYPES))
        payload = codec.encode(draw(messages(cls)))
        fields = [MAGIC, PROTOCOL_VERSION, draw(st.sampled_from([0, 1, 2, 3])), type_id,
                  draw(st.integers(0, 2**32 - 1)), len(payload)]
        wrong = draw(st.sampled_from([None, None, 0, 1, 2, 3, 5]))
        if wrong is not None:
            fields[wrong] = draw(
                {0: st.binary(min_size=2, max_size=2), 1: st.integers(0, 255),
                 2: st.integers(0, 255), 3: st.integers(0, 65535),
                 5: st.integers(0, 2**32 - 1)}[wrong])
        out += HEADER.pack(*fields) + payload
    return bytes(out) + draw(st.binary(max_size=20))


def read_stream(data: bytes, chunk: int, max_payload: int = 4096) -> None:
    reader = FrameReader(max_payload)
    try:
        for at in range(0, len(data), chunk):
            for frame in reader.feed(data[at:at + chunk]):
                try:
                    codec.decode_frame_message(frame)
                except ProtocolError:
                    pass
    except ProtocolError:
        pass


def frame_stream(data, chunk):
    read_stream(data, chunk)


test_frame_streams_yield_frames_or_protocol_errors, test_frame_streams_many = fuzz_tests(
    frame_stream, 150, 5000, data=frame_streams(), chunk=st.integers(1, 64))


def test_the_corpus_reads_to_frames_or_protocol_errors():
    files = sorted(CORPUS.glob("*.bin"))
    assert files, f"no corpus files in {CORPUS}"
    for path in files:
        data = path.read_bytes()
        for chunk in (1, 7, 64, len(data) or 1):
            read_stream(data, chunk)
        for _, cls in TYPES:
            decode_only_named_errors(cls, data)
        handshake_only_named_errors(data, keyed=False)
        handshake_only_named_errors(data, keyed=True)


# -- the server side of the handshake --------------------------------------------------------

class ScriptedTransport:
    """A socket-like end that yields ``data`` in ``chunk``-byte reads, then end of stream, and
    keeps what the server sends."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self._reads = [data[at:at + chunk] for at in range(0, len(data), chunk)]
        self.sent = bytearray()

    def recv(self, size: int) -> bytes:
        return self._reads.pop(0)[:size] if self._reads else b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def getpeername(self) -> tuple[str, int]:
        return ("127.0.0.1", 4242)

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


KEYS = KeyRing(bytes(range(32)))


def handshake_only_named_errors(data: bytes, *, keyed: bool, chunk: int = 4096) -> None:
    transport = ScriptedTransport(data, chunk)
    connection = Connection(transport)
    handshake = ServerHandshake("fuzzed", KEYS if keyed else None, "127.0.0.1:4242",
                                seal=keyed, token_valid=lambda claims: True)
    try:
        server_handshake(connection, handshake)
    except NAMED:
        pass
    # what the server said back is a well-formed Challenge, Welcome or HandshakeRejected
    for frame in FrameReader().feed(bytes(transport.sent)):
        assert frame.type_id in (2, 4, 5), frame
        codec.decode_frame_message(frame)


def hello_bytes(hello: Hello) -> bytes:
    return pack_frame(*codec.encode_any(hello))


@st.composite
def handshake_inputs(draw) -> bytes:
    """What a client might open with: noise, a Hello with any fields (a job's token made of
    noise or of any claims), a Hello then noise or any Proof."""
    kind = draw(st.sampled_from(["noise", "hello", "hello+noise", "hello+proof", "frames"]))
    if kind == "noise":
        return draw(st.binary(max_size=200))
    if kind == "frames":
        return draw(frame_streams())
    hello = draw(messages(Hello))
    if hello.role is Role.JOB and draw(st.booleans()):
        claims = draw(messages(JobTokenClaims))
        hello = Hello(hello.role, hello.identity, os.urandom(32), codec.encode(claims), "1")
    out = hello_bytes(hello)
    if kind == "hello+noise":
        out += draw(st.binary(max_size=100))
    elif kind == "hello+proof":
        out += pack_frame(*codec.encode_any(draw(messages(Proof))))
    return out


def handshake(data, keyed, chunk):
    handshake_only_named_errors(data, keyed=keyed, chunk=chunk)


HANDSHAKE_REGRESSIONS = [
    # a job's Hello whose token is noise, on a keyed server
    {"data": hello_bytes(Hello(Role.JOB, "j", bytes(32), b"\xff" * 40, "1"))
     + pack_frame(*codec.encode_any(Proof(b""))), "keyed": True, "chunk": 1},
    # a Hello, then a header cut after its version byte
    {"data": hello_bytes(Hello(Role.CLIENT, "c", bytes(32), b"", "1")) + b"TA\x01",
     "keyed": False, "chunk": 3},
]

test_the_server_handshake_ends_only_in_a_session_or_a_named_error, test_handshake_many = (
    fuzz_tests(handshake, 150, 5000, HANDSHAKE_REGRESSIONS,
               data=handshake_inputs(), keyed=st.booleans(), chunk=st.integers(1, 300)))


def parse_token(token: str) -> None:
    try:
        JobToken.parse(token)
    except HandshakeError:
        pass


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
TOKEN_REGRESSIONS = [{"token": "tjt1.\u00e9\u00e9.aa"}, {"token": "tjt1.."},
                     {"token": "tjt1.AAAA.AAAA"}]
test_a_job_token_parses_or_is_refused_with_a_handshake_error, test_job_tokens_many = fuzz_tests(
    parse_token, 100, 3000, TOKEN_REGRESSIONS,
    token=st.text(max_size=80) | st.builds(lambda public, secret: f"tjt1.{public}.{secret}",
                                           st.text(alphabet=_B64, max_size=60),
                                           st.text(max_size=20)))
