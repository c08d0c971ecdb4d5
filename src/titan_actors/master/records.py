"""The master's AOF records: the scheduler's records, framed by type id for the file.

Each scheduler record type gets a registered wrapper message (type ids 150-169), so the AOF uses
the same codec as the wire: a record is its u16 type id followed by its payload.
"""

from __future__ import annotations

import struct

from ..errors import DecodeError
from ..scheduler.records import (
    Counters,
    GateDecided,
    JobReset,
    JobsAdded,
    JobsRestored,
    JobTransition,
    RunRestored,
    RunsForgotten,
    RunSubmitted,
)
from ..wire import codec
from ..wire.registry import Message, message

_TYPE = struct.Struct("!H")


@message(150)
class RunSubmittedRecord(Message):
    record: RunSubmitted


@message(151)
class JobsAddedRecord(Message):
    record: JobsAdded


@message(152)
class JobTransitionRecord(Message):
    record: JobTransition


@message(153)
class JobResetRecord(Message):
    record: JobReset


@message(154)
class RunsForgottenRecord(Message):
    record: RunsForgotten


# the records of a snapshot (``Scheduler.snapshot``: the compacted AOF starts with them)
@message(155)
class CountersRecord(Message):
    record: Counters


@message(156)
class RunRestoredRecord(Message):
    record: RunRestored


@message(157)
class JobsRestoredRecord(Message):
    record: JobsRestored


@message(158)
class GateDecidedRecord(Message):
    record: GateDecided


_WRAPPERS = {RunSubmitted: RunSubmittedRecord, JobsAdded: JobsAddedRecord,
             JobTransition: JobTransitionRecord, JobReset: JobResetRecord,
             RunsForgotten: RunsForgottenRecord, Counters: CountersRecord,
             RunRestored: RunRestoredRecord, JobsRestored: JobsRestoredRecord,
             GateDecided: GateDecidedRecord}
_RECORD_IDS = frozenset(wrapper.TYPE_ID for wrapper in _WRAPPERS.values())


def encode(record) -> bytes:
    """The AOF payload of a scheduler record."""
    type_id, payload = codec.encode_any(_WRAPPERS[type(record)](record))
    return _TYPE.pack(type_id) + payload


def decode(data: bytes):
    """The scheduler record in an AOF payload. Raises DecodeError for anything else."""
    if len(data) < _TYPE.size:
        raise DecodeError("an AOF record shorter than its type id")
    (type_id,) = _TYPE.unpack_from(data)
    if type_id not in _RECORD_IDS:
        raise DecodeError(f"type id {type_id} is not a master record")
    return codec.decode_any(type_id, data[_TYPE.size:]).record
