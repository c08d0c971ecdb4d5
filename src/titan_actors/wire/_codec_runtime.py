"""Runtime pieces of the codec: the per-class codec table and the helpers generated code calls.

Split from :mod:`titan_actors.wire.codec` (public API) and :mod:`._codegen` (the generator).
Pure: no sockets, no gevent.
"""

from __future__ import annotations

import enum
import struct
import threading
from collections.abc import Callable
from typing import Any

from titan_actors.errors import (
    BadFieldValueError,
    BadUtf8Error,
    DecodeError,
    EncodeError,
    TrailingBytesError,
    TruncatedPayloadError,
)
from titan_actors.wire.registry import message_class

MAX_NESTING = 32
# Elements that may encode to no bytes (an empty message) cannot be bounded by the bytes left.
_MAX_EMPTY_COUNT = 1 << 20

_U32 = struct.Struct("!I")
_POLY = struct.Struct("!HI")
_PACK_ERRORS = (struct.error, OverflowError, TypeError)
# struct code, size and description of the fixed-size scalars (bool decodes as "B" and is checked)
_SCALARS: dict[Any, tuple[str, int, str]] = {
    int: ("q", 8, "a signed 64-bit int"), float: ("d", 8, "a 64-bit float"),
    bool: ("?", 1, "a bool")}
_NONE = type(None)

Enc = Callable[[Any, bytearray], None]
Dec = Callable[[bytes, int], "tuple[Any, int]"]


class _ClassCodec:
    """A dataclass's generated encoder and decoder."""

    __slots__ = ("cls", "dec", "enc", "fields", "layout", "min_size", "source", "type_id")

    def __init__(self, cls: type, fields: tuple[tuple[str, Any], ...], min_size: int) -> None:
        self.cls, self.fields, self.min_size = cls, fields, min_size
        self.enc: Enc
        self.dec: Dec
        self.layout: tuple[str, ...] = ()  # per step: a fused struct format or a type name
        self.source = ""                   # the generated code, for debugging
        self.type_id: int | None = None    # set for registered messages only


_CODECS: dict[type, _ClassCodec] = {}


class _Depth(threading.local):
    value = 0  # polymorphic nesting of the encode or decode running on this thread


_depth = _Depth()


# -- errors raised from generated code (the slow path only) ---------------------------------

def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _truncated(where: str, need: int, buf: bytes, pos: int) -> TruncatedPayloadError:
    return TruncatedPayloadError(f"{where}: needs {need} bytes at offset {pos}, "
                                 f"only {max(len(buf) - pos, 0)} left")


def _cannot(where: str, value: object, what: str, cause: object = None) -> EncodeError:
    why = f" ({cause})" if cause else ""
    return EncodeError(f"{where}: {_short(value)} cannot be encoded as {what}{why}")


def _bad_byte(where: str, what: str, byte: int) -> BadFieldValueError:
    return BadFieldValueError(f"{where}: {what} byte is {byte}, expected 0 or 1")


def _bad_utf8(where: str, e: UnicodeDecodeError) -> BadUtf8Error:
    return BadUtf8Error(f"{where}: not valid UTF-8 at byte {e.start} ({e.reason})")


def _within(error: Exception, where: str, inner: str) -> Exception:
    """The same error, renamed from the nested class's field to the path from the outer one."""
    text = str(error)
    text = where + text[len(inner):] if text.startswith(inner + ".") else f"{where}: {text}"
    outer = type(error)(text)
    outer.__cause__ = error.__cause__
    return outer


def _count(buf: bytes, pos: int, min_size: int, where: str) -> tuple[int, int]:
    """Read a u32 count and check it against the bytes left, before anything is allocated."""
    if pos + 4 > len(buf):
        raise _truncated(where, 4, buf, pos)
    n = _U32.unpack_from(buf, pos)[0]
    pos += 4
    if min_size:
        if n * min_size > len(buf) - pos:
            raise TruncatedPayloadError(f"{where}: count {n} needs at least {n * min_size} bytes, "
                                        f"only {len(buf) - pos} left")
    elif n > _MAX_EMPTY_COUNT:
        raise DecodeError(f"{where}: count {n} is above the limit of {_MAX_EMPTY_COUNT} "
                          "for elements that may encode to no bytes")
    return n, pos


def _enum_member(tp: type[enum.Enum], value: Any, where: str) -> enum.Enum:
    try:  # composite Flag values are not in the value table
        return tp(value)
    except Exception:  # an enum's _missing_ hook may raise anything
        raise BadFieldValueError(f"{where}: {_short(value)} is not a value of enum "
                                 f"{tp.__name__}") from None


# -- polymorphic fields ----------------------------------------------------------------------

def _enter(where: str, error: type[Exception]) -> int:
    depth = _depth.value
    if depth >= MAX_NESTING:
        raise error(f"{where}: messages nested deeper than {MAX_NESTING} levels")
    _depth.value = depth + 1
    return depth


def _poly_enc(v: Any, out: bytearray, where: str) -> None:
    codec = _CODECS.get(v.__class__)
    if codec is None or codec.type_id is None:
        raise _cannot(where, v, "a message", "not a registered message class")
    depth = _enter(where, EncodeError)
    try:
        start = len(out)
        out += bytes(_POLY.size)
        codec.enc(v, out)
        _POLY.pack_into(out, start, codec.type_id, len(out) - start - _POLY.size)
    except EncodeError as e:
        raise _within(e, where, codec.cls.__name__) from None
    finally:
        _depth.value = depth


def _poly_dec(buf: bytes, pos: int, where: str) -> tuple[Any, int]:
    start = pos + _POLY.size
    if start > len(buf):
        raise _truncated(where, _POLY.size, buf, pos)
    type_id, length = _POLY.unpack_from(buf, pos)
    stop = start + length
    if stop > len(buf):
        raise _truncated(where, length, buf, start)
    codec = _CODECS[message_class(type_id)]
    depth = _enter(where, DecodeError)
    try:
        value, used = codec.dec(buf[start:stop], 0)
    except DecodeError as e:
        raise _within(e, where, codec.cls.__name__) from None
    finally:
        _depth.value = depth
    if used != length:
        raise TrailingBytesError(f"{where}: {length - used} bytes left over after "
                                 f"{codec.cls.__name__}")
    return value, stop
