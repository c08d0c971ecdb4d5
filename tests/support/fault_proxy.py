"""A TCP proxy that injects network faults between a worker and its master, switched at run time.

The proxy runs in a native thread of the (never monkey-patched) test process, on a gevent hub
of its own: the test's thread only posts mode changes to that hub
(``loop.run_callback_threadsafe``) and reads counters under a lock. Workers are pointed at
:attr:`FaultProxy.port` (``--master 127.0.0.1:PORT``); each connection they open is forwarded to
the target by two pumps, one per direction (``UP``: client to target, worker to master;
``DOWN``: target to client). Modes, applied to existing and new connections alike:

* ``pass_through()`` (the default, and :meth:`heal`): bytes and closes cross both ways.
* ``blackhole()``: nothing crosses; bytes are read and discarded both ways (a path that loses
  every segment), and a close is not passed on. New connections are accepted and held: not
  dialled, not read.
* ``drop(UP|DOWN)``: bytes (and the close) of that direction are read and discarded; the other
  direction passes.
* ``delay(ms)``: each chunk waits ``ms`` milliseconds before it is forwarded (order is kept).
* ``reset_after(n)``: each connection forwards ``n`` more bytes (both directions together), then
  both of its sockets are reset (RST, by closing with ``SO_LINGER`` 0).
* ``half_open()``: the pumps stop reading and forwarding, and the sockets stay open: a peer
  that died without a FIN. The kernel keeps what was sent meanwhile, so :meth:`heal` delivers
  it intact (as TCP's retransmissions would after a short outage).

A connection that lost bytes (blackhole, drop) can never carry its stream on: when the mode
goes back to one that forwards, it is reset on both sides, as a peer's stack resets a
connection it no longer knows. A close that was held (half-open, or withheld by a drop) is
passed on at the heal. An error or a close on one side, in a mode that forwards it, closes the
other side too.
"""

from __future__ import annotations

import enum
import socket as stdlib_socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import gevent
from gevent import socket
from gevent.event import Event

from support import wait_until

_CHUNK = 65536


class Direction(enum.Enum):
    UP = "client->target"    # worker -> master
    DOWN = "target->client"  # master -> worker


class _Mode(enum.Enum):
    PASS = "pass"
    BLACKHOLE = "blackhole"
    DROP = "drop"
    DELAY = "delay"
    RESET = "reset"
    HALF_OPEN = "half-open"


@dataclass
class Stats:
    """Counters, read under the proxy's lock (:meth:`FaultProxy.stats`)."""

    accepted: int = 0      # connections accepted
    dialled: int = 0       # connections forwarded to the target
    resets: int = 0        # connections reset by the proxy (reset_after, or a heal)
    forwarded_up: int = 0
    forwarded_down: int = 0
    discarded: int = 0     # bytes read and dropped


class _Conn:
    """One proxied connection (touched only by the proxy's hub)."""

    def __init__(self, client: socket.socket) -> None:
        self.sockets: dict[Direction, socket.socket] = {Direction.UP: client}  # by source
        self.budget = 0          # bytes left before a reset (reset mode)
        self.tainted = False     # lost bytes: reset it when the mode forwards again
        self.held_eof: set[Direction] = set()
        self.dialling = False    # its upstream is dialled (or being dialled): once only
        self.closed = False
        self.pumps: list = []


