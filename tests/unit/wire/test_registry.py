"""The message registry: declaring, looking up and refusing message classes."""

from __future__ import annotations

import dataclasses

import pytest

import titan_actors.wire.messages  # noqa: F401  (registers the real messages)
from titan_actors.errors import DuplicateMessageIdError, UnknownMessageTypeError
from titan_actors.wire import codec
from titan_actors.wire.registry import (
    Lane,
    Message,
    _scratch_registry,
    message,
    message_class,
    registered,
    type_id_of,
)
from titan_actors.wire.roles import Capability


def declare(type_id: int, name: str = "Scratch", **kwargs: object) -> type[Message]:
    """Register a throwaway message class with one str field (inside a scratch registry)."""
    cls = type(name, (Message,), {"__annotations__": {"text": str}, "__module__": __name__})
    return message(type_id, **kwargs)(cls)


def test_decorator_makes_a_frozen_slotted_dataclass_with_class_attributes() -> None:
    with _scratch_registry():
        cls = declare(60050, lane=Lane.BULK, requires=Capability.QUERY)
        msg = cls("hi")
        assert (cls.TYPE_ID, cls.LANE, cls.REQUIRES) == (60050, Lane.BULK, Capability.QUERY)
        assert dataclasses.is_dataclass(cls) and not hasattr(msg, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            msg.text = "changed"  # type: ignore[misc]
        assert message_class(60050) is cls
        assert type_id_of(cls) == 60050
        assert codec.decode(cls, codec.encode(msg)) == msg


def test_defaults_are_control_lane_and_no_capability() -> None:
    with _scratch_registry():
        cls = declare(60051)
        assert cls.LANE is Lane.CONTROL and cls.REQUIRES is None


def test_lanes() -> None:
    assert (Lane.CONTROL, Lane.BULK) == (0, 1)


def test_duplicate_id_raises_naming_both_classes_and_keeps_the_first() -> None:
    with _scratch_registry():
        first = declare(60052, "First")
        with pytest.raises(DuplicateMessageIdError, match=r"60052 .*First.* and .*Second"):
            declare(60052, "Second")
        assert message_class(60052) is first


def test_duplicate_of_a_real_message_id_raises() -> None:
    taken = min(registered())
    with _scratch_registry(), pytest.raises(DuplicateMessageIdError, match=str(taken)):
        declare(taken, "Impostor")


@pytest.mark.parametrize("bad_id", [0, -1, 65536, True, 1.0, "7"])
def test_type_id_out_of_range_is_refused(bad_id: object) -> None:
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        message(bad_id)  # type: ignore[arg-type]


def test_only_message_subclasses_can_be_registered() -> None:
    with _scratch_registry():
        with pytest.raises(TypeError, match="subclass of Message"):
            message(60053)(type("Plain", (), {"__annotations__": {"x": int}}))
        with pytest.raises(TypeError, match="subclass of Message"):
            message(60053)(Message)
        assert 60053 not in registered()


def test_unknown_id_raises_naming_it() -> None:
    with pytest.raises(UnknownMessageTypeError, match="unknown message type id 59998"):
        message_class(59998)
    with pytest.raises(UnknownMessageTypeError, match="id 0"):
        message_class(0)


def test_registered_is_a_copy() -> None:
    snapshot = registered()
    snapshot[60054] = Message
    assert 60054 not in registered()


def test_type_id_of_refuses_unregistered_classes() -> None:
    with pytest.raises(TypeError, match="not a registered message class"):
        type_id_of(Message)
    with _scratch_registry():
        cls = declare(60055)
    with pytest.raises(TypeError):  # forgotten with its scratch registry
        type_id_of(cls)


def test_scratch_registry_forgets_its_classes_and_keeps_the_others() -> None:
    before = registered()
    with _scratch_registry():
        declare(60056)
        assert 60056 in registered()
    assert registered() == before


def test_real_messages_use_documented_ranges() -> None:
    for type_id, cls in registered().items():
        if cls.__module__.startswith("titan_actors."):
            assert 1 <= type_id <= 499, cls
