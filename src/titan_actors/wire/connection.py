"""A framed, optionally sealed connection over any socket-like transport.

No gevent here: handed a ``gevent.socket`` it cooperates with the event loop, handed a plain
``socket`` (the SDK) it blocks. The transport needs ``sendall``, ``recv``, ``close`` and
``getpeername``; ``wire.memory`` provides an in-memory pair with the same interface for tests.

The connection owns one :class:`FrameReader` (one reader at a time) and serialises senders with
an injectable lock, so that sealing counters and frame bytes leave in the same order.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable, Container
from contextlib import AbstractContextManager
from typing import Any

from ..errors import BrokenError, ClosedError, ConnectTimeoutError, EncodeError, FrameAuthError
from . import codec
from .frame import (
    DEFAULT_MAX_PAYLOAD,
    HEADER,
    MAGIC,
    PROTOCOL_VERSION,
    Flag,
    Frame,
    FrameReader,
    pack_frame,
)
from .registry import Message
from .seal import MAC_SIZE, FrameOpener, FrameSealer

# Below glibc's 128 KiB mmap threshold: a recv() buffer at or above it is mmapped and unmapped
# on every call, measured here at ~10 us a call against ~1 us (and half the bulk throughput).
RECV_CHUNK = 64 * 1024
_pack_header = HEADER.pack
CLIENT_TO_SERVER = b"c2s"
SERVER_TO_CLIENT = b"s2c"


def format_address(address: Any) -> str:
    """``host:port`` for an address tuple; the repr of anything else (a Unix or memory peer)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


class RequestIds:
    """Request ids for asks: 1 .. 2**32-1 (0 marks a tell), skipping ids still pending."""

    _LIMIT = 0xFFFFFFFF

    def __init__(self) -> None:
        self._last = 0

    def next(self, pending: Container[int] = ()) -> int:
        while True:
            self._last = self._last % self._LIMIT + 1
            if self._last not in pending:
                return self._last


