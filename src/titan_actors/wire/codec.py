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

import dataclasses
import enum
import linecache
import struct
import threading
import types
import typing
from typing import Any, Callable

from titan_actors.errors import (BadFieldValueError, BadUtf8Error, DecodeError, EncodeError,
                                 TrailingBytesError, TruncatedPayloadError)
from titan_actors.wire.frame import HEADER, HEADER_SIZE, MAGIC, PROTOCOL_VERSION, Flag, Frame
from titan_actors.wire.registry import NO_MESSAGE, Message, message_class

__all__ = ["encode", "decode", "encode_any", "decode_any", "encode_frame",
           "decode_frame_message", "field_types", "compile_message", "MAX_NESTING"]

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

    __slots__ = ("cls", "enc", "dec", "min_size", "fields", "layout", "type_id", "source")

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
    except Exception:
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
    finally:
        _depth.value = depth
    if used != length:
        raise TrailingBytesError(f"{where}: {length - used} bytes left over after "
                                 f"{codec.cls.__name__}")
    return value, stop


# -- type resolution -------------------------------------------------------------------------

def _kind(tp: Any, where: str) -> tuple[str, tuple]:
    """Classify annotation ``tp``: (kind, args). TypeError naming ``where`` if unsupported."""
    if tp in (bool, int, float, str, bytes):
        return tp.__name__, ()
    if tp is Message:
        return "poly", ()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and _NONE in args:
        return "optional", (args[0] if args[1] is _NONE else args[1],)
    if origin is list and len(args) == 1:
        return "list", args
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return "tuple", args[:1]
    if origin is dict and len(args) == 2:
        if not _hashable(args[0]):
            raise TypeError(f"{where}: dict key type {args[0]!r} is not hashable once decoded")
        return "dict", args
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [member.value for member in tp]
        for base in (int, str):
            if values and all(type(v) is base for v in values):
                return "enum", (base,)
        raise TypeError(f"{where}: enum {tp.__name__} needs members with all-int or all-str "
                        "values to go on the wire")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "dataclass", ()
    raise TypeError(f"{where}: field type {tp!r} cannot go on the wire (use int, float, bool, "
                    "str, bytes, T | None, list[T], tuple[T, ...], dict[K, V], an enum, a "
                    "dataclass or Message)")


def _hashable(tp: Any) -> bool:
    if typing.get_origin(tp) in (list, dict) or tp is Message:
        return False
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp.__hash__ is not None and all(
            _hashable(hints[f.name]) for f in dataclasses.fields(tp))
    return all(_hashable(arg) for arg in typing.get_args(tp) if arg is not Ellipsis)


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


