"""Framing: one fixed header in front of every payload, and an incremental reader.

A frame is ``HEADER`` (14 bytes, network byte order) followed by ``length`` payload bytes::

    magic   2s  b"TA"
    version B   PROTOCOL_VERSION
    flags   B   Flag bits (REPLY, ERROR, SEALED)
    type id H   the message type id (0: no message, a None reply)
    request I   pairs an ``ask`` with its reply (0: none)
    length  I   payload length in bytes

The header is checked as soon as its bytes are there, before any payload is buffered: wrong magic,
another protocol version, undefined flag bits or a length above the configured maximum raise a
:class:`~titan_actors.errors.ProtocolError` subclass at once. This module knows nothing about
payloads (``wire.codec`` does) and imports no gevent: it is pure, bytes in and frames out.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from titan_actors.errors import (
    BadMagicError,
    EncodeError,
    FrameTooLargeError,
    IncompleteFrameError,
    ProtocolError,
    TrailingFrameBytesError,
    UnknownFlagsError,
    VersionMismatchError,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "NO_FLAGS",
    "PROTOCOL_VERSION",
    "Flag",
    "Frame",
    "FrameReader",
    "decode_frame",
    "pack_frame",
]

MAGIC = b"TA"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("!2sBBHII")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024


class Flag(enum.IntFlag):
    """Header flag bits."""

    REPLY = 1    # this frame answers the request with the same request id
    ERROR = 2    # the payload describes an error raised by the handler
    SEALED = 4   # the last 32 bytes of the payload are a MAC trailer (see the sealing module)


NO_FLAGS = Flag(0)
_KNOWN_FLAGS = int(Flag.REPLY | Flag.ERROR | Flag.SEALED)
# Flag(bits) costs an enum lookup per frame; the 8 valid combinations are prebuilt once.
_FLAGS = tuple(Flag(bits) for bits in range(_KNOWN_FLAGS + 1))


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: header fields and the raw payload (still encoded, maybe sealed)."""

    type_id: int
    flags: Flag
    request_id: int
    payload: bytes


def pack_frame(type_id: int, payload: bytes, *, flags: Flag = NO_FLAGS, request_id: int = 0,
               version: int = PROTOCOL_VERSION) -> bytes:
    """Return the header for ``payload`` followed by the payload.

    ``version`` exists so tests can forge frames of other protocol versions.
    Raises EncodeError when a header field does not fit its width (type id u16, request id and
    length u32, flags and version u8).
    """
    try:
        return HEADER.pack(MAGIC, version, flags, type_id, request_id, len(payload)) + payload
    except struct.error as e:
        raise EncodeError(f"frame header out of range (type id {type_id!r}, flags {flags!r}, "
                          f"request id {request_id!r}, payload {len(payload)} bytes): {e}") from e


def _check_prefix(buf: bytes | bytearray | memoryview, pos: int) -> None:
    """Check the magic and version of a header that is not complete yet (fail early)."""
    have = len(buf) - pos
    if have >= 2 and buf[pos:pos + 2] != MAGIC:
        raise _bad_magic(bytes(buf[pos:pos + 2]))
    if have >= 3 and buf[pos + 2] != PROTOCOL_VERSION:
        raise _version_mismatch(buf[pos + 2])


def _bad_magic(magic: bytes) -> BadMagicError:
    return BadMagicError(f"frame starts with {magic!r}, expected {MAGIC!r}: "
                         "the peer is not speaking the Titan protocol")


def _version_mismatch(version: int) -> VersionMismatchError:
    err = VersionMismatchError(f"peer speaks protocol version {version}, "
                               f"this side speaks {PROTOCOL_VERSION}")
    err.peer_version = version  # type: ignore[attr-defined]
    err.local_version = PROTOCOL_VERSION  # type: ignore[attr-defined]
    return err


def _check_header(magic: bytes, version: int, flags: int, length: int, max_payload: int) -> None:
    if magic != MAGIC:
        raise _bad_magic(magic)
    if version != PROTOCOL_VERSION:
        raise _version_mismatch(version)
    if flags & ~_KNOWN_FLAGS:
        raise UnknownFlagsError(f"frame sets undefined flag bits {flags & ~_KNOWN_FLAGS:#04x} "
                                f"(protocol version {PROTOCOL_VERSION} defines "
                                f"{_KNOWN_FLAGS:#04x})")
    if length > max_payload:
        raise FrameTooLargeError(f"frame announces a payload of {length} bytes, "
                                 f"above the limit of {max_payload} bytes")


def decode_frame(data: bytes | bytearray | memoryview,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """Decode exactly one frame from ``data``.

    Raises IncompleteFrameError when ``data`` is a strict prefix of a frame,
    TrailingFrameBytesError when bytes follow the frame, and BadMagicError,
    VersionMismatchError, UnknownFlagsError or FrameTooLargeError for a bad header.
    """
    if len(data) < HEADER_SIZE:
        _check_prefix(data, 0)
        raise IncompleteFrameError(f"{len(data)} bytes, a frame header needs {HEADER_SIZE}")
    magic, version, flags, type_id, request_id, length = HEADER.unpack_from(data, 0)
    _check_header(magic, version, flags, length, max_payload)
    end = HEADER_SIZE + length
    if len(data) < end:
        raise IncompleteFrameError(f"{len(data)} bytes, the frame needs {end}")
    if len(data) > end:
        raise TrailingFrameBytesError(f"{len(data) - end} bytes follow a frame of {end} bytes")
    return Frame(type_id, _FLAGS[flags], request_id, bytes(data[HEADER_SIZE:end]))


class FrameReader:
    """Incremental frame decoder for a byte stream: feed it what the socket gave, get frames.

    Every complete frame in the buffer is returned by each :meth:`feed`. A header is checked as
    soon as its 14 bytes are there (magic and version as soon as 2 and 3 bytes are), so a bad or
    oversized frame is refused before its payload is buffered. After an error the reader is
    poisoned: every later ``feed`` raises the same error, since the stream can no longer be
    trusted to be aligned on frame boundaries. Frames completed earlier in the failing call are
    discarded with it (the caller closes the connection either way).
    """

    __slots__ = ("_buf", "_error", "_max_payload")

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max_payload = max_payload
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held that do not form a complete frame yet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Append ``data`` and return the frames it completed, in order (maybe none).

        Raises a ProtocolError subclass for a bad header, and again on every later call.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        try:
            # One memoryview per call: payloads are copied out once, straight into bytes.
            with memoryview(buf) as view:
                while end - pos >= HEADER_SIZE:
                    magic, version, flags, type_id, request_id, length = \
                        HEADER.unpack_from(view, pos)
                    _check_header(magic, version, flags, length, self._max_payload)
                    start = pos + HEADER_SIZE
                    if end - start < length:
                        break
                    pos = start + length
                    frames.append(Frame(type_id, _FLAGS[flags], request_id,
                                        bytes(view[start:pos])))
                else:
                    _check_prefix(view, pos)
        except ProtocolError as e:
            self._error = e
            buf.clear()
            raise
        # Deleting from the front of a bytearray is cheap in CPython (it moves a start offset).
        del buf[:pos]
        return frames
