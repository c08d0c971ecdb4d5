"""An in-process cluster for layer-3 tests: a master and workers over real sockets on port 0.

Everything runs on the hub of the (never monkey-patched) test process, as the server commands
compose it (``runtime/master_main.py``): an :class:`ActorSystem` per component, the master served
by an :class:`ActorServer`, each worker dialling it and starting jobs through its own launcher
subprocess. Timings are short (heartbeat 0.1 s, lease 1 s, retry backoff 50 ms) so that failure
scenarios take a second, not a minute.

The blocking :class:`MasterClient` runs in native threads of gevent's threadpool (as the SDK would
in a plain program) while the hub serves; :class:`ThreadedClient` does that for every call.
Waiting follows the master's event stream (``WaitEvents`` long-polls): nothing sleeps.

A worker can also run as a real ``titanctl worker`` process (:meth:`Cluster.spawn_worker_process`)
for the scenarios that need it to die abruptly (SIGKILL). :meth:`Cluster.close` stops everything
and checks with psutil that no process started by the test is left.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gevent
import psutil
import pytest
from gevent.lock import Semaphore

from support import wait_until
from support.processes import TITANCTL, wait_for_file
from titan_actors.actors.base import ActorRef
from titan_actors.actors.master import MasterActor, MasterOptions, PeerGone
from titan_actors.actors.store import StoreActor, StoreOptions
from titan_actors.actors.system import ActorSystem
from titan_actors.actors.worker import Drain, WorkerActor, WorkerOptions
from titan_actors.client import MasterClient
from titan_actors.scheduler import Backoff, JobSpec, JobState, RunSpec
from titan_actors.wire.auth import KeyRing
from titan_actors.wire.messages.master import Event, EventBatch, JobInfo
from titan_actors.wire.server import ActorServer

HEARTBEAT = 0.1
LEASE = 1.0
SHORT_BACKOFF = Backoff(base=0.05, cap=0.2, jitter=0.0)
# a stream position beyond any real one: WaitEvents(FAR, 0) answers the current last_seq at once
_FAR = 1 << 60


def in_thread(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run blocking code in a native thread while the hub goes on serving; return its value or
    raise its exception here (gevent would also report it to the hub as a greenlet error)."""
    def outcome() -> tuple[bool, Any]:
        try:
            return True, function(*args, **kwargs)
        except BaseException as error:  # handed to the calling greenlet
            return False, error
    ok, value = gevent.get_hub().threadpool.apply(outcome)
    if not ok:
        raise value
    return value


def sh(script: str) -> tuple[str, ...]:
    """A job command that runs ``script`` with ``sh -c``."""
    return ("sh", "-c", script)


def job(job_id: str, script: str = "true", **fields: Any) -> JobSpec:
    """A command job running ``script`` in sh; no retries unless given."""
    fields.setdefault("retries", 0)
    return JobSpec(job_id, command=sh(script), **fields)


def run_spec(name: str, *jobs: JobSpec) -> RunSpec:
    return RunSpec(name, tuple(jobs))


