"""Store sets and gets per second, ours against ``redis-server`` with the same fsync policy, all
driven by the same client harness in the same run.

Run ``python bench/bench_store.py`` (or ``make bench``). For each fsync policy (``everysec``,
``always``) it starts, each over its own temporary directory:

* ``master``: ``titanctl up --port 0 --workers 0 --no-web`` with ``TITAN_AOF_FSYNC=<policy>``
  (the master with its embedded store: the path every client, job and SDK call takes);
* ``store``: ``titanctl store --store-port 0`` with the same policy (the separate store process,
  dialled directly as a PEER, as the master's store link does);
* ``link`` (only when named in ``BENCH_STORE_TARGETS``): ``titanctl up --workers 0
  --separate-store``, the master forwarding to a store process over its store link;
* ``redis``: ``redis-server --appendonly yes --appendfsync <policy> --save ""`` on a free
  loopback port, when ``/usr/bin/redis-server`` (or one on PATH) exists; otherwise its figures
  are skipped and ``redis`` says so.

Durability is the same on both sides: a write is answered after its record reached the OS
(``everysec``) or after an fsync that covers it (``always``).

The harness: ``clients`` connections (1, 8, 50) spread over up to :data:`LOAD_PROCS` load
processes (``fork``), each process driving its connections from one ``epoll`` loop with no
gevent. Every connection keeps ``depth`` requests in flight: 1 (not pipelined: the next request
leaves when the reply is in) or :data:`PIPELINE` (pipelined: each reply read sends as many new
requests). For ours the requests are real Titan frames (``StorePut`` / ``StoreGet``, encoded by
the project's codec after the project's handshake, replies checked for errors); for Redis they
are RESP ``SET`` / ``GET`` commands (replies parsed, errors raise). Keys cycle through
:data:`KEYS` keys written (and one read back) through an ordinary client before the
measurements, so GETs find them; values are 64 bytes. Each server then gets :data:`WARMUP`
seconds of pipelined SETs. In a measurement all load processes are released together once
connected; each runs for :data:`SECONDS` and then drains what it has in flight. The figure is
replies received / (last end - first start), the best of :data:`REPEATS` measurements, ours and
Redis's interleaved. On a machine with few cores the load processes share them with the server
(Redis's figures are bounded by this Python harness, far below what ``redis-benchmark`` gets).

:func:`main` returns ``{name: {ours, baseline, ratio, unit}}`` with ``name`` =
``<target>_<set|get>_<policy>_c<clients>_<seq|pipe>``, ``baseline`` Redis's ops/s for the same
load (None when skipped) and ``ratio`` ours / Redis (> 1: faster), plus ``setup``; the figures
are also written to bench/results/bench_store.json. Every server started here is stopped
whatever happens, and anything of it still alive afterwards is killed and reported.

Sizes: ``BENCH_STORE_SECONDS`` (default 1.0), ``BENCH_STORE_REPEATS`` (2),
``BENCH_STORE_PROCS`` (2), ``BENCH_STORE_CLIENTS`` (``1,8,50``), ``BENCH_STORE_POLICIES``
(``everysec,always``), ``BENCH_STORE_DEPTHS`` (``1,32``), ``BENCH_STORE_TARGETS``
(``master,store``; also ``link``), ``BENCH_STORE_KINDS`` (``set,get``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
from _support import remember, sweep

from titan_actors.wire import codec
from titan_actors.wire.auth import ClientHandshake
from titan_actors.wire.blocking import BlockingClient
from titan_actors.wire.connection import Connection
from titan_actors.wire.frame import Flag, FrameReader, pack_frame
from titan_actors.wire.greeting import client_handshake
from titan_actors.wire.messages import store as st
from titan_actors.wire.remote_errors import reply_value
from titan_actors.wire.roles import Role


def _env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


HERE = Path(__file__).resolve().parent
TITANCTL = str(Path(sys.executable).parent / "titanctl")
SECONDS = float(os.environ.get("BENCH_STORE_SECONDS", "1.0"))
REPEATS = int(os.environ.get("BENCH_STORE_REPEATS", "2"))
LOAD_PROCS = int(os.environ.get("BENCH_STORE_PROCS", "2"))
CLIENTS = [int(n) for n in _env_list("BENCH_STORE_CLIENTS", "1,8,50")]
POLICIES = _env_list("BENCH_STORE_POLICIES", "everysec,always")
DEPTHS = [int(n) for n in _env_list("BENCH_STORE_DEPTHS", "1,32")]
TARGETS = _env_list("BENCH_STORE_TARGETS", "master,store")
KINDS = _env_list("BENCH_STORE_KINDS", "set,get")
PIPELINE = max(DEPTHS)
KEYS = 1000
VALUE = "x" * 64
WARMUP = 0.3  # seconds of pipelined sets per target before its first measurement
_RECV = 65536  # a larger recv() buffer is mmapped per call by glibc (~10x the cost)
_ERROR = int(Flag.ERROR)
_ENV = {"TITAN_LOG_LEVEL": "warning", "TITAN_BURST_MAX_PER_HOST": "0"}


def _key(index: int) -> str:
    return f"bench:{index:04d}"


# -- the wire of each target (used inside the load processes) -------------------------------


class _TitanWire:
    """One connection to a Titan server after the project's handshake, driven frame by frame."""

    def __init__(self, address: tuple[str, int], role: Role, kind: str, first: int) -> None:
        sock = socket.create_connection(address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_handshake(Connection(sock), ClientHandshake(role, "bench", None, None))
        self.sock = sock
        messages = [st.StorePut(_key(k), VALUE) if kind == "set" else st.StoreGet(_key(k))
                    for k in range(KEYS)]
        encoded = [codec.encode_any(m) for m in messages]
        self._type_id = encoded[0][0]
        self._payloads = [payload for _, payload in encoded]
        self._next = first
        self._request_id = 0
        self._reader = FrameReader()

    def requests(self, count: int) -> bytes:
        out = []
        for _ in range(count):
            self._request_id = self._request_id % 0xFFFFFFFF + 1
            out.append(pack_frame(self._type_id, self._payloads[self._next],
                                  request_id=self._request_id))
            self._next = (self._next + 1) % KEYS
        return b"".join(out)

    def replies(self, data: bytes) -> int:
        frames = self._reader.feed(data)
        for frame in frames:
            if _ERROR & frame.flags:  # int & IntFlag: no Python-level enum call per reply
                reply_value(frame)  # raises the server's error
        return len(frames)


class _RespWire:
    """One connection to redis-server: RESP commands out, RESP replies counted (errors raise)."""

    def __init__(self, address: tuple[str, int], kind: str, first: int) -> None:
        sock = socket.create_connection(address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._commands = [_resp("SET", _key(k), VALUE) if kind == "set" else _resp("GET", _key(k))
                          for k in range(KEYS)]
        self._next = first
        self._buf = bytearray()

    def requests(self, count: int) -> bytes:
        start = self._next
        self._next = (start + count) % KEYS
        if start + count <= KEYS:
            return b"".join(self._commands[start:start + count])
        return b"".join(self._commands[(start + i) % KEYS] for i in range(count))

    def replies(self, data: bytes) -> int:
        buf = self._buf
        buf += data
        pos, count, size = 0, 0, len(buf)
        while pos < size:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            kind = buf[pos]
            if kind == 43:  # "+"
                end = line_end + 2
            elif kind == 36:  # "$"
                length = int(buf[pos + 1:line_end])
                end = line_end + 2 + (length + 2 if length >= 0 else 0)
                if end > size:
                    break
            else:
                raise RuntimeError(f"redis: {bytes(buf[pos:line_end]).decode(errors='replace')}")
            pos = end
            count += 1
        del buf[:pos]
        return count


def _resp(*args: str) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _wire(target: str, address: tuple[str, int], kind: str, first: int):
    if target == "redis":
        return _RespWire(address, kind, first)
    return _TitanWire(address, _role(target), kind, first)


def _role(target: str) -> Role:
    # the master serves clients; the store process serves the master (PEER) and operators
    return Role.PEER if target == "store" else Role.CLIENT


# -- the load processes ------------------------------------------------------------------------


def _drive(wires: list, depth: int, seconds: float) -> tuple[float, float, int]:
    """Keep ``depth`` requests in flight on every connection for ``seconds``, then drain.
    Returns (start, end, replies)."""
    poller = select.epoll()
    by_fd = {}
    inflight = {}
    try:
        start = time.monotonic()
        deadline = start + seconds
        for wire in wires:
            fd = wire.sock.fileno()
            by_fd[fd] = wire
            inflight[fd] = depth
            poller.register(fd, select.EPOLLIN)
            wire.sock.sendall(wire.requests(depth))
        done = 0
        active = len(wires)
        while active:
            events = poller.poll(30.0)
            if not events:
                raise RuntimeError("no reply within 30 s")
            sending = time.monotonic() < deadline
            for fd, _ in events:
                wire = by_fd[fd]
                data = wire.sock.recv(_RECV)
                if not data:
                    raise RuntimeError("the server closed a connection")
                count = wire.replies(data)
                done += count
                if sending:
                    wire.sock.sendall(wire.requests(count))
                else:
                    inflight[fd] -= count
                    if inflight[fd] == 0:
                        poller.unregister(fd)
                        active -= 1
        return start, time.monotonic(), done
    finally:
        poller.close()


def _load(target: str, address: tuple[str, int], kind: str, firsts: list[int], depth: int,
          seconds: float, barrier, results) -> None:
    """One load process: connect its connections, wait for the others, drive, report."""
    wires = []
    try:
        wires = [_wire(target, address, kind, first) for first in firsts]
        for wire in wires:
            wire.sock.settimeout(30)
        barrier.wait(60)
        results.put(_drive(wires, depth, seconds))
    except BaseException:
        barrier.abort()
        results.put(("error", traceback.format_exc()))
    finally:
        for wire in wires:
            wire.sock.close()


def _rate(target: str, address: tuple[str, int], kind: str, clients: int, depth: int,
          seconds: float = SECONDS) -> float:
    """Replies per second of ``clients`` connections over up to LOAD_PROCS processes."""
    context = multiprocessing.get_context("fork")
    procs = min(LOAD_PROCS, clients)
    barrier, results = context.Barrier(procs), context.Queue()
    spread = [list(range(i, clients, procs)) for i in range(procs)]
    processes = [context.Process(
        target=_load, daemon=True,
        args=(target, address, kind, [c * KEYS // clients for c in share], depth, seconds,
              barrier, results)) for share in spread]
    for process in processes:
        process.start()
    try:
        spans = [results.get(timeout=seconds + 120) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join(5)
    errors = [span[1] for span in spans if span[0] == "error"]
    if errors:
        raise RuntimeError(f"a {target} load process failed:\n{errors[0]}")
    replies = sum(done for _, _, done in spans)
    return replies / (max(end for _, end, _ in spans) - min(start for start, _, _ in spans))


# -- the servers ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(predicate, process: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    """Wait until ``predicate()`` holds, in bounded waits on ``process`` (which must not exit)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout} s")
        try:
            process.wait(timeout=0.05)
            raise RuntimeError(f"{what} exited with {process.returncode}")
        except subprocess.TimeoutExpired:
            pass


class _Reaper:
    """Remembers every process the servers started, and makes sure none is left at the end."""

    def __init__(self) -> None:
        self.seen: dict[int, psutil.Process] = {}
        self.problems: list[str] = []

    def remember(self, pid: int) -> list[psutil.Process]:
        """Remember ``pid`` and its children; returns them."""
        return remember(pid, self.seen)

    def sweep(self, marker: str, family: list[psutil.Process]) -> None:
        """Wait briefly for ``family`` and any process that mentions ``marker`` (a server's
        temporary directory) to exit; kill and report the rest."""
        self.problems += sweep(marker, {p.pid: p for p in family})

    def leftovers(self) -> list[int]:
        """Pids remembered here that still run (zombies aside)."""
        alive = []
        for pid, process in self.seen.items():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.Error:
                pass
        return alive


def _titan_env(policy: str) -> dict:
    env = dict(os.environ, TITAN_AOF_FSYNC=policy, **_ENV)
    for name in ("TITAN_STORE_ADDRESS", "TITAN_KEY_FILE", "TITAN_DATA_DIR"):
        env.pop(name, None)
    return env


@contextmanager
def _master(policy: str, reaper: _Reaper, separate: bool = False) -> Iterator[tuple[str, int]]:
    """``titanctl up --workers 0`` (the master with its embedded store; ``separate``: with
    ``--separate-store``, the master forwarding to a store process over its store link)."""
    with tempfile.TemporaryDirectory(prefix="titan-store-bench-master-") as tmp:
        env = _titan_env(policy)
        family: list[psutil.Process] = []
        try:
            up = subprocess.run([TITANCTL, "up", "--data-dir", tmp, "--port", "0", "--workers",
                                 "0", "--no-web"]
                                + (["--separate-store", "--store-port", "0"] if separate else []),
                                env=env, capture_output=True, text=True, timeout=120)
            if up.returncode != 0:
                raise RuntimeError(f"titanctl up failed ({up.returncode}): {up.stdout}"
                                   f"{up.stderr}")
            state = json.loads((Path(tmp) / "cluster.json").read_text())
            master = state["master"]
            family = reaper.remember(master["pid"])
            if "store" in state:
                family += reaper.remember(state["store"]["pid"])
            yield master["host"], int(master["port"])
        finally:
            if (Path(tmp) / "cluster.json").exists():
                down = subprocess.run([TITANCTL, "down", "--data-dir", tmp], env=env,
                                      capture_output=True, text=True, timeout=120)
                if down.returncode != 0:
                    reaper.problems.append(f"titanctl down: {down.returncode} "
                                           f"{down.stderr.strip()}")
            reaper.sweep(tmp, family)


@contextmanager
def _store(policy: str, reaper: _Reaper) -> Iterator[tuple[str, int]]:
    """``titanctl store --store-port 0`` (the separate store process)."""
    with tempfile.TemporaryDirectory(prefix="titan-store-bench-store-") as tmp:
        ready = Path(tmp) / "store.ready"
        with open(Path(tmp) / "store.log", "wb") as log:
            process = subprocess.Popen(
                [TITANCTL, "store", "--data-dir", tmp, "--store-port", "0", "--ready-file",
                 str(ready)], env=_titan_env(policy), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        family = reaper.remember(process.pid)
        try:
            _wait_for(ready.exists, process, "titanctl store")
            info = json.loads(ready.read_text())
            yield info["host"], int(info["port"])
        finally:
            _stop(process, reaper)
            reaper.sweep(tmp, family)


@contextmanager
def _redis(policy: str, reaper: _Reaper) -> Iterator[tuple[str, int] | None]:
    """A redis-server with an AOF under ``policy``, or None when none is installed."""
    binary = _redis_binary()
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="titan-store-bench-redis-") as tmp:
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
             "--appendonly", "yes", "--appendfsync", policy, "--save", "",
             "--daemonize", "no", "--logfile", str(Path(tmp) / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        family = reaper.remember(process.pid)
        try:
            _wait_for(lambda: _answers(port), process, "redis-server")
            yield "127.0.0.1", port
        finally:
            _stop(process, reaper)
            reaper.sweep(tmp, family)


def _redis_binary() -> str | None:
    found = shutil.which("redis-server")
    return found or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)


def _redis_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    return next((w.removeprefix("v=") for w in out.split() if w.startswith("v=")), out.strip())


_SERVERS = {"master": _master, "store": _store,
            "link": lambda policy, reaper: _master(policy, reaper, separate=True)}


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(_resp("PING"))
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop(process: subprocess.Popen, reaper: _Reaper) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        reaper.problems.append(f"killed {process.args[:2]} (pid {process.pid}): no exit "
                               "30 s after SIGTERM")
        process.kill()
        process.wait(timeout=10)


# -- checking and filling --------------------------------------------------------------------


def _fill(target: str, address: tuple[str, int]) -> None:
    """Write the KEYS keys through an ordinary client, then read one back (proves that the
    harness's requests mean what they should before anything is measured)."""
    if target == "redis":
        wire = _RespWire(address, "set", 0)
        with wire.sock as sock:
            sock.sendall(wire.requests(KEYS))
            got = 0
            while got < KEYS:
                got += wire.replies(sock.recv(_RECV))
            sock.sendall(_resp("GET", _key(7)))
            reply = sock.recv(1024)
        if reply != b"$64\r\n" + VALUE.encode() + b"\r\n":
            raise RuntimeError(f"redis-server answered GET with {reply!r}")
        return
    with BlockingClient(*address, role=_role(target), identity="bench-fill",
                        timeout=30) as client:
        for k in range(KEYS):
            client.ask(st.StorePut(_key(k), VALUE))
        reply = client.ask(st.StoreGet(_key(7)))
    if reply != st.StoreValue(True, VALUE):
        raise RuntimeError(f"the {target} answered StoreGet with {reply!r}")


# -- the run -------------------------------------------------------------------------------------


def _name(target: str, kind: str, policy: str, clients: int, depth: int) -> str:
    return f"{target}_{kind}_{policy}_c{clients}_{'seq' if depth == 1 else 'pipe'}"


def main() -> dict:
    figures: dict = {}
    reaper = _Reaper()
    redis_note = "redis-server not installed: its figures are skipped"
    best: dict[str, float] = {}
    try:
        for policy in POLICIES:
            with ExitStack() as stack:
                servers = {target: stack.enter_context(_SERVERS[target](policy, reaper))
                           for target in TARGETS}
                redis = stack.enter_context(_redis(policy, reaper))
                if redis is not None:
                    servers["redis"] = redis
                    redis_note = (f"redis-server {_redis_version(_redis_binary())}, "
                                  f"appendonly yes, appendfsync as ours")
                for target, address in servers.items():
                    _fill(target, address)
                    _rate(target, address, "set", min(8, max(CLIENTS)), PIPELINE, WARMUP)
                for _ in range(REPEATS):
                    for clients in CLIENTS:
                        for depth in DEPTHS:
                            for kind in KINDS:
                                for target, address in servers.items():
                                    name = _name(target, kind, policy, clients, depth)
                                    rate = _rate(target, address, kind, clients, depth)
                                    best[name] = max(best.get(name, 0.0), rate)
    finally:
        for pid in reaper.leftovers():
            reaper.problems.append(f"pid {pid} still alive at the end")
    for name, ours in best.items():
        target = name.split("_", 1)[0]
        if target == "redis":
            continue
        baseline = best.get("redis" + name[len(target):])
        figures[name] = {"ours": ours, "baseline": baseline,
                         "ratio": ours / baseline if baseline else None, "unit": "ops/s"}
    figures["setup"] = {"redis": redis_note, "seconds": SECONDS, "repeats": REPEATS,
                        "load_processes": LOAD_PROCS, "clients": CLIENTS, "policies": POLICIES,
                        "depths": DEPTHS, "targets": TARGETS, "keys": KEYS,
                        "value_bytes": len(VALUE), "cpus": os.cpu_count(),
                        "cleanup_problems": reaper.problems}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_store.json").write_text(json.dumps(figures, indent=2))
    return figures


def _print(r: dict) -> None:
    setup = r["setup"]
    print(f"baseline: {setup['redis']}; up to {setup['load_processes']} load processes, "
          f"{setup['seconds']} s per measurement, best of {setup['repeats']}; depth: requests "
          "in flight per connection; ratio: ours / redis")
    rows: dict[tuple, dict] = {}
    for name, figure in r.items():
        if name != "setup":
            target, kind, policy, clients, mode = name.split("_")
            rows.setdefault((kind, policy, int(clients[1:]), mode), {})[target] = figure
    targets = [t for t in setup["targets"] if any(t in row for row in rows.values())]
    print(f"{'op':3} {'fsync':8} {'clients':>7} {'depth':>5} "
          + "".join(f"{t + '/s':>10}" for t in targets) + f"{'redis/s':>10}"
          + "".join(f"{t + ' ratio':>14}" for t in targets))
    for (kind, policy, clients, mode), row in rows.items():
        depth = 1 if mode == "seq" else max(setup["depths"])
        baseline = next((f["baseline"] for f in row.values() if f["baseline"]), None)
        print(f"{kind:3} {policy:8} {clients:>7} {depth:>5} "
              + "".join(f"{row[t]['ours']:10.0f}" if t in row else f"{'-':>10}"
                        for t in targets)
              + (f"{baseline:10.0f}" if baseline else f"{'-':>10}")
              + "".join(f"{row[t]['ratio']:14.2f}" if t in row and row[t]["ratio"] else
                        f"{'-':>14}" for t in targets))
    for policy in setup["policies"]:
        headline = [(t, r.get(f"{t}_set_{policy}_c50_seq")) for t in targets]
        shown = [f"{t} {f['ratio']:.2f}x" for t, f in headline if f and f["ratio"]]
        if shown:
            print(f"goal 0.5x redis-server, SET {policy}, 50 clients, not pipelined: "
                  + ", ".join(shown))
    if setup["cleanup_problems"]:
        print("cleanup problems:", *setup["cleanup_problems"], sep="\n  ")


if __name__ == "__main__":
    _print(main())
