"""Messages to the store actor and its answers (type ids 300-349), and its AOF records (350-369).

The store holds string values (with an optional expiry, in wall-clock epoch seconds) and sets of
strings. Keys and values are any text: the codec length-prefixes strings, so nothing needs
escaping. Strings and sets live in two separate keyspaces; ``StoreDelete`` removes both.

Every write is answered only once its record is durable under the store's fsync policy.
"""

from __future__ import annotations

from ..registry import Message, message
from ..roles import Capability

_S = Capability.STORE

# -- requests -------------------------------------------------------------------------------------


@message(300, requires=_S)
class StoreGet(Message):
    """Read a string value. Answered with :class:`StoreValue` (an expired key is not found)."""

    key: str


@message(301, requires=_S)
class StorePut(Message):
    """Set a string value; ``expires_at`` is wall-clock epoch seconds, 0 for never.

    A put replaces the value and the expiry. Answered with None once durable.
    """

    key: str
    value: str
    expires_at: float = 0.0


@message(302, requires=_S)
class StoreDelete(Message):
    """Remove a key's value and its set. Answered with :class:`StoreCount` (1 if anything was
    there, else 0)."""

    key: str


@message(303, requires=_S)
class StoreSetAdd(Message):
    """Add ``member`` to the set ``key``. Answered with :class:`StoreCount`: 1 new, 0 present."""

    key: str
    member: str


@message(304, requires=_S)
class StoreSetRemove(Message):
    """Remove ``member`` from the set ``key`` (an emptied set disappears). Answered with
    :class:`StoreCount`: 1 removed, 0 absent."""

    key: str
    member: str


@message(305, requires=_S)
class StoreMembers(Message):
    """The members of the set ``key``. Answered with :class:`StoreMembersReply` (sorted)."""

    key: str


@message(306, requires=_S)
class StoreKeys(Message):
    """The live keys (values and sets) that start with ``prefix``. Answered with
    :class:`StoreKeysReply` (sorted, each key once)."""

    prefix: str = ""


# -- replies --------------------------------------------------------------------------------------


@message(320)
class StoreValue(Message):
    found: bool
    value: str


@message(321)
class StoreCount(Message):
    count: int


@message(322)
class StoreMembersReply(Message):
    members: tuple[str, ...]


@message(323)
class StoreKeysReply(Message):
    keys: tuple[str, ...]


# -- AOF records (never sent on the wire by a peer; admin-only like every unmarked message) -------


@message(350)
class PutRecord(Message):
    key: str
    value: str
    expires_at: float


@message(351)
class DeleteRecord(Message):
    key: str


@message(352)
class SetAddRecord(Message):
    key: str
    member: str


@message(353)
class SetRemoveRecord(Message):
    key: str
    member: str


@message(354)
class SetMembersRecord(Message):
    """Compaction: add all of ``members`` to the set ``key`` (a large set takes several)."""

    key: str
    members: tuple[str, ...]