class Connection:
    """Frames in and out of one transport.

    Args:
        transport: a connected socket-like object.
        max_payload: frames announcing more are refused before their payload is read.
        send_lock: a context manager factory guarding sends (a gevent lock for greenlets).
        send_nowait: sends what the transport takes at once and returns the count, raising
            BlockingIOError when it takes nothing; enables :meth:`try_send_batch` (None: off).
    """

    def __init__(self, transport: Any, *, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 send_lock: AbstractContextManager | None = None,
                 send_nowait: Callable[[bytes | memoryview], int] | None = None) -> None:
        self._transport = transport
        self._send_nowait = send_nowait
        # one send() usually takes a whole batch; sendall (a buffer-size query and a chunk
        # loop in gevent) only finishes what it left. Transports without send use sendall.
        self._send_some = getattr(transport, "send", None)
        self._reader = FrameReader(max_payload)
        self.max_payload = max_payload
        self._ready: list[Frame] = []
        self._send_lock = send_lock or contextlib.nullcontext()
        self._sealer: FrameSealer | None = None
        self._opener: FrameOpener | None = None
        self._closed = False
        self._broken: BaseException | None = None
        try:
            self.peer_address = format_address(transport.getpeername())
        except OSError:
            self.peer_address = "unknown"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sealed(self) -> bool:
        return self._sealer is not None

    def enable_sealing(self, session_key: bytes, *, is_client: bool) -> None:
        """Seal every frame from now on (call right after the handshake, on both ends)."""
        out_label, in_label = ((CLIENT_TO_SERVER, SERVER_TO_CLIENT) if is_client
                               else (SERVER_TO_CLIENT, CLIENT_TO_SERVER))
        self._sealer = FrameSealer(session_key, out_label)
        self._opener = FrameOpener(session_key, in_label)

    def send(self, message: Message, *, flags: Flag = Flag(0), request_id: int = 0) -> None:
        """Encode and send one message.

        Raises:
            ClosedError: we closed this connection.
            BrokenError: the peer closed it or the transport failed.
            EncodeError: the message cannot be encoded (nothing was sent).
        """
        type_id, payload = codec.encode_any(message)
        self.check_size(payload, type(message).__name__)
        self.send_raw(type_id, payload, flags=flags, request_id=request_id)

    def check_size(self, payload: bytes, what: str) -> None:
        """Raise EncodeError when a frame of ``payload`` (``what``: its message type) is above
        the frame limit: the peer, which reads ``max_frame_size`` too, would refuse it and
        close the connection, so it is not sent at all."""
        limit = self.max_payload - MAC_SIZE  # room for the seal, sealed or not
        if len(payload) > limit:
            raise EncodeError(f"{what} is {len(payload)} bytes, above the frame limit of {limit} "
                              "bytes: nothing was sent (ask for less, or raise max_frame_size "
                              "on both ends)")

    def send_raw(self, type_id: int, payload: bytes, *, flags: Flag = Flag(0),
                 request_id: int = 0) -> None:
        """Send one frame of already encoded payload (sealed when sealing is on)."""
        self._check_open()
        with self._send_lock:
            if self._sealer is not None:
                flags, payload = self._sealer.seal(type_id, flags, request_id, payload)
            self._write(pack_frame(type_id, payload, flags=flags, request_id=request_id))

    def _write(self, data: bytes) -> None:
        try:
            if self._send_some is None:
                self._transport.sendall(data)
            else:
                sent = self._send_some(data)
                if sent < len(data):
                    self._transport.sendall(memoryview(data)[sent:])
        except OSError as error:
            self._failed_send(error)

    def _failed_send(self, error: OSError) -> None:
        """Raise what a failed write means: ClosedError (we closed it) or BrokenError."""
        if isinstance(error, TimeoutError):
            self._fail(BrokenError(f"sending to {self.peer_address} timed out"), error)
        if self._closed and self._broken is None:
            raise ClosedError(f"the connection to {self.peer_address} was closed by this "
                              "side") from error
        self._fail(BrokenError(f"connection to {self.peer_address} broke while sending: "
                               f"{error}"), error)

    def send_batch(self, frames: list[tuple[int | None, bytes, Flag, int]]) -> None:
        """Send several ``(type_id, payload, flags, request_id)`` frames with one write. An item
        whose type id is None carries bytes already framed: what :meth:`try_send_batch` left.

        Raises EncodeError (nothing is sent) when a header field does not fit, and the errors
        of :meth:`send`.
        """
        self._check_open()
        with self._send_lock:
            self._write(self._frame(frames))

    @property
    def can_send_nowait(self) -> bool:
        """Whether :meth:`try_send_batch` can write without waiting (see ``send_nowait``)."""
        return self._send_nowait is not None

    def try_send_batch(self, frames: list[tuple[int, bytes, Flag, int]]) -> bytes:
        """Frame ``frames`` and write what the transport takes without waiting.

        Only for a caller that knows no other send is in progress (it serialises its senders
        itself). Returns the framed bytes that did not fit (``b""`` when all did): the caller
        must send them, with :meth:`send_batch` as an item of type id None, before any other
        frame. Raises what :meth:`send_batch` raises; RuntimeError without ``send_nowait``.
        """
        if self._send_nowait is None:
            raise RuntimeError("this connection was built without send_nowait")
        self._check_open()
        data = self._frame(frames)
        try:
            sent = self._send_nowait(data)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._failed_send(error)
        return data[sent:] if sent < len(data) else b""

    def _frame(self, frames: list[tuple[int | None, bytes, Flag, int]]) -> bytes:
        """The bytes of ``frames``, sealed when sealing is on (advances the seal counter)."""
        sealer = self._sealer
        parts = []
        append = parts.append
        try:
            for type_id, payload, flags, request_id in frames:
                if type_id is None:  # already framed (and sealed)
                    append(payload)
                    continue
                if sealer is not None:
                    flags, payload = sealer.seal(type_id, flags, request_id, payload)
                append(_pack_header(MAGIC, PROTOCOL_VERSION, flags, type_id, request_id,
                                    len(payload)))
                append(payload)
        except struct.error:
            for type_id, payload, flags, request_id in frames:  # raises, naming the field
                if type_id is not None:
                    pack_frame(type_id, payload, flags=flags, request_id=request_id)
            raise
        return b"".join(parts)

    def recv(self) -> Frame:
        """Read the next frame (unsealed). Only one greenlet or thread may read.

        Raises:
            BrokenError: the peer closed the connection or the transport failed.
            ConnectTimeoutError: the transport's timeout expired (blocking sockets).
            ProtocolError: the bytes are not a valid frame (the reader stays failed: close).
            FrameAuthError: a sealed frame failed its check (close the connection).
        """
        while not self._ready:
            self._fill()
        frame = self._ready.pop(0)
        if self._opener is not None:
            frame = self._opener.open(frame)
        return frame

    def recv_batch(self) -> list[Frame]:
        """Every frame that has arrived (unsealed), in order: at least one, reading only when
        none has. Only one greenlet or thread may read. Raises what :meth:`recv` raises; when a
        frame fails its seal check, the frames before it are returned and the next call raises.
        """
        while not self._ready:
            self._fill()
        frames, self._ready = self._ready, []
        if self._opener is None:
            return frames
        opened: list[Frame] = []
        for index, frame in enumerate(frames):
            try:
                opened.append(self._opener.open(frame))
            except FrameAuthError:
                if not opened:
                    raise
                self._ready = frames[index:]  # raised by the next call
                break
        return opened

    def _fill(self) -> None:
        """Read once from the transport and buffer the frames that completes."""
        self._check_open()
        try:
            data = self._transport.recv(RECV_CHUNK)
        except TimeoutError as error:
            raise ConnectTimeoutError(
                f"no answer from {self.peer_address} within the timeout") from error
        except OSError as error:
            if self._closed and self._broken is None:
                raise ClosedError(f"the connection to {self.peer_address} was closed by "
                                  "this side") from error
            self._fail(BrokenError(f"connection to {self.peer_address} broke: {error}"),
                       error)
        if not data:
            if self._closed and self._broken is None:
                raise ClosedError(f"the connection to {self.peer_address} was closed by "
                                  "this side")
            self._fail(BrokenError(f"{self.peer_address} closed the connection"))
        self._ready.extend(self._reader.feed(data))

    def recv_message(self) -> tuple[Message | None, Frame]:
        """Read the next frame and decode its message (None for the empty reply)."""
        frame = self.recv()
        if frame.type_id == 0:
            return None, frame
        return codec.decode_frame_message(frame), frame

    def close(self) -> None:
        """Close the transport. Further sends raise ClosedError; closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._transport.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._transport.close()

    def _check_open(self) -> None:
        if self._broken is not None:
            raise BrokenError(str(self._broken))
        if self._closed:
            raise ClosedError(f"the connection to {self.peer_address} was closed by this side")

    def _fail(self, error: BrokenError, cause: BaseException | None = None) -> None:
        self._broken = error
        self.close()
        raise error from cause
