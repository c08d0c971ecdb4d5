"""The message registry: every wire message is a frozen slotted dataclass with a type id.

Declare a message with :func:`message`::

    @message(201, requires=Capability.REGISTER_WORKER)
    class WorkerHeartbeat(Message):
        worker_id: str
        running: list[str]

The decorator turns the class into ``dataclasses.dataclass(frozen=True, slots=True)``, registers
it under its id and compiles its codec once (see ``wire.codec``). A second class claiming the same
id raises :class:`~titan_actors.errors.DuplicateMessageIdError` at import; a field type the codec
cannot carry raises TypeError at import.

Type id ranges (u16 on the wire):

==============  ===================================================
0               reserved: "no message" (an ask answered with None)
1 - 99          control and handshake
100 - 199       master
200 - 299       worker
300 - 399       store
400 - 499       scaler
60000 - 65535   tests and benchmarks only
==============  ===================================================

This module is pure and imports no gevent: the SDK uses it with blocking sockets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import sys
from collections.abc import Callable, Iterator
from typing import ClassVar, TypeVar

from titan_actors.errors import DuplicateMessageIdError, UnknownMessageTypeError
from titan_actors.wire.roles import Capability

__all__ = [
    "MAX_TYPE_ID",
    "MIN_TYPE_ID",
    "NO_MESSAGE",
    "Lane",
    "Message",
    "message",
    "message_class",
    "registered",
    "type_id_of",
]

NO_MESSAGE = 0
MIN_TYPE_ID = 1
MAX_TYPE_ID = 65535


class Lane(enum.IntEnum):
    """Which path a message travels on between two peers."""

    CONTROL = 0  # everything that must not wait behind a flood
    BULK = 1     # log lines and other floods, on their own bounded path


class Message:
    """Base of every wire message.

    A field annotated with ``Message`` itself is polymorphic: it carries any registered message
    (its type id travels with it).
    """

    __slots__ = ()

    TYPE_ID: ClassVar[int]
    LANE: ClassVar[Lane]
    REQUIRES: ClassVar[Capability | None]


M = TypeVar("M", bound=Message)

_REGISTRY: dict[int, type[Message]] = {}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def message(type_id: int, *, lane: Lane = Lane.CONTROL,
            requires: Capability | None = None) -> Callable[[type[M]], type[M]]:
    """Class decorator: make ``cls`` a frozen slotted dataclass and register it as ``type_id``.

    Args:
        type_id: 1..65535, unique among all messages (see the ranges in the module docstring).
        lane: the lane the message travels on.
        requires: the capability a peer's role needs to send it (None: any authenticated peer).

    Returns the new class (``dataclass(slots=True)`` builds a new one, so use the returned one).
    Raises ValueError for an id out of range, TypeError when the class does not subclass
    :class:`Message` or has a field type the codec cannot carry, and DuplicateMessageIdError when
    another class already holds the id (the registry is left unchanged on every error).
    """
    if type(type_id) is not int or not MIN_TYPE_ID <= type_id <= MAX_TYPE_ID:
        raise ValueError(f"message type id must be an int in {MIN_TYPE_ID}..{MAX_TYPE_ID} "
                         f"(0 is reserved for 'no message'), got {type_id!r}")
    lane = Lane(lane)
    if requires is not None:
        requires = Capability(requires)

    def register(cls: type[M]) -> type[M]:
        if not (isinstance(cls, type) and issubclass(cls, Message)) or cls is Message:
            raise TypeError(f"@message({type_id}) needs a subclass of Message, got {cls!r}")
        existing = _REGISTRY.get(type_id)
        if existing is not None:
            raise DuplicateMessageIdError(
                f"message type id {type_id} is claimed by both {_name(existing)} "
                f"and {_name(cls)}")
        new = dataclasses.dataclass(frozen=True, slots=True)(cls)
        new.TYPE_ID = type_id
        new.LANE = lane
        new.REQUIRES = requires
        # Deferred import: codec imports this module for Message and message_class.
        from titan_actors.wire import codec

        # The caller's locals resolve field types declared inside a function (as in tests).
        codec.compile_message(new, sys._getframe(1).f_locals)
        _REGISTRY[type_id] = new
        return new

    return register


def message_class(type_id: int) -> type[Message]:
    """Return the message class registered as ``type_id``.

    Raises UnknownMessageTypeError naming the id when none is (0 included: it is no message).
    """
    try:
        return _REGISTRY[type_id]
    except (KeyError, TypeError):
        raise UnknownMessageTypeError(
            f"unknown message type id {type_id!r}: no message class is registered under it "
            "(is the peer running another release?)") from None


def registered() -> dict[int, type[Message]]:
    """Return a copy of the registry: type id -> message class."""
    return dict(_REGISTRY)


def type_id_of(cls: type[Message]) -> int:
    """Return the type id of the registered message class ``cls``.

    Raises TypeError when ``cls`` is not a registered message class (a subclass of a registered
    class is not registered by inheritance).
    """
    type_id = getattr(cls, "TYPE_ID", None)
    if type_id is None or _REGISTRY.get(type_id) is not cls:
        raise TypeError(f"{cls!r} is not a registered message class")
    return type_id


@contextlib.contextmanager
def _scratch_registry() -> Iterator[None]:
    """For tests only: messages registered inside the block are forgotten when it ends.

    Lets a test declare throwaway classes (duplicates, bad field types) without leaving ids taken
    for the rest of the process.
    """
    saved = dict(_REGISTRY)
    try:
        yield
    finally:
        _REGISTRY.clear()
        _REGISTRY.update(saved)
