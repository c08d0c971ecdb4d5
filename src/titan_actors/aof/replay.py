"""Reading an append-only file back: every good record, and a verdict on any damage.

Classification at the first bad byte offset, following Redis:

* **Torn tail** (a write the crash cut short; dropped, its offset and size logged on the
  ``titan.aof`` logger): fewer bytes left than a record header; a consistent header whose payload
  runs past the end of the file; a CRC mismatch in a record that ends exactly at the end of the
  file, or that is followed only by zero bytes; an inconsistent header followed only by zero bytes
  (a filesystem that extended the file with zeros); an inconsistent header whose other copy of the
  length (or its own) gives a record that ends exactly at the end of the file with a matching CRC
  (one damaged byte in the header of the last record).
* **Corruption** (damage with good data after it; loading is refused with
  :class:`~titan_actors.errors.AofCorruptError`): any other inconsistent header or CRC mismatch,
  and a consistent header announcing more than the maximum record size.
* **Wrong format** (:class:`~titan_actors.errors.AofFormatError`): bad magic, unknown version, or
  a file shorter than its header.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from titan_actors.aof import record as _rec
from titan_actors.errors import (
    AofCorruptError,
    AofFormatError,
    AofTornTailError,
    PersistenceError,
)

log = logging.getLogger("titan.aof")

_READ_BUFFER = 1024 * 1024


class DamageKind(enum.Enum):
    """What is wrong at the first bad offset of a file.

    ``FORMAT`` (the header is not one this release reads) is only reported by
    :func:`~titan_actors.aof.check.check_aof`; :func:`replay` raises ``AofFormatError`` instead.
    """

    TORN = "torn"
    CORRUPT = "corrupt"
    FORMAT = "format"


@dataclass(frozen=True, slots=True)
class Damage:
    """The first damaged spot of a file.

    Attributes:
        kind: torn tail (dropped on load), corruption or a bad header (load refused).
        offset: byte offset of the first bad record; every byte before it is good.
        reason: what is wrong, in words, for logs and for ``titanctl aof check``.
        dropped_bytes: bytes from ``offset`` to the end of the file.
    """

    kind: DamageKind
    offset: int
    reason: str
    dropped_bytes: int


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Everything read from one append-only file.

    Attributes:
        path: the file read.
        records: the payloads of the good records, in file order (empty when the scan was asked
            not to keep them).
        record_count: how many good records the file holds.
        format_version: the version in the file header.
        last_good_offset: byte offset just past the last good record (the file size when there
            is no damage); a torn tail is truncated to this offset.
        file_size: the size of the file when it was read.
        damage: the first damage found, or None.
    """

    path: Path
    records: tuple[bytes, ...]
    record_count: int
    format_version: int
    last_good_offset: int
    file_size: int
    damage: Damage | None


def scan(path: str | os.PathLike[str], *,
         max_record_size: int = _rec.DEFAULT_MAX_RECORD_SIZE,
         keep_records: bool = True) -> ReplayResult:
    """Read ``path`` and classify any damage, without raising on damage and without logging.

    Args:
        path: the append-only file.
        max_record_size: a consistent header announcing a longer payload is corruption; checked
            before the payload is allocated.
        keep_records: False to count records without holding their payloads (``check``).

    Returns:
        A :class:`ReplayResult` whose ``damage`` says what, if anything, is wrong.

    Raises:
        AofFormatError: the file does not start with a supported header.
        PersistenceError: the file cannot be opened or read (the ``OSError`` is chained).
    """
    path = Path(path)
    try:
        with open(path, "rb", buffering=_READ_BUFFER) as f:
            size = os.fstat(f.fileno()).st_size
            version = _read_file_header(path, f)
            return _scan_records(path, f, size, version, max_record_size, keep_records)
    except OSError as e:
        raise PersistenceError(f"cannot read append-only file {path}: {e}") from e


