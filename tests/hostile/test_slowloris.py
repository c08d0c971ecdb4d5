"""Slow and stuck peers against a real ``titanctl master`` process.

1,000 connections that send nothing, or trickle a handshake a byte at a time, hold no more than
a slot each: a normal client is served promptly meanwhile (an existing connection and a new one),
and each slow connection is closed at the handshake timeout (``handshake_timeout``), since the
deadline covers the whole handshake however many bytes trickle in. A client that sends requests
and never reads the replies is held back once 1024 of its requests (or 64 MiB of them) are
being answered, and dropped once its unread replies pass the outgoing bounds (``wire.outbox``),
with the master's memory bounded meanwhile.
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import time

import pytest

from support import wait_until
from support.master_process import MasterProcess, NormalClient, handshaken
from titan_actors.wire import codec
from titan_actors.wire.frame import pack_frame
from titan_actors.wire.messages.control import Ping
from titan_actors.wire.messages.handshake import Hello
from titan_actors.wire.roles import Role

HANDSHAKE_TIMEOUT = 2.0
SLOW = 1000
# a Hello too long to finish by a byte a round before the deadline
TRICKLED = pack_frame(*codec.encode_any(Hello(Role.CLIENT, "s" * 20000, os.urandom(32), b"", "1")))


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * SLOW + 256  # our ends and the master's (it inherits the limit)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    made = MasterProcess(tmp_path_factory.mktemp("hostile-slow"),
                         {"TITAN_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT)})
    yield made
    made.stop()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class SlowPeers:
    """``count`` connections: every other one trickles :data:`TRICKLED`, the rest stay silent."""

    def __init__(self, address: tuple[str, int], count: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.opened: dict[socket.socket, float] = {}
        self.lasted: list[float] = []  # seconds each was open when the master closed it
        self.sent = 0
        for n in range(count):
            sock = socket.create_connection(address, timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self.opened[sock] = time.monotonic()
            self.selector.register(sock, selectors.EVENT_READ, n % 2 == 0)

    @property
    def open(self) -> int:
        return len(self.opened)

    def trickle(self) -> None:
        """One more byte on each trickling connection, then note those the master closed."""
        for key in list(self.selector.get_map().values()):
            if key.data and self.sent < len(TRICKLED):
                try:
                    key.fileobj.send(TRICKLED[self.sent:self.sent + 1])
                except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                    pass  # closed: seen below
        self.sent += 1
        for key, _ in self.selector.select(timeout=0):
            try:
                data = key.fileobj.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            assert not data, f"the master answered a slow peer: {data[:100]!r}"
            self._closed(key.fileobj)

    def _closed(self, sock: socket.socket) -> None:
        self.lasted.append(time.monotonic() - self.opened.pop(sock))
        self.selector.unregister(sock)
        sock.close()

    def close(self) -> None:
        for sock in list(self.opened):
            self._closed(sock)
        self.selector.close()


def served_from_scratch(master: MasterProcess) -> float:
    """Seconds for a new client to connect, finish its handshake and get a ping answered."""
    started = time.monotonic()
    with master.client(timeout=10) as client:
        client.ping(b"new")
    return time.monotonic() - started


def slowloris(master: MasterProcess, count: int) -> dict:
    """Open ``count`` slow peers, trickle until the master closed them all; return figures."""
    with NormalClient(master) as normal:
        normal.wait_pings(3)
        baseline = master.usage()  # with the normal client's connection and its first run
        opening = time.monotonic()
        peers = SlowPeers(master.address, count)
        opened_in = time.monotonic() - opening
        try:
            assert wait_until(lambda: master.usage().fds >= baseline.fds + count, timeout=10,
                              what=f"the master to accept {count} connections")
            loaded = master.usage()
            new_client = served_from_scratch(master)
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT + 10
            while peers.open and time.monotonic() < deadline:
                peers.trickle()
                normal.wait_pings(1)
            assert not peers.open, f"{peers.open} slow connections still open"
        finally:
            peers.close()
        worst = normal.worst
    wait_until(lambda: master.usage().fds <= baseline.fds, timeout=10,
               what=f"the master's fds back to {baseline.fds}")
    return {"baseline": baseline, "loaded": loaded, "after": master.usage(),
            "opened_in": opened_in, "new_client": new_client, "worst_ping": worst,
            "pings": normal.pings, "bytes_trickled": peers.sent, "lasted": peers.lasted}


def check_slowloris(figures: dict, count: int) -> None:
    lasted = figures["lasted"]
    print(f"\n{count} slow peers opened in {figures['opened_in']:.2f} s; master "
          f"{figures['baseline']} -> {figures['loaded']} -> {figures['after']}; a new client "
          f"served in {figures['new_client'] * 1000:.0f} ms, worst ping of the running client "
          f"{figures['worst_ping'] * 1000:.0f} ms over {figures['pings']} pings; "
          f"{figures['bytes_trickled']} bytes trickled per peer; closed after "
          f"{min(lasted):.2f}..{max(lasted):.2f} s (handshake timeout {HANDSHAKE_TIMEOUT} s)")
    assert len(lasted) == count
    assert figures["new_client"] < 2.0
    assert figures["worst_ping"] < 2.0
    # opened over opened_in seconds, each closed by its own deadline: none early, none late
    assert min(lasted) > HANDSHAKE_TIMEOUT - 0.5 - figures["opened_in"]
    assert max(lasted) < HANDSHAKE_TIMEOUT + 3.0
    assert figures["after"].rss - figures["baseline"].rss < 40 * 2**20


def test_1000_slow_connections_do_not_keep_a_client_waiting_and_are_closed_in_time(master):
    check_slowloris(slowloris(master, SLOW), SLOW)


@pytest.mark.slow
def test_waves_of_slow_connections_leave_nothing_behind(master):
    first = slowloris(master, SLOW)
    check_slowloris(first, SLOW)
    for _ in range(4):
        check_slowloris(slowloris(master, SLOW), SLOW)
    assert master.usage().rss - first["after"].rss < 20 * 2**20


@pytest.mark.parametrize("payload", [1024, 64 * 1024], ids=["1KiB", "64KiB"])
def test_a_client_that_never_reads_its_replies_is_dropped_with_memory_bounded(master, payload):
    said_before = master.log().count("does not read its replies")  # (the master is shared)
    baseline = master.usage()
    connection = handshaken(master.address, identity="never-reads")
    sock = connection._transport
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    type_id, body = codec.encode_any(Ping(b"p" * payload))
    burst = b"".join(pack_frame(type_id, body, request_id=n + 1) for n in range(100))
    peak, sent, dropped = baseline.rss, 0, False
    with NormalClient(master) as normal:
        started = time.monotonic()
        while time.monotonic() - started < 30:
            try:
                sock.sendall(burst)
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            except TimeoutError:  # the master reads no more: our side is full too
                pass
            sent += 100
            peak = max(peak, master.usage().rss)
        took = time.monotonic() - started
        normal.wait_pings(3)
    connection.close()
    print(f"\nnever-reading client ({payload} B pings): dropped={dropped} after {sent} requests "
          f"in {took:.2f} s; master RSS {baseline.rss >> 20} -> peak {peak >> 20} MiB; worst "
          f"normal ping {normal.worst * 1000:.0f} ms")
    assert dropped, f"the master still reads a client that has not read for {took:.0f} s"
    # at most 64 MiB of requests being answered and 64 MiB of replies, the garbage of the
    # answered ones until the collector runs, and the allocator's slack (measured: up to about
    # 200 MiB; without the bounds it grew by 200 MiB a second until the machine ran out)
    assert peak - baseline.rss < 320 * 2**20
    assert normal.worst < 2.0
    assert master.log().count("does not read its replies") > said_before
