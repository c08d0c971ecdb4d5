"""Frame sealing: a sequence number and a MAC on every frame after the handshake.

Used on connections to peers off loopback (unless they run over TLS) and whenever
``seal_frames=always``. Each direction has its own key and its own counter, starting at 0; the
counter is implicit (both ends count), so a replayed, reordered, dropped, reflected or injected
frame fails the MAC check. The MAC covers the counter, the type id, the flags, the request id and
the payload, and travels as the last 32 bytes of the payload with the SEALED flag set.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from ..errors import FrameAuthError
from .frame import Flag, Frame

MAC_SIZE = 32
_FIELDS = struct.Struct("!QHBI")


def _direction_key(session_key: bytes, label: bytes) -> bytes:
    return hmac.new(session_key, b"titan-actors/v1/seal/" + label, hashlib.sha256).digest()


class FrameSealer:
    """Seals outgoing frames for one direction of one connection."""

    def __init__(self, session_key: bytes, label: bytes) -> None:
        self._key = _direction_key(session_key, label)
        self._seq = 0

    def seal(self, type_id: int, flags: Flag, request_id: int,
             payload: bytes) -> tuple[Flag, bytes]:
        """Return the flags and payload to send: SEALED added, the MAC appended."""
        flags = flags | Flag.SEALED
        mac = hmac.new(self._key, _FIELDS.pack(self._seq, type_id, flags, request_id),
                       hashlib.sha256)
        mac.update(payload)
        self._seq += 1
        return flags, payload + mac.digest()


class FrameOpener:
    """Checks and strips the MAC of incoming frames for one direction of one connection."""

    def __init__(self, session_key: bytes, label: bytes) -> None:
        self._key = _direction_key(session_key, label)
        self._seq = 0

    def open(self, frame: Frame) -> Frame:
        """Return the frame without its MAC.

        Raises:
            FrameAuthError: the frame is not sealed, or its MAC does not match the next sequence
            number (forged, altered, replayed, reordered or dropped frames all end here).
        """
        if not frame.flags & Flag.SEALED or len(frame.payload) < MAC_SIZE:
            raise FrameAuthError("an unsealed frame arrived on a sealed connection")
        body, tag = frame.payload[:-MAC_SIZE], frame.payload[-MAC_SIZE:]
        mac = hmac.new(self._key, _FIELDS.pack(self._seq, frame.type_id, frame.flags,
                                               frame.request_id), hashlib.sha256)
        mac.update(body)
        if not hmac.compare_digest(mac.digest(), bytes(tag)):
            raise FrameAuthError(f"frame {self._seq} failed its MAC check: forged, altered or "
                                 "replayed")
        self._seq += 1
        return Frame(frame.type_id, frame.flags & ~Flag.SEALED, frame.request_id, bytes(body))