class Ledger:
    """A file that job commands append lines to (``echo start $TITAN_JOB_ID >> LEDGER``).

    Appends of short lines with O_APPEND are atomic, so the lines of concurrent jobs never mix.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def __str__(self) -> str:
        return str(self.path)

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines()

    def entries(self) -> list[tuple[str, ...]]:
        return [tuple(line.split()) for line in self.lines()]

    def mark(self, what: str = "run") -> str:
        """Shell that appends ``WHAT JOB ATTEMPT`` to the ledger."""
        return f'echo "{what} $TITAN_JOB_ID $TITAN_ATTEMPT" >> {self.path}'

    def count(self, what: str, job_id: str) -> int:
        return sum(1 for e in self.entries() if e[:2] == (what, job_id))

    def index(self, what: str, job_id: str) -> int:
        for position, entry in enumerate(self.entries()):
            if entry[:2] == (what, job_id):
                return position
        raise AssertionError(f"no '{what} {job_id}' in the ledger: {self.lines()}")


class ThreadedClient:
    """A :class:`MasterClient` whose every call runs in the threadpool (one call at a time).

    ``client.submit(spec)`` etc. block only the calling greenlet; :meth:`blocking` runs a whole
    function of the raw client in one thread (for waits that make several calls).
    """

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("identity", "test")
        self._lock = Semaphore()
        self.raw: MasterClient = in_thread(MasterClient, host, port, **kwargs)

    def blocking(self, function: Callable[[MasterClient], Any]) -> Any:
        with self._lock:
            return in_thread(function, self.raw)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.raw, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return in_thread(attribute, *args, **kwargs)
        return call

    def close(self) -> None:
        with self._lock:
            self.raw.close()

    # -- waiting on the event stream ----------------------------------------------------------

    def follow(self, check: Callable[[MasterClient], Any], timeout: float = 5.0,
               run_id: str = "", what: str = "") -> Any:
        """Return ``check(raw_client)`` once it is truthy, re-checking after each new event
        (of ``run_id`` when given). Raises AssertionError after ``timeout`` seconds."""
        def blocking(client: MasterClient) -> Any:
            deadline = time.monotonic() + timeout
            after = client.wait_events(_FAR, 0.0).last_seq  # before the check: no event lost
            while True:
                value = check(client)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for "
                                         f"{what or check}")
                batch: EventBatch = client.wait_events(after, min(remaining, 5.0), run_id)
                after = batch.last_seq
        return self.blocking(blocking)

    def last_seq(self) -> int:
        """The event stream's current position."""
        return self.wait_events(_FAR, 0.0).last_seq

    def wait_event(self, match: Callable[[Event], bool], after: int, timeout: float = 5.0,
                   run_id: str = "") -> Event:
        """The first event after ``after`` (of ``run_id``) that ``match`` accepts."""
        def blocking(client: MasterClient) -> Event:
            deadline = time.monotonic() + timeout
            position = after
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching event within {timeout} s")
                batch = client.wait_events(position, min(remaining, 5.0), run_id)
                for event in batch.events:
                    if match(event):
                        return event
                position = batch.last_seq
        return self.blocking(blocking)

    def wait_job(self, ref: str, *states: JobState, timeout: float = 5.0) -> JobInfo:
        """Wait until job ``ref`` ("RUN/JOB") is in one of ``states``; return its info."""
        run_id = ref.partition("/")[0]

        def check(client: MasterClient) -> JobInfo | None:
            info = client.job(ref).job
            return info if info.state in states else None
        return self.follow(check, timeout, run_id,
                           f"job {ref} to be {'/'.join(s.value for s in states)}")

    def wait_run(self, run_id: str, timeout: float = 5.0) -> dict[str, JobInfo]:
        """Wait until every job of ``run_id`` is terminal; return its jobs by id."""
        self.blocking(lambda client: client.follow_run(run_id, timeout))
        return self.jobs(run_id)

    def jobs(self, run_id: str) -> dict[str, JobInfo]:
        return {info.job_id: info for info in self.run(run_id).jobs}

    def wait_workers(self, *names: str, connected: bool = True, timeout: float = 5.0) -> None:
        """Wait until each of ``names`` is (or is no longer) a connected worker."""
        def check(client: MasterClient) -> bool:
            live = {w.name for w in client.workers() if w.connected}
            return all((name in live) == connected for name in names)
        self.follow(check, timeout, what=f"workers {names} connected={connected}")

    def log_text(self, ref: str) -> bytes:
        """The whole of a job's output as the master keeps it."""
        def read(client: MasterClient) -> bytes:
            return b"".join(client.follow_logs(ref, timeout=10.0))
        return self.blocking(read)


