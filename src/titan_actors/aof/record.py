"""The on-disk format of an append-only file: a file header, then length-checked CRC'd records.

Pure: bytes in, values out; no files are opened here.

Layout::

    file   := MAGIC (8 bytes, b"TITANAOF") | version (u16, network order) | record*
    record := length (u32) | length ^ 0xFFFFFFFF (u32) | crc32(payload) (u32) | payload

The inverted copy of the length lets a reader tell a damaged length (the two disagree) from a
write that stopped early (the header is consistent but the payload runs past the end of the file).
Payloads are opaque: each owner (master, store) encodes its own messages.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from titan_actors.errors import AofRecordTooLargeError

MAGIC: Final = b"TITANAOF"
FORMAT_VERSION: Final = 1
#: Format versions this release can read.
SUPPORTED_VERSIONS: Final = frozenset({1})

FILE_HEADER: Final = struct.Struct("!8sH")
RECORD_HEADER: Final = struct.Struct("!III")
FILE_HEADER_SIZE: Final = FILE_HEADER.size
RECORD_HEADER_SIZE: Final = RECORD_HEADER.size

#: ``length ^ inverted_length`` of every consistent record header.
LENGTH_MASK: Final = 0xFFFFFFFF
#: Largest payload accepted by default, on write and on replay (checked before allocating).
DEFAULT_MAX_RECORD_SIZE: Final = 16 * 1024 * 1024


def encode_file_header(version: int = FORMAT_VERSION) -> bytes:
    """Return the bytes that start every append-only file of format ``version``."""
    return FILE_HEADER.pack(MAGIC, version)


def decode_file_header(data: bytes) -> tuple[bytes, int]:
    """Return ``(magic, version)`` from the first ``FILE_HEADER_SIZE`` bytes of ``data``.

    The caller compares them with :data:`MAGIC` and :data:`SUPPORTED_VERSIONS`; this function only
    unpacks. Raises ``struct.error`` if ``data`` is shorter than the header.
    """
    magic, version = FILE_HEADER.unpack_from(data)
    return magic, version


def encode_record(payload: bytes, max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> bytes:
    """Return ``payload`` framed as one record (header then payload).

    Raises:
        AofRecordTooLargeError: the payload is longer than ``max_record_size``; nothing is
            written, so a reader with the same maximum can always read what a writer wrote.
    """
    size = len(payload)
    if size > max_record_size:
        raise AofRecordTooLargeError(
            f"record of {size} bytes exceeds the maximum record size of {max_record_size} bytes")
    return RECORD_HEADER.pack(size, size ^ LENGTH_MASK, zlib.crc32(payload)) + payload


def decode_record_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Return ``(length, inverted_length, crc)`` unpacked from ``data`` at ``offset``."""
    length, inverted, crc = RECORD_HEADER.unpack_from(data, offset)
    return length, inverted, crc


def header_is_consistent(length: int, inverted: int) -> bool:
    """True when the two copies of a record's length agree (the length was not damaged)."""
    return length ^ inverted == LENGTH_MASK


def inverted_length(inverted: int) -> int:
    """Return the length that the inverted copy ``inverted`` stands for."""
    return inverted ^ LENGTH_MASK


#: ``payload_crc(payload)``: the CRC-32 stored in a record's header for ``payload`` (zlib's own
#: function, not a wrapper: replay calls it once per record).
payload_crc: Final = zlib.crc32
