"""The payload codec: round trips of every message type, the wire layout, and every named error."""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.wire.strategies import messages

import titan_actors.wire.messages  # noqa: F401  (registers the real messages)
from titan_actors.errors import (
    BadFieldValueError,
    BadUtf8Error,
    DecodeError,
    EncodeError,
    ProtocolError,
    TrailingBytesError,
    TruncatedPayloadError,
    UnknownMessageTypeError,
)
from titan_actors.wire import codec
from titan_actors.wire.frame import Flag, decode_frame
from titan_actors.wire.registry import Message, _scratch_registry, message, registered

# -- test-only messages (ids 60000-60099), covering every field kind ---------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    DEEP = -(2**40)


class Perm(enum.IntFlag):
    R = 1
    W = 2
    X = 4


@dataclass(frozen=True)
class Point:  # plain, not slotted: decoded through __init__
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    label: str | None


@message(60000)
class Empty(Message):
    pass


@message(60001)
class Scalars(Message):
    i: int
    f: float
    b: bool
    s: str
    raw: bytes


@message(60002)
class Containers(Message):
    names: list[str]
    ids: tuple[int, ...]
    weights: list[float]
    flags: list[bool]
    counts: dict[str, int]
    levels: dict[Level, Color]
    maybe_names: list[str] | None
    maybe_int: int | None
    nested: list[list[bytes]]
    by_point: dict[Point, list[Span]]
    empties: list[Empty]
    perms: Perm


@message(60003)
class Nested(Message):
    point: Point
    scalars: Scalars
    spans: tuple[Span, ...]


@message(60004)
class Envelope(Message):
    inner: Message
    maybe: Message | None
    many: list[Message]


@message(60005)
class Validated(Message):
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must not be negative")


@message(60006)
class Defaults(Message):
    a: int
    b: str = "b"
    c: list[int] = dataclasses.field(default_factory=list)
    d: float = dataclasses.field(default=0.5, kw_only=True)


@message(60007)
class Mixed(Message):
    a: int
    b: bool
    s: str
    c: float
    d: float
    e: int
    last: bool


SCALARS = Scalars(-5, 1.5, True, "hé|;\n", b"\x00\xff")
CONTAINERS = Containers(
    names=["a", "", "ü"], ids=(1, -2**63, 2**63 - 1), weights=[0.0, -1.5], flags=[True, False],
    counts={"x": 1, "": -1}, levels={Level.LOW: Color.RED, Level.DEEP: Color.GREEN},
    maybe_names=["n"], maybe_int=None, nested=[[b"", b"ab"], []],
    by_point={Point(1, 2): [Span(0.5, None), Span(1.0, "l")]}, empties=[Empty(), Empty()],
    perms=Perm.R | Perm.X)
NESTED = Nested(Point(3, 4), SCALARS, (Span(2.0, "s"),))
ENVELOPE = Envelope(inner=SCALARS, maybe=Envelope(Empty(), None, []), many=[NESTED, Empty()])
SAMPLES = [Empty(), SCALARS, CONTAINERS, NESTED, ENVELOPE, Validated(3), Defaults(1, d=2.0),
           Mixed(1, True, "s", 2.0, 3.0, 4, False)]


def round_trip(msg: Message) -> Message:
    data = codec.encode(msg)
    back = codec.decode(type(msg), data)
    assert codec.encode(back) == data  # one encoding per value
    return back


# -- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_sample_round_trips(msg: Message) -> None:
    back = round_trip(msg)
    assert back == msg
    assert type(back) is type(msg)
    assert codec.decode_any(*codec.encode_any(msg)) == msg


def test_containers_decode_to_their_declared_kinds() -> None:
    back = round_trip(CONTAINERS)
    assert type(back.names) is list and type(back.ids) is tuple
    assert type(back.weights) is list and type(back.by_point) is dict
    assert type(NESTED.spans) is tuple and type(round_trip(NESTED).spans) is tuple