@dataclasses.dataclass
class MasterHandle:
    system: ActorSystem
    ref: ActorRef
    server: ActorServer
    options: MasterOptions

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def drop_connection(self, peer_identity: str) -> None:
        """Close the master's side of ``peer_identity``'s connection (a network blip)."""
        matches = [e for e in list(self.server.endpoints)
                   if e.peer.identity == peer_identity]
        assert matches, f"no connection from {peer_identity!r}"
        for endpoint in matches:
            endpoint.close()


@dataclasses.dataclass
class WorkerHandle:
    name: str
    system: ActorSystem
    ref: ActorRef
    options: WorkerOptions

    def drain(self) -> None:
        self.ref.tell(Drain())


class Cluster:
    """A master and workers in this process (see the module docstring).

    Args:
        root: a scratch directory (``tmp_path``): master data in ``root/master``, each worker's
            in ``root/worker-NAME``.
        keys: the cluster key ring, or None for an unauthenticated loopback cluster.
        master_options: overrides of :class:`MasterOptions` fields for every master started.
        worker_options: overrides of :class:`WorkerOptions` fields for every worker added.
    """

    def __init__(self, root: Path, *, keys: KeyRing | None = None,
                 master_options: dict | None = None,
                 worker_options: dict | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.keys = keys
        self.master_overrides = master_options or {}
        self.worker_overrides = worker_options or {}
        self.master: MasterHandle | None = None
        self.workers: dict[str, WorkerHandle] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self._clients: list[ThreadedClient] = []
        self._client: ThreadedClient | None = None
        self._before = {p.pid for p in psutil.Process().children(recursive=True)}

    # -- the master ---------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        assert self.master is not None, "no master is running"
        return self.master.address

    def start_master(self, port: int = 0, **overrides: Any) -> MasterHandle:
        """Start a master on ``port`` (0: a free one) over ``root/master``, as master_main does:
        listen first, then build the actor with the address it got."""
        assert self.master is None, "a master is already running"
        system = ActorSystem()
        server = ActorServer(None, port=port, identity="master", keys=self.keys)
        address = server.listen()
        fields = dict(heartbeat_interval=HEARTBEAT, lease=LEASE, retry_backoff=SHORT_BACKOFF)
        fields.update(self.master_overrides)
        fields.update(overrides)
        options = MasterOptions(self.root / "master", "master", address, **fields)
        store = system.spawn(StoreActor, StoreOptions(self.root / "store"), name="store")
        ref = system.spawn(MasterActor, options, keys=self.keys, name="master", store=store)
        server.target = ref
        server.on_disconnect = lambda endpoint: ref.tell(PeerGone(endpoint.remote), timeout=1)
        server.start()
        self.master = MasterHandle(system, ref, server, options)
        self._client = None
        return self.master

    def stop_master(self) -> tuple[str, int]:
        """Stop the master's server and actor (as on SIGTERM); return the address it had."""
        assert self.master is not None, "no master is running"
        master, self.master = self.master, None
        self._client = None
        address = master.address
        master.server.stop(timeout=2)
        assert master.system.stop_all(timeout=5), "the master did not stop within 5 s"
        return address

    # -- clients ------------------------------------------------------------------------------

    @property
    def client(self) -> ThreadedClient:
        """A client of the current master (a new one after a master restart)."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, **kwargs: Any) -> ThreadedClient:
        kwargs.setdefault("keys", self.keys)
        client = ThreadedClient(*self.address, **kwargs)
        self._clients.append(client)
        return client

    # -- workers ------------------------------------------------------------------------------

    def add_worker(self, name: str, tags: Iterable[str] = ("GENERAL",), slots: int = 1, *,
                   wait: bool = True, **overrides: Any) -> WorkerHandle:
        """Start a worker actor (with its launcher process) dialling the master; with ``wait``,
        return once the master lists it as connected."""
        assert name not in self.workers, f"worker {name} exists"
        fields = dict(heartbeat_interval=HEARTBEAT, reconnect_min=0.02, reconnect_max=0.2,
                      drain_timeout=5.0, kill_grace=0.5)
        fields.update(self.worker_overrides)
        fields.update(overrides)
        options = WorkerOptions(name, self.address, self.root / f"worker-{name}", tuple(tags),
                                slots, **fields)
        system = ActorSystem()
        ref = system.spawn(WorkerActor, options, keys=self.keys, name=f"worker-{name}")
        handle = self.workers[name] = WorkerHandle(name, system, ref, options)
        if wait:
            self.client.wait_workers(name)
        return handle

    def stop_worker(self, name: str, timeout: float = 10.0) -> None:
        """Stop a worker actor (its jobs are killed, its launcher closed)."""
        handle = self.workers.pop(name)
        assert handle.system.stop_all(timeout=timeout), f"worker {name} did not stop"

    def spawn_worker_process(self, name: str, tags: Iterable[str] = ("GENERAL",),
                             slots: int = 1) -> subprocess.Popen:
        """Start a real ``titanctl worker`` process and return once the master lists it."""
        ready = self.root / f"{name}.ready"
        host, port = self.address
        argv = [TITANCTL, "worker", "--master", f"{host}:{port}", "--name", name,
                "--tags", ",".join(tags), "--slots", str(slots),
                "--data-dir", str(self.root / "processes"), "--heartbeat-interval",
                str(HEARTBEAT), "--log-level", "warning", "--ready-file", str(ready)]
        # none of the test process's TITAN_* settings but who jobs run as (tests/conftest.py)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TITAN_") or k == "TITAN_JOB_USER"}
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        self.processes[name] = process
        json.loads(in_thread(wait_for_file, ready, process, 30))
        self.client.wait_workers(name)
        return process

    def kill_worker_process(self, name: str) -> None:
        """SIGKILL a worker process: no drain, no goodbye (its launcher then kills its jobs)."""
        process = self.processes.pop(name)
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        in_thread(process.wait, 10)
        _wait_gone(children, f"the processes of the killed worker {name}")

    # -- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop clients, workers and the master; fail when a process started since this
        cluster was made is left (jobs and launchers included, even ones that were re-parented
        away from this process)."""
        ours = [p for p in psutil.Process().children(recursive=True) if p.pid not in self._before]
        for client in self._clients:
            try:
                client.close()
            except Exception:  # a connection the test broke on purpose
                pass
        for process in self.processes.values():
            process.kill()  # its launcher kills its jobs when it sees the worker gone
            in_thread(process.wait, 10)
        self.processes.clear()
        stuck = []
        for name in list(self.workers):
            try:
                self.stop_worker(name)
            except AssertionError:
                stuck.append(name)
        if self.master is not None:
            self.stop_master()
        psutil.wait_procs([p for p in psutil.Process().children() if p.pid not in self._before],
                          timeout=5)  # reap our own children
        assert not stuck, f"workers did not stop: {stuck}"
        _wait_gone(ours, "the processes of the test")


def _gone(process: psutil.Process) -> bool:
    """Ended: no such process, or a zombie that init has not reaped yet (not ours to reap)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(processes: list[psutil.Process], what: str, timeout: float = 10.0) -> None:
    wait_until(lambda: all(_gone(p) for p in processes), timeout,
               what=f"{what} to end")


@pytest.fixture(name="make_cluster")
def make_cluster_fixture(tmp_path: Path):
    """A factory of :class:`Cluster` (keyword arguments as its constructor's); each one made
    is closed, and checked for leftover processes, at the end of the test."""
    made: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        made_cluster = Cluster(tmp_path / f"cluster{len(made)}", **kwargs)
        made.append(made_cluster)
        return made_cluster
    yield make
    for made_cluster in made:
        made_cluster.close()


@pytest.fixture(name="cluster")
def cluster_fixture(make_cluster) -> Cluster:
    """A cluster with its master started (add workers with ``cluster.add_worker``)."""
    made = make_cluster()
    made.start_master()
    return made