class _Gen:
    """Emits the source of one class's encoder and decoder.

    ``enc(tp, x, where)`` returns statements appending the encoding of expression ``x`` to
    ``out``; ``dec(tp, t, where)`` returns statements reading ``buf`` at ``pos`` (``end`` is
    ``len(buf)``) into the name ``t`` and advancing ``pos``. Constants go into ``ns`` under
    unique names; ``where`` strings are inlined as literals, for error messages.
    """

    def __init__(self, stack: tuple[type, ...]) -> None:
        self.stack = stack
        self.count = 0
        self.ns: dict[str, Any] = {
            "_PACK_ERRORS": _PACK_ERRORS, "_DICT_ERRORS": (AttributeError, *_PACK_ERRORS),
            "_struct_error": struct.error, "_U32P": _U32.pack, "_U32U": _U32.unpack_from,
            "_spack": struct.pack, "_sunpack_from": struct.unpack_from, "_SEQ": (list, tuple),
            "_truncated": _truncated, "_cannot": _cannot, "_bad_byte": _bad_byte,
            "_bad_utf8": _bad_utf8, "_count": _count, "_enum_member": _enum_member,
            "_poly_enc": _poly_enc, "_poly_dec": _poly_dec}

    def name(self, prefix: str, value: Any = None) -> str:
        self.count += 1
        name = f"_{prefix}{self.count}"
        if value is not None:
            self.ns[name] = value
        return name

    def min_size(self, tp: Any) -> int:
        """Fewest bytes one value of ``tp`` takes: bounds a count before allocating."""
        kind, args = _kind(tp, "")
        if kind == "enum":
            return 8 if args[0] is int else 4
        if kind == "dataclass":
            return _class_codec(tp, self.stack).min_size
        return {"int": 8, "float": 8, "bool": 1, "poly": _POLY.size, "optional": 1}.get(kind, 4)

    def enc(self, tp: Any, x: str, where: str) -> list[str]:
        kind, args = _kind(tp, where)
        w = repr(where)
        if kind in ("int", "float"):
            code, _, what = _SCALARS[tp]
            pack = self.name("P", struct.Struct("!" + code).pack)
            return ["try:", f"    out += {pack}({x})", "except _PACK_ERRORS as e:",
                    f"    raise _cannot({w}, {x}, {what!r}, e) from None"]
        if kind == "bool":
            return [f"out.append(1 if {x} else 0)"]
        if kind == "str":
            return ["try:", f"    _b = {x}.encode()", "    _n = _U32P(len(_b))",
                    "except (AttributeError, UnicodeEncodeError, _struct_error) as e:",
                    f"    raise _cannot({w}, {x}, 'UTF-8 text', e) from None",
                    "out += _n", "out += _b"]
        if kind == "bytes":
            return ["try:", f"    out += _U32P(len({x}))", f"    out += {x}",
                    "except _PACK_ERRORS as e:", f"    raise _cannot({w}, {x}, 'bytes', e) from None"]
        if kind == "poly":
            return [f"_poly_enc({x}, out, {w})"]
        if kind == "optional":
            v = self.name("o")
            return [f"{v} = {x}", f"if {v} is None:", "    out.append(0)", "else:",
                    "    out.append(1)", *_indent(self.enc(args[0], v, where))]
        if kind in ("list", "tuple"):
            s, item = self.name("s"), self.name("x")
            lines = [f"{s} = {x}", f"if not isinstance({s}, _SEQ):",
                     f"    raise _cannot({w}, {s}, 'a list or tuple')"]
            loop = [f"for {item} in {s}:", *_indent(self.enc(args[0], item, f"{where}[]"))]
            if args[0] is int or args[0] is float:  # the whole run of numbers in one call
                code = _SCALARS[args[0]][0]
                return lines + ["try:", f"    out += _spack('!I%d{code}' % len({s}), len({s}), *{s})",
                                "except _PACK_ERRORS:", *_indent(loop), "    raise"]
            return lines + [f"out += _U32P(len({s}))"] + loop
        if kind == "dict":
            m, items, k, v = self.name("m"), self.name("i"), self.name("k"), self.name("v")
            return [f"{m} = {x}", "try:", f"    {items} = {m}.items()", f"    out += _U32P(len({m}))",
                    "except _DICT_ERRORS as e:", f"    raise _cannot({w}, {m}, 'a dict', e) from None",
                    f"for {k}, {v} in {items}:", *_indent(self.enc(args[0], k, f"{where}[key]")),
                    *_indent(self.enc(args[1], v, f"{where}[value]"))]
        if kind == "enum":
            e, cls = self.name("e"), self.name("E", tp)
            return [f"{e} = {x}", f"if {e}.__class__ is not {cls}:",
                    f"    raise _cannot({w}, {e}, {'a member of ' + tp.__name__!r})",
                    *self.enc(args[0], f"{e}._value_", where)]
        cls, fn = self.name("C", tp), self.name("enc", _class_codec(tp, self.stack).enc)
        return [f"if {x}.__class__ is not {cls}:",
                f"    raise _cannot({w}, {x}, {'a ' + tp.__name__!r})", f"{fn}({x}, out)"]

    def dec(self, tp: Any, t: str, where: str) -> list[str]:
        kind, args = _kind(tp, where)
        w = repr(where)
        if kind in ("int", "float"):
            code, size, _ = _SCALARS[tp]
            unpack = self.name("U", struct.Struct("!" + code).unpack_from)
            return [f"if pos + {size} > end:", f"    raise _truncated({w}, {size}, buf, pos)",
                    f"{t}, = {unpack}(buf, pos)", f"pos += {size}"]
        if kind == "bool":
            return ["if pos >= end:", f"    raise _truncated({w}, 1, buf, pos)", f"{t} = buf[pos]",
                    f"if {t} > 1:", f"    raise _bad_byte({w}, 'bool', {t})", f"{t} = {t} == 1",
                    "pos += 1"]
        if kind in ("str", "bytes"):
            lines = ["_a = pos + 4", "if _a > end:", f"    raise _truncated({w}, 4, buf, pos)",
                     "pos = _a + _U32U(buf, pos)[0]", "if pos > end:",
                     f"    raise _truncated({w}, pos - _a, buf, _a)"]
            if kind == "bytes":
                return lines + [f"{t} = buf[_a:pos]"]
            return lines + ["try:", f"    {t} = buf[_a:pos].decode()",
                            "except UnicodeDecodeError as e:", f"    raise _bad_utf8({w}, e) from None"]
        if kind == "poly":
            return [f"{t}, pos = _poly_dec(buf, pos, {w})"]
        if kind == "optional":
            return ["if pos >= end:", f"    raise _truncated({w}, 1, buf, pos)", "_p = buf[pos]",
                    "pos += 1", "if _p == 0:", f"    {t} = None", "elif _p == 1:",
                    *_indent(self.dec(args[0], t, where)), "else:",
                    f"    raise _bad_byte({w}, 'presence', _p)"]
        if kind in ("list", "tuple"):
            n, items, item = self.name("n"), self.name("l"), self.name("x")
            lines = [f"{n}, pos = _count(buf, pos, {self.min_size(args[0])}, {w})"]
            if args[0] is int or args[0] is float:
                code, size, _ = _SCALARS[args[0]]
                return lines + [f"{t} = _sunpack_from('!%d{code}' % {n}, buf, pos)",
                                f"pos += {n} * {size}"] + ([f"{t} = list({t})"] if kind == "list" else [])
            return lines + [f"{items} = []", f"for _ in range({n}):",
                            *_indent(self.dec(args[0], item, f"{where}[]")),
                            f"    {items}.append({item})",
                            f"{t} = {items}" if kind == "list" else f"{t} = tuple({items})"]
        if kind == "dict":
            n, d, k, v = self.name("n"), self.name("d"), self.name("k"), self.name("v")
            pair = self.min_size(args[0]) + self.min_size(args[1])
            return [f"{n}, pos = _count(buf, pos, {pair}, {w})", f"{d} = {{}}",
                    f"for _ in range({n}):", *_indent(self.dec(args[0], k, f"{where}[key]")),
                    *_indent(self.dec(args[1], v, f"{where}[value]")), f"    {d}[{k}] = {v}",
                    f"{t} = {d}"]
        if kind == "enum":
            raw, cls = self.name("r"), self.name("E", tp)
            table = self.name("M", tp._value2member_map_)
            return [*self.dec(args[0], raw, where), f"{t} = {table}.get({raw})", f"if {t} is None:",
                    f"    {t} = _enum_member({cls}, {raw}, {w})"]
        fn = self.name("dec", _class_codec(tp, self.stack).dec)
        return [f"{t}, pos = {fn}(buf, pos)"]


