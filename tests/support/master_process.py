"""A real ``titanctl master`` process to attack over raw sockets, and a normal client beside it.

:class:`MasterProcess` starts the master on port 0 over a scratch data directory (readiness by
its ready file), measures it with psutil (open fds, RSS, threads) and stops it at the end,
checking that it exits on SIGTERM and leaves no child behind. :func:`raw` opens a plain socket
to it; :func:`handshaken` one that went through the handshake, as a :class:`Connection`;
:func:`read_until_closed` reads what the master says before it closes a connection.
:class:`NormalClient` pings and submits from a thread the whole time, so that a test can show
that the other clients were served while it attacked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from support.processes import TITANCTL, stop_and_check, wait_for_file
from titan_actors.client import MasterClient
from titan_actors.scheduler import JobSpec, RunSpec
from titan_actors.wire.auth import ClientHandshake
from titan_actors.wire.connection import Connection
from titan_actors.wire.greeting import client_handshake
from titan_actors.wire.roles import Role


@dataclass(frozen=True)
class Usage:
    """What the master holds: open fds, resident memory (bytes), threads."""

    fds: int
    rss: int
    threads: int

    def __str__(self) -> str:
        return f"{self.fds} fds, {self.rss / 2**20:.0f} MiB RSS, {self.threads} threads"


class MasterProcess:
    """``titanctl master --port 0`` in the background (see the module docstring)."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        ready = root / "master.ready"
        self.log_path = root / "master.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [TITANCTL, "master", "--port", "0", "--data-dir", str(root), "--ready-file",
                 str(ready)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "TITAN_LOG_LEVEL": "info", **(env or {})})
        info = json.loads(wait_for_file(ready, self.process))
        self.host, self.port = info["host"], int(info["port"])
        self.psutil = psutil.Process(self.process.pid)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def usage(self) -> Usage:
        return Usage(self.psutil.num_fds(), self.psutil.memory_info().rss,
                     self.psutil.num_threads())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, timeout: float = 10) -> MasterClient:
        return MasterClient(self.host, self.port, timeout=timeout, identity="test")

    def stop(self) -> None:
        assert self.process.poll() is None, f"the master died:\n{self.log()[-3000:]}"
        stop_and_check(self.process, timeout=20)


def raw(address: tuple[str, int], timeout: float = 10) -> socket.socket:
    """A plain TCP connection to the master (no handshake)."""
    sock = socket.create_connection(address, timeout=timeout)
    sock.settimeout(timeout)
    return sock


def handshaken(address: tuple[str, int], identity: str = "hostile",
               timeout: float = 10) -> Connection:
    """A connection that completed the handshake as a client, on a blocking socket."""
    sock = raw(address, timeout)
    connection = Connection(sock)
    client_handshake(connection, ClientHandshake(Role.CLIENT, identity))
    return connection


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Read until the master closes the connection; return what it sent and the seconds that
    took. Raises AssertionError when it is still open after ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    received = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the master kept the connection open for {timeout} s "
                                 f"(it sent {bytes(received[:200])!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return bytes(received), time.monotonic() - started
        received += chunk


class NormalClient:
    """A well-behaved client in a thread: pings, and submits a one-job run every few pings,
    until :meth:`stop`. Records the worst latency and every failure."""

    def __init__(self, master: MasterProcess, name: str = "normal") -> None:
        self._master = master
        self._name = name
        self._stopping = threading.Event()
        self.pings = 0
        self.submits = 0
        self.worst = 0.0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._progress = threading.Condition()

    def __enter__(self) -> NormalClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            with self._master.client() as client:
                while not self._stopping.is_set():
                    started = time.monotonic()
                    assert client.ping(b"normal").payload == b"normal"
                    if self.pings % 20 == 0:
                        job = JobSpec(f"{self._name}-{self.submits}", command=("true",))
                        client.submit(RunSpec(f"{self._name}-run", (job,)))
                        self.submits += 1
                    with self._progress:
                        self.worst = max(self.worst, time.monotonic() - started)
                        self.pings += 1
                        self._progress.notify_all()
        except Exception as error:  # reported by stop()
            self.failures.append(repr(error))
            with self._progress:
                self._progress.notify_all()

    def wait_pings(self, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` more pings were answered."""
        with self._progress:
            target = self.pings + count
            if not self._progress.wait_for(lambda: self.pings >= target or self.failures,
                                           timeout):
                raise AssertionError(f"the normal client got no answer for {timeout} s")
        assert not self.failures, self.failures

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(15)
        assert not self._thread.is_alive(), "the normal client hangs"
        assert not self.failures, f"the normal client failed: {self.failures}"
        assert self.pings and self.submits, "the normal client was never served"
