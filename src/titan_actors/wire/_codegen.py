"""The codec generator: straight-line encode/decode source per dataclass, compiled once.

See :mod:`titan_actors.wire.codec` for the wire format. Pure: no sockets, no gevent.
"""

from __future__ import annotations

import dataclasses
import enum
import linecache
import struct
import types
import typing
from collections.abc import Callable
from typing import Any

from titan_actors.errors import BadFieldValueError, DecodeError, EncodeError
from titan_actors.wire._codec_runtime import (
    _CODECS,
    _NONE,
    _PACK_ERRORS,
    _POLY,
    _SCALARS,
    _U32,
    _bad_byte,
    _bad_utf8,
    _cannot,
    _ClassCodec,
    _count,
    _enum_member,
    _poly_dec,
    _poly_enc,
    _truncated,
    _within,
)
from titan_actors.wire.registry import Message

# -- type resolution -------------------------------------------------------------------------

def _kind(tp: Any, where: str, localns: dict | None = None) -> tuple[str, tuple]:
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
        if not _hashable(args[0], localns):
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


def _hashable(tp: Any, localns: dict | None) -> bool:
    if typing.get_origin(tp) in (list, dict) or tp is Message:
        return False
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp, localns)
        return tp.__hash__ is not None and all(
            _hashable(hints[f.name], localns) for f in dataclasses.fields(tp))
    return all(_hashable(arg, localns) for arg in typing.get_args(tp) if arg is not Ellipsis)


def _hints(cls: type, localns: dict | None) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, localns=localns)
    except Exception as e:
        raise TypeError(f"{cls.__name__}: cannot resolve its field annotations ({e}); types "
                        "used by a message must be defined before it") from e


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


class _Gen:
    """Emits the source of one class's encoder and decoder.

    ``enc(tp, x, where)`` returns statements appending the encoding of expression ``x`` to
    ``out``; ``dec(tp, t, where)`` returns statements reading ``buf`` at ``pos`` (``end`` is
    ``len(buf)``) into the name ``t`` and advancing ``pos``. Constants go into ``ns`` under
    unique names; ``where`` strings are inlined as literals, for error messages.
    """

    def __init__(self, stack: tuple[type, ...], localns: dict | None) -> None:
        self.stack, self.localns = stack, localns
        self.count = 0
        self.ns: dict[str, Any] = {
            "_PACK_ERRORS": _PACK_ERRORS, "_DICT_ERRORS": (AttributeError, *_PACK_ERRORS),
            "_struct_error": struct.error, "_U32P": _U32.pack, "_U32U": _U32.unpack_from,
            "_spack": struct.pack, "_sunpack_from": struct.unpack_from, "_SEQ": (list, tuple),
            "_truncated": _truncated, "_cannot": _cannot, "_bad_byte": _bad_byte,
            "_bad_utf8": _bad_utf8, "_count": _count, "_enum_member": _enum_member,
            "_poly_enc": _poly_enc, "_poly_dec": _poly_dec, "_within": _within,
            "EncodeError": EncodeError, "DecodeError": DecodeError}

    def name(self, prefix: str, value: Any = None) -> str:
        self.count += 1
        name = f"_{prefix}{self.count}"
        if value is not None:
            self.ns[name] = value
        return name

    def min_size(self, tp: Any) -> int:
        """Fewest bytes one value of ``tp`` takes: bounds a count before allocating."""
        kind, args = _kind(tp, "", self.localns)
        if kind == "enum":
            return 8 if args[0] is int else 4
        if kind == "dataclass":
            return _class_codec(tp, self.stack, self.localns).min_size
        return {"int": 8, "float": 8, "bool": 1, "poly": _POLY.size, "optional": 1}.get(kind, 4)

    def enc(self, tp: Any, x: str, where: str) -> list[str]:
        kind, args = _kind(tp, where, self.localns)
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
                    "except _PACK_ERRORS as e:",
                    f"    raise _cannot({w}, {x}, 'bytes', e) from None"]
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
                packed = f"_spack('!I%d{code}' % len({s}), len({s}), *{s})"
                return lines + ["try:", f"    out += {packed}",
                                "except _PACK_ERRORS:", *_indent(loop), "    raise"]
            return lines + [f"out += _U32P(len({s}))"] + loop
        if kind == "dict":
            m, items, k, v = self.name("m"), self.name("i"), self.name("k"), self.name("v")
            return [f"{m} = {x}", "try:", f"    {items} = {m}.items()",
                    f"    out += _U32P(len({m}))", "except _DICT_ERRORS as e:",
                    f"    raise _cannot({w}, {m}, 'a dict', e) from None",
                    f"for {k}, {v} in {items}:", *_indent(self.enc(args[0], k, f"{where}[key]")),
                    *_indent(self.enc(args[1], v, f"{where}[value]"))]
        if kind == "enum":
            e, cls = self.name("e"), self.name("E", tp)
            return [f"{e} = {x}", f"if {e}.__class__ is not {cls}:",
                    f"    raise _cannot({w}, {e}, {'a member of ' + tp.__name__!r})",
                    *self.enc(args[0], f"{e}._value_", where)]
        codec = _class_codec(tp, self.stack, self.localns)
        cls, fn = self.name("C", tp), self.name("enc", codec.enc)
        return [f"if {x}.__class__ is not {cls}:",
                f"    raise _cannot({w}, {x}, {'a ' + tp.__name__!r})", "try:",
                f"    {fn}({x}, out)", "except EncodeError as e:",
                f"    raise _within(e, {w}, {tp.__name__!r}) from None"]

    def dec(self, tp: Any, t: str, where: str) -> list[str]:
        kind, args = _kind(tp, where, self.localns)
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
                            "except UnicodeDecodeError as e:",
                            f"    raise _bad_utf8({w}, e) from None"]
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
                                f"pos += {n} * {size}",
                                f"{t} = list({t})" if kind == "list" else "pass"]
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
        fn = self.name("dec", _class_codec(tp, self.stack, self.localns).dec)
        return ["try:", f"    {t}, pos = {fn}(buf, pos)", "except DecodeError as e:",
                f"    raise _within(e, {w}, {tp.__name__!r}) from None"]


# -- classes ---------------------------------------------------------------------------------

def _class_codec(cls: type, stack: tuple[type, ...] = (), localns: dict | None = None
                 ) -> _ClassCodec:
    """Return the codec of dataclass ``cls``, generating it on first use.

    ``localns`` resolves annotations naming types local to the function that declared ``cls``.
    """
    codec = _CODECS.get(cls)
    if codec is not None:
        return codec
    if cls in stack:
        raise TypeError(f"{stack[0].__name__}: {cls.__name__} contains itself; a recursive "
                        "structure must go through a Message (polymorphic) field")
    hints = _hints(cls, localns)
    fields = dataclasses.fields(cls)
    for f in fields:
        if not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: init=False fields cannot be decoded")
    gen = _Gen(stack + (cls,), localns)
    steps = [(f, hints[f.name]) for f in fields]
    codec = _ClassCodec(cls, tuple((f.name, tp) for f, tp in steps),
                        sum(gen.min_size(tp) for _, tp in steps))
    enc_src, dec_src, codec.layout = _body(cls, steps, gen)
    dec_src += _construct(cls, fields, gen.ns)
    codec.source = "\n".join(["def encode(msg, out):", *_indent(enc_src or ["pass"]), "",
                              "def decode(buf, pos):", "    end = len(buf)", *_indent(dec_src)])
    filename = f"<codec {cls.__module__}.{cls.__qualname__}>"
    # The source is generated here from field names and types only: no outside text reaches it.
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