# -- classes ---------------------------------------------------------------------------------

def _class_codec(cls: type, stack: tuple[type, ...] = ()) -> _ClassCodec:
    """Return the codec of dataclass ``cls``, generating it on first use."""
    codec = _CODECS.get(cls)
    if codec is not None:
        return codec
    if cls in stack:
        raise TypeError(f"{stack[0].__name__}: {cls.__name__} contains itself; a recursive "
                        "structure must go through a Message (polymorphic) field")
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:
        raise TypeError(f"{cls.__name__}: cannot resolve its field annotations ({e}); types "
                        "used by a message must be defined before it") from e
    fields = dataclasses.fields(cls)
    for f in fields:
        if not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: init=False fields cannot be decoded")
    gen = _Gen(stack + (cls,))
    steps = [(f, hints[f.name]) for f in fields]
    codec = _ClassCodec(cls, tuple((f.name, tp) for f, tp in steps),
                        sum(gen.min_size(tp) for _, tp in steps))
    enc_src, dec_src, codec.layout = _body(cls, steps, gen)
    dec_src += _construct(cls, fields, gen.ns)
    codec.source = "\n".join(["def encode(msg, out):", *_indent(enc_src or ["pass"]), "",
                              "def decode(buf, pos):", "    end = len(buf)", *_indent(dec_src)])
    filename = f"<codec {cls.__module__}.{cls.__qualname__}>"
    exec(compile(codec.source, filename, "exec"), gen.ns)
    # Tracebacks through generated code show its source.
    linecache.cache[filename] = (len(codec.source), None, codec.source.splitlines(True), filename)
    codec.enc, codec.dec = gen.ns["encode"], gen.ns["decode"]
    _CODECS[cls] = codec
    return codec


