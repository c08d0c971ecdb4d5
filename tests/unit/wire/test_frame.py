"""Framing: the header layout, decode_frame, and the incremental FrameReader."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan_actors.errors import (
    BadMagicError,
    FrameTooLargeError,
    IncompleteFrameError,
    ProtocolError,
    TrailingFrameBytesError,
    UnknownFlagsError,
    VersionMismatchError,
)
from titan_actors.wire.frame import (
    DEFAULT_MAX_PAYLOAD,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    Flag,
    Frame,
    FrameReader,
    decode_frame,
    pack_frame,
)

FLAGS = st.sampled_from([Flag(0), Flag.REPLY, Flag.REPLY | Flag.ERROR, Flag.SEALED,
                         Flag.REPLY | Flag.SEALED])
FRAMES = st.builds(Frame, type_id=st.integers(0, 65535), flags=FLAGS,
                   request_id=st.integers(0, 2**32 - 1), payload=st.binary(max_size=64))


def packed(frame: Frame) -> bytes:
    return pack_frame(frame.type_id, frame.payload, flags=frame.flags,
                      request_id=frame.request_id)


def test_header_layout() -> None:
    assert (MAGIC, PROTOCOL_VERSION, HEADER_SIZE, DEFAULT_MAX_PAYLOAD) == (
        b"TA", 1, 14, 16 * 1024 * 1024)
    data = pack_frame(0x0102, b"xyz", flags=Flag.REPLY | Flag.SEALED, request_id=0x0A0B0C0D)
    assert data == b"TA" + bytes([1, 5, 1, 2, 10, 11, 12, 13, 0, 0, 0, 3]) + b"xyz"
    assert HEADER.format == "!2sBBHII"


@given(frame=FRAMES)
def test_decode_frame_round_trips(frame: Frame) -> None:
    assert decode_frame(packed(frame)) == frame


@settings(max_examples=50)
@given(frame=FRAMES)
def test_every_strict_prefix_is_incomplete_and_yields_nothing(frame: Frame) -> None:
    data = packed(frame)
    for cut in range(len(data)):
        with pytest.raises(IncompleteFrameError):
            decode_frame(data[:cut])
        reader = FrameReader()
        assert reader.feed(data[:cut]) == []
        assert reader.buffered == cut


@settings(max_examples=50)
@given(frame=FRAMES)
def test_a_frame_split_at_any_offset_yields_exactly_that_frame(frame: Frame) -> None:
    data = packed(frame)
    for cut in range(len(data) + 1):
        reader = FrameReader()
        assert reader.feed(data[:cut]) + reader.feed(data[cut:]) == [frame]
        assert reader.buffered == 0


def test_byte_by_byte_feeding_yields_each_frame_once() -> None:
    frames = [Frame(i, Flag(0), i * 7, bytes([i]) * i) for i in range(5)]
    reader = FrameReader()
    out: list[Frame] = []
    for byte in b"".join(packed(f) for f in frames):
        out += reader.feed(bytes([byte]))
    assert out == frames


@given(frames=st.lists(FRAMES, max_size=8), chunk=st.integers(1, 50))
def test_a_stream_in_any_chunks_yields_all_frames_in_order(frames: list[Frame], chunk: int
                                                          ) -> None:
    stream = b"".join(packed(f) for f in frames)
    reader = FrameReader()
    out: list[Frame] = []
    for at in range(0, len(stream), chunk):
        out += reader.feed(memoryview(stream)[at:at + chunk])
    assert out == frames and reader.buffered == 0


def test_one_feed_returns_every_complete_frame_and_keeps_the_rest() -> None:
    a, b = packed(Frame(1, Flag(0), 0, b"a")), packed(Frame(2, Flag.REPLY, 9, b"bb"))
    reader = FrameReader()
    both = [Frame(1, Flag(0), 0, b"a"), Frame(2, Flag.REPLY, 9, b"bb")]
    assert reader.feed(a + b + b[:5]) == both
    assert reader.buffered == 5
    assert reader.feed(b[5:]) == [Frame(2, Flag.REPLY, 9, b"bb")]


def test_large_payload_in_chunks() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = pack_frame(7, payload)
    reader = FrameReader()
    out: list[Frame] = []
    for at in range(0, len(data), 65536):
        out += reader.feed(data[at:at + 65536])
    assert [f.payload for f in out] == [payload]


def test_bad_magic() -> None:
    with pytest.raises(BadMagicError, match=r"b'GE', expected b'TA'"):
        decode_frame(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(BadMagicError):  # refused as soon as two bytes are there
        FrameReader().feed(b"GE")


def test_version_mismatch_names_both_versions() -> None:
    data = pack_frame(1, b"", version=2)
    with pytest.raises(VersionMismatchError,
                       match="peer speaks protocol version 2, this side speaks 1") as info:
        decode_frame(data)
    assert info.value.peer_version == 2
    with pytest.raises(VersionMismatchError):  # refused as soon as three bytes are there
        FrameReader().feed(data[:3])


def test_oversize_is_refused_from_the_header_alone() -> None:
    header = HEADER.pack(MAGIC, PROTOCOL_VERSION, 0, 1, 0, 1001)
    reader = FrameReader(max_payload=1000)
    with pytest.raises(FrameTooLargeError, match="1001 bytes, above the limit of 1000"):
        reader.feed(header)  # not one payload byte sent
    assert reader.buffered == 0
    with pytest.raises(FrameTooLargeError):
        decode_frame(header, max_payload=1000)
    exact = pack_frame(1, bytes(1000))
    assert FrameReader(max_payload=1000).feed(exact)[0].payload == bytes(1000)


def test_default_limit_refuses_a_huge_length() -> None:
    header = HEADER.pack(MAGIC, PROTOCOL_VERSION, 0, 1, 0, 2**32 - 1)
    with pytest.raises(FrameTooLargeError, match=str(DEFAULT_MAX_PAYLOAD)):
        FrameReader().feed(header)


def test_undefined_flag_bits_are_refused() -> None:
    data = HEADER.pack(MAGIC, PROTOCOL_VERSION, 0x08, 1, 0, 0)
    with pytest.raises(UnknownFlagsError, match="0x08"):
        decode_frame(data)
    with pytest.raises(UnknownFlagsError):
        FrameReader().feed(data)


def test_a_reader_is_poisoned_after_an_error() -> None:
    reader = FrameReader()
    good = packed(Frame(1, Flag(0), 0, b""))
    with pytest.raises(BadMagicError):
        reader.feed(good + b"XX")
    with pytest.raises(BadMagicError):
        reader.feed(good)


def test_bytes_after_the_one_frame_are_refused() -> None:
    with pytest.raises(TrailingFrameBytesError, match="1 bytes follow"):
        decode_frame(packed(Frame(1, Flag(0), 0, b"p")) + b"\x00")


def test_frames_carry_bytes_payloads_and_flags() -> None:
    frame = FrameReader().feed(bytearray(pack_frame(3, b"abc", flags=Flag.ERROR)))[0]
    assert type(frame.payload) is bytes and frame.flags is Flag.ERROR
    assert decode_frame(memoryview(pack_frame(3, b"abc"))).payload == b"abc"


def test_pack_frame_refuses_out_of_range_header_fields() -> None:
    from titan_actors.errors import EncodeError
    with pytest.raises(EncodeError, match="type id 65536"):
        pack_frame(65536, b"")
    with pytest.raises(EncodeError):
        pack_frame(1, b"", request_id=-1)


@settings(max_examples=300)
@given(data=st.binary(max_size=64), chunk=st.integers(1, 16))
def test_random_bytes_raise_only_protocol_errors(data: bytes, chunk: int) -> None:
    try:
        decode_frame(data)
    except ProtocolError:
        pass
    reader = FrameReader(max_payload=32)
    try:
        for at in range(0, len(data), chunk):
            reader.feed(data[at:at + chunk])
    except ProtocolError:
        pass


@settings(max_examples=200)
@given(data=st.binary(max_size=40))
def test_random_bytes_after_a_valid_header_raise_only_protocol_errors(data: bytes) -> None:
    reader = FrameReader(max_payload=64)
    try:
        reader.feed(MAGIC + bytes([PROTOCOL_VERSION]) + data)
    except ProtocolError:
        pass