class FaultProxy:
    """The proxy (see the module docstring). ``with FaultProxy(target) as proxy:`` or
    :meth:`start` / :meth:`stop`."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._stats = Stats()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._loop = None
        self._error: BaseException | None = None
        self.failures: list[str] = []  # greenlets of the proxy that raised (stop() fails then)
        # hub-side state
        self._mode = _Mode.PASS
        self._dropped: Direction | None = None
        self._delay = 0.0
        self._budget = 0
        self._changed: Event | None = None
        self._stop: Event | None = None
        self._conns: set[_Conn] = set()

    # -- the test's side ----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise AssertionError(f"the fault proxy did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection; wait for the proxy's thread. Fails when a
        greenlet of the proxy raised (a bug of the proxy must not pass for a fault)."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.run_callback_threadsafe(self._stop.set)
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "the fault proxy's thread did not stop"
        assert not self.failures, f"the fault proxy failed: {self.failures}"

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def pass_through(self) -> None:
        self._post(_Mode.PASS)

    heal = pass_through

    def blackhole(self) -> None:
        self._post(_Mode.BLACKHOLE)

    def drop(self, direction: Direction) -> None:
        self._post(_Mode.DROP, dropped=direction)

    def delay(self, milliseconds: float) -> None:
        self._post(_Mode.DELAY, delay=milliseconds / 1000.0)

    def reset_after(self, nbytes: int) -> None:
        self._post(_Mode.RESET, budget=nbytes)

    def half_open(self) -> None:
        self._post(_Mode.HALF_OPEN)

    def stats(self) -> Stats:
        with self._lock:
            return Stats(**vars(self._stats))

    def wait_stats(self, predicate: Callable[[Stats], bool], timeout: float = 10.0,
                   what: str = "") -> Stats:
        """Wait until ``predicate(stats)`` (the counters belong to another thread: polled)."""
        def met() -> Stats | None:
            stats = self.stats()
            return stats if predicate(stats) else None
        return wait_until(met, timeout, what=what or str(predicate))

    def _post(self, mode: _Mode, *, dropped: Direction | None = None, delay: float = 0.0,
              budget: int = 0) -> None:
        done = threading.Event()

        def apply() -> None:
            self._apply(mode, dropped, delay, budget)
            done.set()
        self._loop.run_callback_threadsafe(apply)
        assert done.wait(10), "the fault proxy did not take the new mode"

    # -- the proxy's hub ----------------------------------------------------------------------

    def _run(self) -> None:
        hub = gevent.get_hub()  # a hub of this thread's own
        try:
            self._loop = hub.loop
            self._changed, self._stop = Event(), Event()
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, 0))
            listener.listen(64)
            self.port = listener.getsockname()[1]
            acceptor = self._spawn(self._accept_loop, listener)
        except BaseException as error:
            self._error = error
            self._ready.set()
            raise
        self._ready.set()
        self._stop.wait()
        acceptor.kill()
        listener.close()
        for conn in list(self._conns):
            self._close(conn, reset=False)
        hub.destroy(destroy_loop=True)

    def _apply(self, mode: _Mode, dropped: Direction | None, delay: float, budget: int) -> None:
        self._mode, self._dropped, self._delay, self._budget = mode, dropped, delay, budget
        for conn in list(self._conns):
            conn.budget = budget
            if mode is _Mode.RESET and budget <= 0:
                self._close(conn, reset=True)
            elif self._forwards(Direction.UP) and self._forwards(Direction.DOWN):
                if conn.tainted:
                    self._close(conn, reset=True)
                elif conn.held_eof:
                    self._close(conn, reset=False)
                elif not conn.dialling:
                    self._start_dial(conn)  # held while blackholed: dial it now
        changed, self._changed = self._changed, Event()
        changed.set()

    def _spawn(self, function: Callable, *args) -> gevent.Greenlet:
        greenlet = gevent.spawn(function, *args)
        greenlet.link_exception(lambda done: self.failures.append(repr(done.exception)))
        return greenlet

    def _forwards(self, direction: Direction) -> bool:
        return not (self._mode in (_Mode.BLACKHOLE, _Mode.HALF_OPEN)
                    or self._mode is _Mode.DROP and self._dropped is direction)

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            client, _ = listener.accept()
            conn = _Conn(client)
            conn.budget = self._budget
            self._conns.add(conn)
            with self._lock:
                self._stats.accepted += 1
            if self._mode not in (_Mode.BLACKHOLE, _Mode.HALF_OPEN):
                self._start_dial(conn)

    def _start_dial(self, conn: _Conn) -> None:
        conn.dialling = True
        self._spawn(self._dial, conn)

    def _dial(self, conn: _Conn) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._close(conn, reset=True)
            return
        if conn.closed:
            upstream.close()
            return
        upstream.settimeout(None)
        conn.sockets[Direction.DOWN] = upstream
        with self._lock:
            self._stats.dialled += 1
        conn.pumps = [self._spawn(self._pump, conn, d) for d in Direction]

    def _pump(self, conn: _Conn, direction: Direction) -> None:
        """Read from the source of ``direction``, forward by the mode of the moment."""
        source = conn.sockets[direction]
        while not conn.closed:
            while self._mode is _Mode.HALF_OPEN:  # stop reading: the kernel keeps the bytes
                self._changed.wait()
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = None  # reset by the peer: like a close, but passed on as a reset
            if conn.closed:
                return
            while self._mode is _Mode.HALF_OPEN:  # read just before: hold it, keep the order
                self._changed.wait()
            if not data:
                self._source_ended(conn, direction, reset=data is None)
                return
            self._forward(conn, direction, data)

    def _source_ended(self, conn: _Conn, direction: Direction, reset: bool) -> None:
        if self._forwards(direction):
            self._close(conn, reset=reset)
        else:  # the close is lost with the bytes: passed on (as a reset) at the heal
            conn.held_eof.add(direction)
            conn.tainted = True

    def _forward(self, conn: _Conn, direction: Direction, data: bytes) -> None:
        if not self._forwards(direction):
            conn.tainted = True
            with self._lock:
                self._stats.discarded += len(data)
            return
        if self._mode is _Mode.DELAY:
            gevent.sleep(self._delay)  # the fault itself: a slow path
        reset = False
        if self._mode is _Mode.RESET:
            if len(data) >= conn.budget:
                data, reset = data[:conn.budget], True
            conn.budget -= len(data)
        target = conn.sockets[Direction.DOWN if direction is Direction.UP else Direction.UP]
        try:
            if data:
                target.sendall(data)
        except OSError:
            self._close(conn, reset=True)
            return
        with self._lock:
            if direction is Direction.UP:
                self._stats.forwarded_up += len(data)
            else:
                self._stats.forwarded_down += len(data)
        if reset:
            self._close(conn, reset=True)

    def _close(self, conn: _Conn, reset: bool) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        for sock in conn.sockets.values():
            try:
                if reset:
                    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass
        if reset:
            with self._lock:
                self._stats.resets += 1
        current = gevent.getcurrent()
        for pump in conn.pumps:
            if pump is not current:
                pump.kill(block=False)
