"""The bounds of what one peer makes a server hold (``wire.outbox``), over real sockets (layer 3).

A peer that pipelines requests whose answers come later is read no further once ``outgoing_limit``
of them (or ``backlog_bytes`` of their payload) are being answered, and read again as they are
answered; a peer that never reads its replies is dropped once they pass the outgoing bounds.
Small limits make both show in a few hundred frames.
"""

from __future__ import annotations

import socket

from gevent.event import Event

from support import wait_until
from support.cluster import in_thread
from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.actors.future import Future
from titan_actors.wire import codec
from titan_actors.wire.auth import ClientHandshake
from titan_actors.wire.connection import Connection
from titan_actors.wire.frame import pack_frame
from titan_actors.wire.greeting import client_handshake
from titan_actors.wire.registry import Message, message
from titan_actors.wire.roles import Capability, Role
from titan_actors.wire.server import ActorServer


@message(64301, requires=Capability.QUERY)
class Later(Message):
    """Answered when the test says so."""

    padding: bytes = b""


@message(64302, requires=Capability.QUERY)
class Now(Message):
    """Answered at once, with ``size`` bytes."""

    size: int


class Deferring(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[Future] = []
        self.seen = 0

    @handles(Later)
    def _later(self, msg: Later) -> Future:
        self.seen += 1
        answer = Future("later")
        self.waiting.append(answer)
        return answer

    @handles(Now)
    def _now(self, msg: Now) -> Later:
        return Later(b"r" * msg.size)

    def answer_all(self) -> None:
        waiting, self.waiting = self.waiting, []
        for future in waiting:
            future.set(None)


def serve(limit: int, backlog: int):
    system = ActorSystem()
    actor = Deferring()
    ref = system.spawn(lambda: actor, name="deferring")
    server = ActorServer(ref, endpoint_options={"outgoing_limit": limit, "backlog_bytes": backlog,
                                                "send_timeout": 30.0})
    return system, actor, server.start()


def blast(address, frames: bytes) -> tuple[str, socket.socket]:
    """Handshake on a blocking socket, then send ``frames`` without reading (in a thread).
    Returns "held back" when a send waited half a second (the server reads no more), "dropped"
    when the server closed the connection, else "all sent"; and the socket, still open."""
    def run() -> tuple[str, socket.socket]:
        sock = socket.create_connection(address, timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client_handshake(Connection(sock), ClientHandshake(Role.CLIENT, "blaster"))
        sock.settimeout(0.5)
        try:
            sock.sendall(frames)
        except TimeoutError:
            return "held back", sock
        except OSError:
            return "dropped", sock
        return "all sent", sock
    return in_thread(run)


def requests(message_obj: Message, count: int) -> bytes:
    type_id, payload = codec.encode_any(message_obj)
    return b"".join(pack_frame(type_id, payload, request_id=n + 1) for n in range(count))


def test_requests_being_answered_are_bounded_and_reading_resumes_as_they_are_answered():
    system, actor, server = serve(limit=16, backlog=1 << 20)
    try:
        outcome, sock = blast(server.address, requests(Later(b"x" * 1024), 20000))
        assert outcome == "held back"  # the server stopped reading: our sends timed out
        assert actor.seen == 16, actor.seen
        actor.answer_all()  # answers go out, the reader reads on
        wait_until(lambda: actor.seen == 32, timeout=5, what="16 more requests read")
        sock.close()
    finally:
        server.stop(timeout=2)
        system.stop_all(timeout=5)


def test_request_payloads_being_answered_are_bounded_in_bytes():
    system, actor, server = serve(limit=1000, backlog=256 * 1024)
    try:
        outcome, sock = blast(server.address, requests(Later(b"x" * 65536), 500))
        assert outcome == "held back"
        assert actor.seen == 4, actor.seen  # the 4th request reaches 256 KiB in flight
        sock.close()
    finally:
        server.stop(timeout=2)
        system.stop_all(timeout=5)


def test_a_peer_that_never_reads_its_replies_is_dropped():
    dropped = Event()
    system, actor, server = serve(limit=8, backlog=1 << 20)
    server.on_disconnect = lambda endpoint: dropped.set()
    try:
        outcome, sock = blast(server.address, requests(Now(256 * 1024), 1000))
        assert outcome in ("all sent", "dropped")
        assert dropped.wait(5), "the server still holds a peer that reads none of its replies"
        sock.close()
    finally:
        server.stop(timeout=2)
        system.stop_all(timeout=5)


def test_only_replies_count_against_a_peer_that_does_not_read_them():
    """This side's own frames queued behind backpressure (a worker streaming output to a busy
    master) are not the peer's unread replies: a small reply then still fits."""
    from titan_actors.wire.frame import Flag
    from titan_actors.wire.outbox import Outbox
    box = Outbox(frames=1000, backlog_bytes=1000)
    for _ in range(10):
        box.put((1, b"x" * 400, Flag(0), 0), timeout=0)  # tells: 4,000 bytes, over the limit
    assert box.bytes == 4000 and box.reply_bytes == 0
    assert not box.overfull(10)
    box.put_nowait((2, b"r" * 900, Flag.REPLY, 7))
    assert box.reply_bytes == 900 and box.overfull(200)
    box.written([box.queue.get_nowait() for _ in range(11)])
    assert box.bytes == box.reply_bytes == 0 and not box.overfull(200)