def _body(cls: type, steps: list[tuple[dataclasses.Field, Any]], gen: _Gen
          ) -> tuple[list[str], list[str], tuple[str, ...]]:
    """Encoder and decoder statements, field by field; runs of scalars share one struct."""
    enc: list[str] = []
    dec: list[str] = []
    layout: list[str] = []
    i = 0
    while i < len(steps):
        j = i
        while j < len(steps) and steps[j][1] in _SCALARS:
            j += 1
        if j - i < 2:
            f, tp = steps[i]
            enc += gen.enc(tp, f"msg.{f.name}", f"{cls.__name__}.{f.name}")
            dec += gen.dec(tp, f"_f{i}", f"{cls.__name__}.{f.name}")
            layout.append(tp.__name__ if isinstance(tp, type) else repr(tp).replace("typing.", ""))
            i += 1
            continue
        run = steps[i:j]
        fmt = "!" + "".join(_SCALARS[tp][0] for _, tp in run)
        pack = gen.name("S", struct.Struct(fmt).pack)
        unpack = gen.name("U", struct.Struct(fmt.replace("?", "B")).unpack_from)
        explain, short = gen.name("X", _explainer(cls, run)), gen.name("T", _truncation(cls, run))
        size = struct.calcsize(fmt)
        enc += ["try:", f"    out += {pack}({', '.join(f'msg.{f.name}' for f, _ in run)})",
                "except _PACK_ERRORS:", f"    {explain}(msg)", "    raise"]
        dec += [f"if pos + {size} > end:", f"    {short}(buf, pos)",
                f"{''.join(f'_f{k}, ' for k in range(i, j))}= {unpack}(buf, pos)",
                f"pos += {size}"]
        for k in range(i, j):
            if steps[k][1] is bool:
                where = repr(f"{cls.__name__}.{steps[k][0].name}")
                dec += [f"if _f{k} > 1:", f"    raise _bad_byte({where}, 'bool', _f{k})",
                        f"_f{k} = _f{k} == 1"]
        layout.append(fmt)
        i = j
    return enc, dec, tuple(layout)


def _construct(cls: type, fields: tuple[dataclasses.Field, ...], ns: dict[str, Any]
               ) -> list[str]:
    """Statements building the instance from ``_f0``, ``_f1``... and returning it with pos."""
    slots = [next((vars(base)[f.name] for base in cls.__mro__ if f.name in vars(base)), None)
             for f in fields]
    ns["_cls"] = cls
    if not hasattr(cls, "__post_init__") and all(
            isinstance(slot, types.MemberDescriptorType) for slot in slots):
        # As pickle does: fill the slots directly, skipping the frozen __init__ (twice as fast).
        ns["_new"] = object.__new__
        ns.update((f"_set{k}", slot.__set__) for k, slot in enumerate(slots))
        return ["_o = _new(_cls)", *(f"_set{k}(_o, _f{k})" for k in range(len(fields))),
                "return _o, pos"]
    # __post_init__ may validate: run __init__, and report a refusal as a bad field value.
    ns["_rejected"] = lambda e: BadFieldValueError(f"{cls.__name__} rejected its decoded "
                                                   f"fields: {e!r}")
    args = ", ".join(f"{f.name}=_f{k}" if f.kw_only else f"_f{k}" for k, f in enumerate(fields))
    return ["try:", f"    return _cls({args}), pos", "except Exception as e:",
            "    raise _rejected(e) from e"]


def _explainer(cls: type, run: list) -> Callable[[Any], None]:
    """Slow path of a fused pack that failed: raise an EncodeError naming the field."""
    def explain(msg: Any) -> None:
        for f, tp in run:
            code, _, what = _SCALARS[tp]
            value = getattr(msg, f.name)
            try:
                struct.pack("!" + code, value)
            except _PACK_ERRORS as e:
                raise _cannot(f"{cls.__name__}.{f.name}", value, what, e) from None
    return explain


def _truncation(cls: type, run: list) -> Callable[[bytes, int], None]:
    """Slow path of a fused unpack that ran out of bytes: name the field the bytes end in."""
    def truncated(buf: bytes, pos: int) -> None:
        for f, tp in run:
            size = _SCALARS[tp][1]
            if pos + size > len(buf):
                raise _truncated(f"{cls.__name__}.{f.name}", size, buf, pos)
            pos += size
    return truncated


# -- public API --------------------------------------------------------------------------------

def compile_message(cls: type[Message]) -> None:
    """Compile the codec of a message class (called once by ``registry.message``).

    Raises TypeError naming the class and field when a field type cannot go on the wire.
    """
    _class_codec(cls).type_id = cls.TYPE_ID


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


def encode_frame(msg: Message | None, *, flags: Flag = Flag(0), request_id: int = 0) -> bytes:
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
