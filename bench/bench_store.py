"""Store sets and gets per second through the master, against Redis and a no-op request, in
the same run.

Run ``python bench/bench_store.py``. It starts ``titanctl up --workers 0`` (the master with its
embedded store, ``everysec``) in a temporary directory and, when ``redis-server`` is on PATH, a
``redis-server`` in another temporary directory on a free loopback port with ``appendonly yes``
and ``appendfsync everysec`` (the same durability: each write reaches the OS before its reply).
The same harness loads both: 1 client, then 8 concurrent clients, each a process with its own
blocking connection and one request in flight (``MasterClient`` for ours, a tiny RESP client
written here for Redis), all released together once connected. It reports:

* ``set_N`` / ``get_N``: ``store_put`` / ``store_get`` per second with N clients (64-byte values);
* ``set_N_vs_redis`` / ``get_N_vs_redis``: ours / Redis's ``SET`` / ``GET`` with the same load
  (absent, with ``redis: skipped``, when redis-server is not installed);
* ``set_N_vs_ping``: ours / ``Ping`` through the master (a request that does not touch the
  store), so the store's own cost shows apart from the master's request path.

:func:`main` returns the figures.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from titan_actors.client import MasterClient

OPS = 6000  # per measurement, split between the clients
REPEATS = 3  # measurements per figure, ours and Redis's interleaved; the best is kept
WARMUP = 1000
VALUE = "x" * 64
CLIENTS = (1, 8)


class _Resp:
    """A minimal blocking RESP2 client: one command in flight, replies parsed as needed here."""

    def __init__(self, host: str, port: int) -> None:
        self._sock = socket.create_connection((host, port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._in = self._sock.makefile("rb")

    def call(self, *args: str) -> object:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self) -> object:
        line = self._in.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._in.read(size + 2)[:-2]
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def close(self) -> None:
        self._in.close()
        self._sock.close()


def _ours(address: tuple[str, int]) -> tuple[Callable[[str, str], object], Callable[[], None]]:
    client = MasterClient(*address, timeout=30, identity="bench")

    def op(kind: str, key: str) -> object:
        if kind == "set":
            return client.store_put(key, VALUE)
        if kind == "get":
            return client.store_get(key)
        return client.ping()
    return op, client.close


def _redis(address: tuple[str, int]) -> tuple[Callable[[str, str], object], Callable[[], None]]:
    client = _Resp(*address)

    def op(kind: str, key: str) -> object:
        if kind == "set":
            return client.call("SET", key, VALUE)
        if kind == "get":
            return client.call("GET", key)
        return client.call("PING")
    return op, client.close


_TARGETS = {"ours": _ours, "redis": _redis}


def _client(target: str, address: tuple[str, int], kind: str, index: int, count: int,
            barrier, results) -> None:
    """One client process: connect, wait for the others, run ``count`` requests."""
    op, close = _TARGETS[target](address)
    try:
        barrier.wait(60)
        start = time.monotonic()
        for n in range(count):
            op(kind, f"bench:{index}:{n}")
        results.put((start, time.monotonic()))
    finally:
        close()


def _rate(target: str, address: tuple[str, int], clients: int, kind: str,
          ops: int = OPS) -> float:
    """Requests per second of ``clients`` concurrent client processes, from the first start to
    the last end."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(clients), context.Queue()
    count = ops // clients
    processes = [context.Process(target=_client, args=(target, address, kind, index, count,
                                                       barrier, results))
                 for index in range(clients)]
    for process in processes:
        process.start()
    spans = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
        if process.exitcode != 0:
            raise RuntimeError(f"a {target} client exited with {process.exitcode}")
    return count * clients / (max(end for _, end in spans) - min(start for start, _ in spans))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _titan() -> Iterator[tuple[str, int]]:
    with tempfile.TemporaryDirectory(prefix="titan-store-bench-") as tmp:
        env = dict(os.environ, TITAN_DATA_DIR=tmp)
        for name in ("TITAN_AOF_FSYNC", "TITAN_STORE_ADDRESS"):  # the embedded store, everysec
            env.pop(name, None)
        cli = [sys.executable, "-m", "titan_actors.cli"]
        up = subprocess.run(cli + ["up", "--port", "0", "--workers", "0"], env=env,
                            capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            raise RuntimeError(up.stdout + up.stderr)
        try:
            master = json.loads((Path(tmp) / "cluster.json").read_text())["master"]
            yield master["host"], master["port"]
        finally:
            subprocess.run(cli + ["down"], env=env, capture_output=True, timeout=120)


@contextmanager
def _redis_server() -> Iterator[tuple[str, int] | None]:
    """A redis-server with an everysec AOF in a temporary directory, or None when absent."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="titan-redis-bench-") as tmp:
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--daemonize", "no", "--logfile", str(Path(tmp) / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:  # ready once it answers PING (bounded waits on the process)
                try:
                    probe = _Resp("127.0.0.1", port)
                    probe.call("PING")
                    probe.close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start within 30 s") from None
                    try:
                        process.wait(timeout=0.05)
                        raise RuntimeError(f"redis-server exited with {process.returncode}")
                    except subprocess.TimeoutExpired:
                        pass
            yield "127.0.0.1", port
        finally:
            process.terminate()
            process.wait(timeout=30)


def main() -> dict[str, float | str]:
    figures: dict[str, float | str] = {}
    with _titan() as ours, _redis_server() as redis:
        figures["redis"] = "skipped (redis-server not on PATH)" if redis is None else \
            "redis-server, appendonly yes, appendfsync everysec"
        for target, address in (("ours", ours), ("redis", redis)):
            if address is not None:  # connections, code paths and allocators warmed up
                _rate(target, address, 1, "set", WARMUP)
        best: dict[str, float] = {}
        for _ in range(REPEATS):
            for clients in CLIENTS:
                for kind in ("ping", "set", "get"):
                    for target, address in (("ours", ours), ("redis", redis)):
                        if address is None or target == "redis" and kind == "ping":
                            continue
                        name = f"{'redis_' if target == 'redis' else ''}{kind}_{clients}"
                        best[name] = max(best.get(name, 0.0),
                                         _rate(target, address, clients, kind))
    figures.update(best)
    for clients in CLIENTS:
        for kind in ("set", "get"):
            figures[f"{kind}_{clients}_vs_ping"] = best[f"{kind}_{clients}"] / \
                best[f"ping_{clients}"]
            if redis is not None:
                figures[f"{kind}_{clients}_vs_redis"] = best[f"{kind}_{clients}"] / \
                    best[f"redis_{kind}_{clients}"]
    return figures


def _print(r: dict[str, float | str]) -> None:
    print(f"redis: {r['redis']}")
    for clients in CLIENTS:
        line = f"{clients} client(s): ping {r[f'ping_{clients}']:7.0f}/s"
        for kind in ("set", "get"):
            line += f"   {kind} {r[f'{kind}_{clients}']:7.0f}/s"
            if f"{kind}_{clients}_vs_redis" in r:
                line += (f" (redis {r[f'redis_{kind}_{clients}']:7.0f}/s, ratio "
                         f"{r[f'{kind}_{clients}_vs_redis']:.2f})")
            else:
                line += f" (vs ping {r[f'{kind}_{clients}_vs_ping']:.2f})"
        print(line)


if __name__ == "__main__":
    _print(main())
