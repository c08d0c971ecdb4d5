"""The payload codec: message dataclass <-> bytes, compiled once per class at registration.

Fields are written in declaration order, network byte order, with no delimiters (so nothing ever
needs escaping):

=====================  ==========================================================
``int``                i64 (EncodeError naming the field when out of range)
``float``              f64
``bool``               u8, 0 or 1
``str`` / ``bytes``    u32 length, then UTF-8 / raw bytes
``T | None``           u8 presence (0 or 1), then T when present
``list[T]``            u32 count, then the items (``tuple[T, ...]``: the same)
``dict[K, V]``         u32 count, then key, value, key, value...
``enum.Enum``          its value: i64 for int values, str for str values
a dataclass            its fields inline (a registered message or a plain one)
``Message``            polymorphic: u16 type id, u32 length, then that payload
=====================  ==========================================================

Speed: each class gets a generated, straight-line encoder and decoder (as ``dataclasses``
generates ``__init__``): containers become inline loops, consecutive int, float and bool fields
are fused into one ``struct.Struct``, and lists of int or float are packed in one call. Encoding
does no type dispatch; a value that does not fit its field raises EncodeError naming the field.

Safety: decoding any byte string raises only DecodeError subclasses or UnknownMessageTypeError
(both ProtocolError): every read is bounds-checked, a count is checked against the bytes left
before anything is allocated, and polymorphic nesting is limited to ``MAX_NESTING`` levels.
Pure: no sockets, no gevent.
"""

from __future__ import annotations

import struct
from typing import Any

from titan_actors.errors import EncodeError, TrailingBytesError
from titan_actors.wire._codec_runtime import _CODECS, MAX_NESTING, _ClassCodec
from titan_actors.wire._codegen import _class_codec
from titan_actors.wire.frame import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    NO_FLAGS,
    PROTOCOL_VERSION,
    Flag,
    Frame,
)
from titan_actors.wire.registry import NO_MESSAGE, Message, message_class

__all__ = [
    "MAX_NESTING",
    "compile_message",
    "decode",
    "decode_any",
    "decode_frame_message",
    "encode",
    "encode_any",
    "encode_frame",
    "field_types",
]


# -- public API --------------------------------------------------------------------------------

def compile_message(cls: type[Message], localns: dict[str, Any] | None = None) -> None:
    """Compile the codec of a message class (called once by ``registry.message``).

    ``localns``: the namespace the class was declared in, when that is a function's (so field
    types local to it resolve). Raises TypeError naming the class and field when a field type
    cannot go on the wire.
    """
    _class_codec(cls, (), localns).type_id = cls.TYPE_ID


def field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """Return ``(name, resolved type)`` for each field of a compiled class, in wire order."""
    return _CODECS[cls].fields


def _codec_of(msg: Any) -> _ClassCodec:
    codec = _CODECS.get(msg.__class__)
    if codec is None or codec.type_id is None:
        raise EncodeError(f"{type(msg).__name__} is not a registered message class, "
                          "so it cannot go on the wire")
    return codec


def encode(msg: Message) -> bytes:
    """Return the payload of ``msg`` (no header).

    Raises EncodeError naming the field whose value its type cannot carry, or when ``msg`` is
    not an instance of a registered message class.
    """
    out = bytearray()
    _codec_of(msg).enc(msg, out)
    return bytes(out)


def decode(cls: type[Message], data: bytes | bytearray | memoryview) -> Message:
    """Decode the payload ``data`` as a ``cls``; the whole of ``data`` must be used.

    Raises a DecodeError subclass naming the class and field (TruncatedPayloadError,
    TrailingBytesError, BadUtf8Error, BadFieldValueError, DecodeError for a count or nesting
    above its limit) or UnknownMessageTypeError (from a polymorphic field). Raises TypeError
    when ``cls`` is not a registered message class (a programming error, not bad bytes).
    """
    codec = _CODECS.get(cls)
    if codec is None or codec.type_id is None:
        raise TypeError(f"{cls!r} is not a registered message class")
    buf = data if type(data) is bytes else bytes(data)
    msg, pos = codec.dec(buf, 0)
    if pos != len(buf):
        raise TrailingBytesError(f"{cls.__name__}: {len(buf) - pos} bytes left over after "
                                 "the last field")
    return msg


def encode_any(msg: Message | None) -> tuple[int, bytes]:
    """Return ``(type id, payload)``; None (an ask answered with nothing) is ``(0, b"")``."""
    if msg is None:
        return NO_MESSAGE, b""
    codec = _codec_of(msg)
    out = bytearray()
    codec.enc(msg, out)
    return codec.type_id, bytes(out)  # type: ignore[return-value]


def decode_any(type_id: int, data: bytes | bytearray | memoryview) -> Message | None:
    """Decode a payload by its type id; type id 0 with no payload is None.

    Raises UnknownMessageTypeError for an unregistered id, else as :func:`decode`.
    """
    if type_id == NO_MESSAGE:
        if data:
            raise TrailingBytesError(f"type id 0 (no message) carries {len(data)} payload bytes")
        return None
    return decode(message_class(type_id), data)


def encode_frame(msg: Message | None, *, flags: Flag = NO_FLAGS, request_id: int = 0) -> bytes:
    """Return a whole frame, header and payload, carrying ``msg`` (None: type id 0).

    Raises EncodeError as :func:`encode`, or when a header field does not fit its width.
    """
    out = bytearray(HEADER_SIZE)
    type_id = NO_MESSAGE
    if msg is not None:
        codec = _codec_of(msg)
        codec.enc(msg, out)
        type_id = codec.type_id  # type: ignore[assignment]
    try:
        HEADER.pack_into(out, 0, MAGIC, PROTOCOL_VERSION, flags, type_id, request_id,
                         len(out) - HEADER_SIZE)
    except struct.error as e:
        raise EncodeError(f"frame header out of range (flags {flags!r}, request id "
                          f"{request_id!r}, payload {len(out) - HEADER_SIZE} bytes): {e}") from e
    return bytes(out)


def decode_frame_message(frame: Frame) -> Message | None:
    """Decode the message a frame carries (its payload as is: unseal a SEALED frame first)."""
    return decode_any(frame.type_id, frame.payload)