def replay(path: str | os.PathLike[str], *, strict: bool = False,
           max_record_size: int = _rec.DEFAULT_MAX_RECORD_SIZE) -> ReplayResult:
    """Read every good record of ``path``; drop a torn tail, refuse corruption.

    A torn tail is logged (offset and dropped bytes) on the ``titan.aof`` logger and reported in
    ``result.damage``; the file itself is not changed here (the writer truncates it on open).

    Raises:
        AofCorruptError: a record before the end of the file is damaged; names the offset and
            what is wrong.
        AofTornTailError: ``strict`` is set and the file ends in a torn record.
        AofFormatError: bad magic, unknown version, or a file shorter than its header.
        PersistenceError: the file cannot be read.
    """
    result = scan(path, max_record_size=max_record_size)
    damage = result.damage
    if damage is None:
        return result
    if damage.kind is DamageKind.CORRUPT:
        raise AofCorruptError(
            f"{result.path} is corrupt at byte offset {damage.offset}: {damage.reason}; "
            f"{damage.dropped_bytes} bytes follow, refusing to load. Restore the file from a "
            f"backup (`titanctl aof check {result.path}` shows the damage)")
    if strict:
        raise AofTornTailError(
            f"{result.path} ends in a torn record at byte offset {damage.offset} "
            f"({damage.dropped_bytes} bytes): {damage.reason}; strict mode refuses to drop it")
    log.warning("dropping torn tail of %s at byte offset %d (%d bytes): %s",
                result.path, damage.offset, damage.dropped_bytes, damage.reason)
    return result


def _read_file_header(path: Path, f: BinaryIO) -> int:
    data = f.read(_rec.FILE_HEADER_SIZE)
    expected = _rec.encode_file_header()
    if len(data) < _rec.FILE_HEADER_SIZE:
        raise AofFormatError(
            f"{path} is not a Titan append-only file: found {len(data)} bytes {data!r}, "
            f"expected a {_rec.FILE_HEADER_SIZE}-byte header {expected!r}")
    magic, version = _rec.decode_file_header(data)
    if magic != _rec.MAGIC:
        raise AofFormatError(
            f"{path} is not a Titan append-only file: found magic {magic!r}, "
            f"expected {_rec.MAGIC!r}")
    if version not in _rec.SUPPORTED_VERSIONS:
        raise AofFormatError(
            f"{path} has append-only file format version {version}; this release reads "
            f"version(s) {sorted(_rec.SUPPORTED_VERSIONS)}")
    return version


def _scan_records(path: Path, f: BinaryIO, size: int, version: int, max_record_size: int,
                  keep_records: bool) -> ReplayResult:
    records: list[bytes] = []
    keep = records if keep_records else None
    count = 0
    offset = _rec.FILE_HEADER_SIZE
    damage: Damage | None = None
    while offset < size:
        # Good records in bulk; the record the bulk pass stops at (damaged, or one it cannot
        # take as is) is read again on its own and classified, and the bulk pass resumes after
        # it when it is good after all.
        taken, offset = _bulk_records(f, offset, size, max_record_size, keep)
        count += taken
        if offset >= size:
            break
        f.seek(offset)
        step = _next_record(f, offset, size, max_record_size, keep)
        if isinstance(step, Damage):
            damage = step
            break
        count += 1
        offset = step
    return ReplayResult(path=path, records=tuple(records), record_count=count,
                        format_version=version, last_good_offset=offset, file_size=size,
                        damage=damage)


def _bulk_records(f: BinaryIO, offset: int, size: int, max_record_size: int,
                  records: list[bytes] | None) -> tuple[int, int]:
    """Take the good records from ``offset`` on, reading the file in large chunks.

    The fast path of a scan (one unpack, one slice and one CRC per record, no seek and no call
    of ours): it stops at the end of the file (``size``) or at the first record it does not
    take as is, an inconsistent or oversized header, a record running past the end of the file
    or a CRC mismatch, which :func:`_next_record` then classifies. Returns (records taken, the
    offset just past them).
    """
    unpack, crc32, mask = _rec.RECORD_HEADER.unpack_from, _rec.payload_crc, _rec.LENGTH_MASK
    header_size = _rec.RECORD_HEADER_SIZE
    keep = records.append if records is not None else None
    f.seek(offset)
    count, tail, need = 0, b"", 0  # tail: bytes read from ``offset`` on and not taken yet
    while True:
        readable = size - offset - len(tail)
        chunk = f.read(min(max(_READ_BUFFER, need - len(tail)), readable)) if readable > 0 \
            else b""
        if not chunk:
            return count, offset
        buf = tail + chunk if tail else chunk
        pos, limit, need = 0, len(buf), 0
        while pos + header_size <= limit:
            length, inverted, crc = unpack(buf, pos)
            if length ^ inverted != mask or length > max_record_size:
                return count, offset + pos
            end = pos + header_size + length
            if end > limit:
                need = end - pos  # a record longer than what is buffered: read at least that
                break
            payload = buf[pos + header_size:end]
            if crc32(payload) != crc:
                return count, offset + pos
            if keep is not None:
                keep(payload)
            count += 1
            pos = end
        tail = buf[pos:]
        offset += pos


