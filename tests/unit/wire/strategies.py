"""Hypothesis strategies derived from the codec's own view of a message class.

``messages(cls)`` builds instances of ``cls`` from the field types the codec compiled
(``codec.field_types``), so every registered message type can be round-tripped without writing a
strategy by hand. Text never holds lone surrogates (they cannot be UTF-8), ints stay in int64 and
floats are never NaN (NaN != NaN would defeat equality; NaN has its own test).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from hypothesis import strategies as st

from titan_actors.wire import codec
from titan_actors.wire.registry import Message, registered

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
MAX_DEPTH = 2  # polymorphic fields nest at most this deep in generated examples

_NONE = type(None)


def messages(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of the compiled dataclass ``cls`` (a registered message or a nested one)."""
    fields = {name: for_type(tp, depth) for name, tp in codec.field_types(cls)}
    if not hasattr(cls, "__post_init__"):
        return st.builds(cls, **fields)

    def build(**values: Any) -> Any:
        try:
            return cls(**values)
        except Exception:  # __post_init__ refused these values: draw others
            return None

    return st.builds(build, **fields).filter(lambda msg: msg is not None)


def for_type(tp: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """A strategy for one field annotation, as the codec resolved it."""
    if tp is bool:
        return st.booleans()
    if tp is int:
        return INT64
    if tp is float:
        return st.floats(allow_nan=False)
    if tp is str:
        return TEXT
    if tp is bytes:
        return st.binary(max_size=20)
    if tp is Message:
        return _any_message(depth)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not _NONE)
        return st.none() | for_type(inner, depth)
    if origin is list:
        return st.lists(for_type(args[0], depth), max_size=4)
    if origin is tuple:
        return st.lists(for_type(args[0], depth), max_size=4).map(tuple)
    if origin is dict:
        return st.dictionaries(for_type(args[0], depth), for_type(args[1], depth), max_size=4)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return messages(tp, depth)
    raise TypeError(f"no strategy for {tp!r}")


def _any_message(depth: int) -> st.SearchStrategy[Any]:
    """Any registered message; past MAX_DEPTH only those without polymorphic fields."""
    classes = sorted(registered().items())
    if depth >= MAX_DEPTH:
        classes = [(i, c) for i, c in classes if not _polymorphic(c)]
    return st.sampled_from([c for _, c in classes]).flatmap(
        lambda c: messages(c, depth + 1))


def _polymorphic(tp: Any) -> bool:
    """Whether values of ``tp`` may hold a polymorphic Message field (at any depth)."""
    if tp is Message:
        return True
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return any(_polymorphic(t) for _, t in codec.field_types(tp))
    return any(_polymorphic(a) for a in typing.get_args(tp) if a is not Ellipsis)