@pytest.mark.parametrize("cls", [c for _, c in sorted(registered().items())],
                         ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_registered_message_round_trips(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    assert round_trip(msg) == msg
    type_id, payload = codec.encode_any(msg)
    assert type_id == cls.TYPE_ID
    assert codec.decode_any(type_id, payload) == msg


@pytest.mark.parametrize("text", [
    "a|b;c\nd\r\n\t", "\x00nul\x00", "emoji 🎉👩‍👩‍👧", "\u2028\u2029\ufeff", "\U0010ffff",
    "",
    "x" * (1 << 20)], ids=["delimiters", "nul", "emoji", "separators", "max-codepoint", "empty",
                            "one-mib"])
def test_any_text_round_trips_byte_for_byte(text: str) -> None:
    data = codec.encode(Scalars(0, 0.0, False, text, b""))
    raw = text.encode()
    assert data[17:21 + len(raw)] == struct.pack("!I", len(raw)) + raw
    assert codec.decode(Scalars, data).s == text


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",))), raw=st.binary())
def test_generated_text_and_bytes_round_trip(text: str, raw: bytes) -> None:
    back = round_trip(Scalars(1, 2.0, True, text, raw))
    assert back.s == text and back.raw == raw


def test_nan_and_infinities_round_trip_bitwise() -> None:
    for value in (math.nan, math.inf, -math.inf, -0.0):
        data = codec.encode(Scalars(0, value, False, "", b""))
        back = codec.decode(Scalars, data).f
        assert struct.pack("!d", back) == struct.pack("!d", value)


def test_decode_takes_bytes_like_input() -> None:
    data = codec.encode(NESTED)
    assert codec.decode(Nested, bytearray(data)) == NESTED
    assert codec.decode(Nested, memoryview(data)) == NESTED


# -- the wire layout -----------------------------------------------------------------------------

def test_scalars_layout_is_network_order_and_length_prefixed() -> None:
    expected = (struct.pack("!qd?", -5, 1.5, True) + struct.pack("!I", 6) + "hé|;\n".encode()
                + struct.pack("!I", 2) + b"\x00\xff")
    assert codec.encode(SCALARS) == expected


def test_consecutive_scalars_are_fused_into_one_struct() -> None:
    assert codec._CODECS[Scalars].layout == ("!qd?", "str", "bytes")
    assert codec._CODECS[Mixed].layout == ("!q?", "str", "!ddq?")


def test_optional_enum_and_polymorphic_layouts() -> None:
    env = Envelope(inner=Empty(), maybe=None, many=[])
    assert codec.encode(env) == struct.pack("!HI", 60000, 0) + b"\x00" + struct.pack("!I", 0)
    levels = Containers([], (), [], [], {}, {Level.DEEP: Color.RED}, None, 7, [], {}, [], Perm.W)
    data = codec.encode(levels)
    assert struct.pack("!Iq", 1, -(2**40)) + struct.pack("!I", 3) + b"red" in data
    # maybe_names absent, maybe_int present, then 3 empty lists, then the flag's value
    assert data.endswith(b"\x00\x01" + struct.pack("!q", 7) + bytes(12) + struct.pack("!q", 2))


def test_empty_message_encodes_to_nothing() -> None:
    assert codec.encode(Empty()) == b""
    assert codec.decode(Empty, b"") == Empty()


# -- encoding errors name the field --------------------------------------------------------------

@pytest.mark.parametrize(("msg", "field"), [
    (Scalars(2**63, 0.0, False, "", b""), "Scalars.i"),
    (Scalars(-(2**63) - 1, 0.0, False, "", b""), "Scalars.i"),
    (Scalars(0, "nope", False, "", b""), "Scalars.f"),
    (Scalars(0, 0.0, False, "\ud800", b""), "Scalars.s"),
    (Scalars(0, 0.0, False, b"bytes", b""), "Scalars.s"),
    (Scalars(0, 0.0, False, "", "text"), "Scalars.raw"),
    (Mixed(1, True, "s", 2.0, 3.0, 10**30, False), "Mixed.e"),
    (dataclasses.replace(CONTAINERS, names=["ok", "\udfff"]), "Containers.names[]"),
    (dataclasses.replace(CONTAINERS, names="abc"), "Containers.names"),
    (dataclasses.replace(CONTAINERS, ids=(1, 2**64)), "Containers.ids[]"),
    (dataclasses.replace(CONTAINERS, counts=[("a", 1)]), "Containers.counts"),
    (dataclasses.replace(CONTAINERS, levels={1: Color.RED}), "Containers.levels[key]"),
    (dataclasses.replace(CONTAINERS, maybe_int=2**70), "Containers.maybe_int"),
    (dataclasses.replace(NESTED, point=(1, 2)), "Nested.point"),
    (Envelope(inner=Point(1, 2), maybe=None, many=[]), "Envelope.inner"),
    (dataclasses.replace(NESTED, scalars=Scalars(2**63, 0.0, False, "", b"")), "Nested.scalars.i"),
    (dataclasses.replace(NESTED, spans=(Span(0.0, 5),)), "Nested.spans[].label"),
])
def test_unencodable_value_names_its_field(msg: Message, field: str) -> None:
    with pytest.raises(EncodeError, match="^" + re.escape(field) + ": "):
        codec.encode(msg)


def test_encoding_an_unregistered_object_is_refused() -> None:
    with pytest.raises(EncodeError, match="Point is not a registered message"):
        codec.encode(Point(1, 2))
    with pytest.raises(EncodeError):
        codec.encode_any("a string")


def chain(depth: int) -> Message:
    msg: Message = Empty()
    for _ in range(depth):
        msg = Envelope(inner=msg, maybe=None, many=[])
    return msg


def test_polymorphic_nesting_up_to_the_limit_round_trips() -> None:
    msg = chain(codec.MAX_NESTING)
    assert round_trip(msg) == msg


def test_polymorphic_nesting_above_the_limit_is_refused_both_ways() -> None:
    with pytest.raises(EncodeError, match="nested deeper than 32"):
        codec.encode(chain(codec.MAX_NESTING + 1))
    payload = b""  # forge what the encoder refuses to write: 40 levels of Envelope(inner=...)
    type_id = Empty.TYPE_ID
    for _ in range(40):
        payload = struct.pack("!HI", type_id, len(payload)) + payload + b"\x00" + bytes(4)
        type_id = Envelope.TYPE_ID
    with pytest.raises(DecodeError, match="nested deeper than 32"):
        codec.decode(Envelope, payload)


# -- decoding errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("msg", [m for m in SAMPLES if codec.encode(m)],
                         ids=lambda m: type(m).__name__)
def test_every_strict_prefix_is_truncated(msg: Message) -> None:
    data = codec.encode(msg)
    for cut in range(len(data)):
        with pytest.raises(TruncatedPayloadError, match=rf"^{type(msg).__name__}\..*needs"):
            codec.decode(type(msg), data[:cut])


def test_truncation_names_the_field_it_ends_in() -> None:
    data = codec.encode(SCALARS)
    with pytest.raises(TruncatedPayloadError, match=r"^Scalars\.f: needs 8 bytes at offset 8"):
        codec.decode(Scalars, data[:10])
    with pytest.raises(TruncatedPayloadError, match=r"^Scalars\.s: needs 6 bytes"):
        codec.decode(Scalars, data[:22])


def test_errors_in_nested_dataclasses_name_the_path_from_the_outer_class() -> None:
    with pytest.raises(TruncatedPayloadError, match=r"^Nested\.point\.y: needs 8 bytes"):
        codec.decode(Nested, codec.encode(NESTED)[:12])
    with pytest.raises(TruncatedPayloadError, match=r"^Nested\.scalars\.s: needs"):
        codec.decode(Nested, codec.encode(NESTED)[:40])
    env = codec.encode(Envelope(inner=SCALARS, maybe=None, many=[]))
    inner_len = len(codec.encode(SCALARS))
    forged = env[:2] + struct.pack("!I", inner_len - 3) + env[6:6 + inner_len - 3] + env[-5:]
    with pytest.raises(TruncatedPayloadError, match=r"^Envelope\.inner\.raw: needs"):
        codec.decode(Envelope, forged)
    with pytest.raises(EncodeError, match=r"^Envelope\.many\[\]\.s: "):
        codec.encode(Envelope(Empty(), None, [Scalars(0, 0.0, False, "\ud800", b"")]))


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(TrailingBytesError, match="1 bytes left over"):
        codec.decode(Scalars, codec.encode(SCALARS) + b"\x00")
    with pytest.raises(TrailingBytesError):
        codec.decode(Empty, b"\x00")


def test_trailing_bytes_inside_a_polymorphic_payload_are_refused() -> None:
    payload = struct.pack("!HI", Empty.TYPE_ID, 1) + b"\x00" + b"\x00" + bytes(4)
    with pytest.raises(TrailingBytesError, match="Envelope.inner"):
        codec.decode(Envelope, payload)


def test_bad_bool_and_presence_bytes_are_refused() -> None:
    data = bytearray(codec.encode(SCALARS))
    data[16] = 2
    with pytest.raises(BadFieldValueError, match=r"^Scalars\.b: bool byte is 2"):
        codec.decode(Scalars, bytes(data))
    mixed = bytearray(codec.encode(Mixed(1, True, "s", 2.0, 3.0, 4, False)))
    mixed[-1] = 0xFF
    with pytest.raises(BadFieldValueError, match=r"^Mixed\.last: bool byte is 255"):
        codec.decode(Mixed, bytes(mixed))
    env = struct.pack("!HI", Empty.TYPE_ID, 0) + b"\x07" + bytes(4)
    with pytest.raises(BadFieldValueError, match=r"^Envelope\.maybe: presence byte is 7"):
        codec.decode(Envelope, env)


def test_bad_utf8_names_the_field() -> None:
    data = struct.pack("!qd?", 0, 0.0, False) + struct.pack("!I", 2) + b"\xc3\x28" + bytes(4)
    with pytest.raises(BadUtf8Error, match=r"^Scalars\.s: not valid UTF-8"):
        codec.decode(Scalars, data)
    surrogate = "\ud800".encode("utf-8", "surrogatepass")
    data = struct.pack("!qd?", 0, 0.0, False) + struct.pack("!I", 3) + surrogate + bytes(4)
    with pytest.raises(BadUtf8Error):
        codec.decode(Scalars, data)


def test_unknown_enum_value_names_the_enum() -> None:
    data = bytearray(codec.encode(dataclasses.replace(CONTAINERS, levels={Level.LOW: Color.RED})))
    at = data.index(b"red")
    data[at:at + 3] = b"rot"
    with pytest.raises(BadFieldValueError, match=r"Containers\.levels\[value\]: 'rot' is not a "
                                                 r"value of enum Color"):
        codec.decode(Containers, bytes(data))


def test_unknown_polymorphic_type_id_is_named() -> None:
    payload = struct.pack("!HI", 59999, 0) + b"\x00" + bytes(4)
    with pytest.raises(UnknownMessageTypeError, match="59999"):
        codec.decode(Envelope, payload)


def test_a_huge_count_is_refused_before_allocating() -> None:
    payload = struct.pack("!I", 0xFFFFFFFF)  # Containers.names claims 4 billion strings
    with pytest.raises(TruncatedPayloadError, match=r"Containers\.names: count 4294967295"):
        codec.decode(Containers, payload)


def test_counts_of_zero_size_elements_are_capped() -> None:
    head = codec.encode(dataclasses.replace(CONTAINERS, empties=[], perms=Perm(0)))[:-12]
    ok = codec.decode(Containers, head + struct.pack("!I", 1000) + struct.pack("!q", 0))
    assert ok.empties == [Empty()] * 1000
    with pytest.raises(DecodeError, match=r"Containers\.empties: count 1048577 is above the limit"):
        codec.decode(Containers, head + struct.pack("!I", (1 << 20) + 1) + struct.pack("!q", 0))


def test_post_init_refusal_is_a_bad_field_value() -> None:
    with pytest.raises(BadFieldValueError, match="Validated rejected its decoded fields"):
        codec.decode(Validated, struct.pack("!q", -1))


@settings(max_examples=300, deadline=None)
@given(type_id=st.sampled_from(sorted(registered())) | st.integers(0, 65535), data=st.binary())
def test_random_payloads_raise_only_protocol_errors(type_id: int, data: bytes) -> None:
    try:
        codec.decode_any(type_id, data)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(sample=st.sampled_from([m for m in SAMPLES if codec.encode(m)]), data=st.data())
def test_corrupted_payloads_raise_only_protocol_errors(sample: Message, data: st.DataObject
                                                       ) -> None:
    payload = bytearray(codec.encode(sample))
    at = data.draw(st.integers(0, len(payload) - 1))
    payload[at] = data.draw(st.integers(0, 255))
    try:
        codec.decode(type(sample), bytes(payload))
    except ProtocolError:
        pass


def test_decoding_as_an_unregistered_class_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a registered message class"):
        codec.decode(Point, b"")


# -- no message, and frames ----------------------------------------------------------------------

def test_none_is_type_id_zero() -> None:
    assert codec.encode_any(None) == (0, b"")
    assert codec.decode_any(0, b"") is None
    with pytest.raises(TrailingBytesError):
        codec.decode_any(0, b"\x00")
    with pytest.raises(UnknownMessageTypeError, match="59999"):
        codec.decode_any(59999, b"")


def test_encode_frame_round_trips_through_decode_frame() -> None:
    data = codec.encode_frame(NESTED, flags=Flag.REPLY, request_id=77)
    frame = decode_frame(data)
    assert (frame.type_id, frame.flags, frame.request_id) == (Nested.TYPE_ID, Flag.REPLY, 77)
    assert frame.payload == codec.encode(NESTED)
    assert codec.decode_frame_message(frame) == NESTED
    assert codec.decode_frame_message(decode_frame(codec.encode_frame(None))) is None


def test_encode_frame_refuses_a_header_field_out_of_range() -> None:
    with pytest.raises(EncodeError, match="request id"):
        codec.encode_frame(Empty(), request_id=2**32)


# -- registration refuses what cannot go on the wire ---------------------------------------------

@dataclass(frozen=True)
class Loop:
    next: Loop | None


class Odd(enum.Enum):
    A = 1
    B = "b"


@pytest.mark.parametrize(("annotation", "why"), [
    (set[int], "cannot go on the wire"), (object, "cannot go on the wire"),
    (int | str, "cannot go on the wire"), (tuple[int, str], "cannot go on the wire"),
    (list, "cannot go on the wire"), (dict[list[int], int], "not hashable"),
    (dict[Message, int], "not hashable"), (Loop, "contains itself"), (Odd, "all-int or all-str"),
    (list[dict[str, set[int]]], "cannot go on the wire")])
def test_unsupported_field_type_is_refused_at_registration(annotation: object, why: str) -> None:
    with _scratch_registry():
        cls = type("Bad", (Message,), {"__annotations__": {"field": annotation},
                                       "__module__": __name__})
        with pytest.raises(TypeError, match=f"Bad.field|Bad: Loop|{why}") as info:
            message(60090)(cls)
        assert why in str(info.value)
        assert 60090 not in registered()


def test_init_false_fields_are_refused() -> None:
    with _scratch_registry():
        cls = type("NoInit", (Message,), {"__annotations__": {"x": int},
                                          "x": dataclasses.field(init=False, default=0),
                                          "__module__": __name__})
        with pytest.raises(TypeError, match=r"NoInit\.x: init=False"):
            message(60091)(cls)


def test_field_types_local_to_a_function_resolve() -> None:
    class Mood(enum.Enum):
        UP = "up"

    @dataclass(frozen=True)
    class Where:
        mood: Mood

    with _scratch_registry():
        @message(60092)
        class Local(Message):
            where: Where
            moods: list[Mood]

        msg = Local(Where(Mood.UP), [Mood.UP])
        assert round_trip(msg) == msg


def test_unresolvable_annotation_is_refused_at_registration() -> None:
    with _scratch_registry():
        cls = type("Dangling", (Message,), {"__annotations__": {"x": "NoSuchType"},
                                            "__module__": __name__})
        with pytest.raises(TypeError, match="Dangling: cannot resolve its field annotations"):
            message(60093)(cls)
