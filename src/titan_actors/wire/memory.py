"""An in-memory, socket-like transport pair on gevent, for tests of two actors in one process.

It has the interface :class:`~titan_actors.wire.connection.Connection` uses (``sendall``,
``recv``, ``close``, ``shutdown``, ``getpeername``) and the same behaviour that matters:
bytes arrive in order and may be split anywhere, a full buffer makes ``sendall`` wait
(backpressure), a close is seen by the peer as end of stream, and a use after close raises
OSError.
"""

from __future__ import annotations

import errno
from collections import deque

from gevent.event import Event


class MemoryTransport:
    """One end of an in-memory pair; build both with :func:`memory_pair`."""

    def __init__(self, name: str, capacity: int, chunk: int) -> None:
        self._name = name
        self._capacity = capacity
        self._chunk = chunk
        self._inbox: deque[bytes] = deque()
        self._buffered = 0
        self._readable = Event()
        self._writable = Event()
        self._writable.set()
        self._eof = False
        self._closed = False
        self.peer: MemoryTransport | None = None

    def getpeername(self) -> str:
        return f"memory:{self.peer._name if self.peer else '?'}"

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closed:
                raise OSError(errno.EBADF, "transport closed by this side")
            peer = self.peer
            if peer._closed:
                raise OSError(errno.EPIPE, "peer closed the transport")
            room = peer._capacity - peer._buffered
            if room <= 0:
                peer._writable.clear()
                peer._writable.wait()
                continue
            # deliver in small pieces so that readers see frames split at odd offsets
            piece = bytes(view[:min(room, self._chunk)])
            view = view[len(piece):]
            peer._inbox.append(piece)
            peer._buffered += len(piece)
            peer._readable.set()

    def recv(self, size: int) -> bytes:
        while True:
            if self._closed:
                raise OSError(errno.EBADF, "transport closed by this side")
            if self._inbox:
                piece = self._inbox.popleft()
                if len(piece) > size:
                    self._inbox.appendleft(piece[size:])
                    piece = piece[:size]
                self._buffered -= len(piece)
                self._writable.set()
                return piece
            if self._eof:
                return b""
            self._readable.clear()
            self._readable.wait()

    def shutdown(self, how: int) -> None:
        self._notify_peer_eof()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readable.set()
        self._writable.set()
        self._notify_peer_eof()

    def _notify_peer_eof(self) -> None:
        if self.peer is not None:
            self.peer._eof = True
            self.peer._readable.set()
            self.peer._writable.set()


def memory_pair(capacity: int = 256 * 1024, chunk: int = 7919) -> tuple[MemoryTransport,
                                                                         MemoryTransport]:
    """Two connected in-memory transports, each buffering up to ``capacity`` bytes inbound.

    ``chunk`` (a prime by default) is the largest piece delivered at once, so frames arrive split
    at varying offsets, as over TCP.
    """
    left, right = MemoryTransport("left", capacity, chunk), MemoryTransport("right", capacity,
                                                                            chunk)
    left.peer, right.peer = right, left
    return left, right