def _next_record(f: BinaryIO, offset: int, size: int, max_record_size: int,
                 records: list[bytes] | None) -> int | Damage:
    """Read the record at ``offset``; return the offset after it, or the damage found there."""
    left = size - offset
    if left < _rec.RECORD_HEADER_SIZE:
        return _torn(offset, size, f"incomplete record header ({left} of "
                                   f"{_rec.RECORD_HEADER_SIZE} bytes)")
    header = f.read(_rec.RECORD_HEADER_SIZE)
    length, inverted, crc = _rec.decode_record_header(header)
    if not _rec.header_is_consistent(length, inverted):
        return _classify_bad_header(f, offset, size, length, inverted, crc, max_record_size)
    end = offset + _rec.RECORD_HEADER_SIZE + length
    if end > size:
        return _torn(offset, size, f"record of {length} bytes runs past the end of the file "
                                   f"({left - _rec.RECORD_HEADER_SIZE} payload bytes present)")
    if length > max_record_size:
        return _corrupt(offset, size, f"record length {length} exceeds the maximum record size "
                                      f"{max_record_size} (raise max_record_size if the file "
                                      f"was written with a larger one)")
    payload = f.read(length)
    if len(payload) != length:
        # The file shrank while we read it: what is missing is a tail, not damage in the middle.
        return _torn(offset, size, "file shrank while it was read")
    computed = _rec.payload_crc(payload)
    if computed != crc:
        reason = (f"CRC mismatch in a record of {length} bytes "
                  f"(stored {crc:#010x}, computed {computed:#010x})")
        if end == size or _only_zeros(f, end, size):
            return _torn(offset, size, reason + " at the end of the file")
        return _corrupt(offset, size, reason)
    if records is not None:
        records.append(payload)
    return end


def _classify_bad_header(f: BinaryIO, offset: int, size: int, length: int, inverted: int,
                         crc: int, max_record_size: int) -> Damage:
    # One flipped byte in the header of the LAST record is a torn tail like a flipped payload
    # byte there; only accept it when one copy of the length lands exactly on the end of the
    # file AND the payload's CRC matches, so a damaged mid-file length never passes for a tail.
    body = offset + _rec.RECORD_HEADER_SIZE
    for candidate in {length, _rec.inverted_length(inverted)}:
        if candidate <= max_record_size and body + candidate == size:
            f.seek(body)
            if _rec.payload_crc(f.read(candidate)) == crc:
                return _torn(offset, size, "damaged length field in the last record")
    if _only_zeros(f, offset, size):
        return _torn(offset, size, f"zero-filled tail ({size - offset} bytes)")
    return _corrupt(offset, size, f"record header has inconsistent length fields "
                                  f"({length} and inverted {inverted:#010x})")


def _only_zeros(f: BinaryIO, start: int, end: int) -> bool:
    f.seek(start)
    position = start
    while position < end:
        chunk = f.read(min(_READ_BUFFER, end - position))
        if not chunk:
            return True
        if chunk.count(0) != len(chunk):
            return False
        position += len(chunk)
    return True


def _torn(offset: int, size: int, reason: str) -> Damage:
    return Damage(DamageKind.TORN, offset, reason, size - offset)


def _corrupt(offset: int, size: int, reason: str) -> Damage:
    return Damage(DamageKind.CORRUPT, offset, reason, size - offset)
