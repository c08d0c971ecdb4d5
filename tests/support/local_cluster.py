"""A local cluster of real processes, as ``titanctl up`` starts it, for layer-4 tests.

:class:`LocalCluster` runs ``titanctl up --port 0`` over a scratch data directory with short
timings (:data:`FAST`), runs client commands against it, and at the end runs ``titanctl down``
and checks with psutil that no process of the cluster is left: master, workers, launchers, jobs
(found by the cluster's pids, their descendants, the data directory in a command line, and the
process groups of the job pids the ledger recorded), and any process the test started itself.

Jobs are ``command:`` argv lists (``bash -c``) that append ``start JOB ATTEMPT PID`` and
``end JOB ATTEMPT`` lines to a :class:`Ledger` file; appends of short lines with ``O_APPEND`` are
atomic, so the file is the true order in which the jobs ran. After writing ``start`` a job prints
a line, so that an event (its output) follows the ledger line: waits that re-check the ledger
after each event of the master's stream (:meth:`LocalCluster.wait_for`) never miss it.

Nothing sleeps: waits are on ready files, on processes, on ``titanctl submit --wait`` and on the
master's event stream (``MasterClient.wait_events``, a long-poll).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil

from support.processes import TITANCTL, spawn_titanctl, titanctl, wait_for_file
from titan_actors.client import MasterClient

# Short timings: a worker is lost 1.5 s after its last heartbeat, and a drain lasts 2 s at most.
# No burst workers unless a test asks for them: the others count their workers and processes.
FAST = {"TITAN_HEARTBEAT_INTERVAL": "0.2", "TITAN_LEASE": "1.5", "TITAN_DRAIN_TIMEOUT": "2",
        "TITAN_ASK_TIMEOUT": "10", "TITAN_LOG_LEVEL": "info", "TITAN_BURST_MAX_PER_HOST": "0"}
_FAR = 1 << 60  # a stream position past any real one: wait_events(_FAR, 0) answers at once


class Ledger:
    """The file the jobs append ``start JOB ATTEMPT PID`` and ``end JOB ATTEMPT`` lines to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def entries(self) -> list[tuple[str, ...]]:
        return [tuple(line.split()) for line in self.path.read_text().splitlines()]

    def ends(self) -> list[str]:
        return [e[1] for e in self.entries() if e[0] == "end"]

    def starts(self, job_id: str) -> list[tuple[int, int]]:
        """(attempt, pid) of each start of ``job_id``."""
        return [(int(e[2]), int(e[3])) for e in self.entries()
                if e[0] == "start" and e[1] == job_id]

    def pids(self) -> set[int]:
        return {int(e[3]) for e in self.entries() if e[0] == "start"}

    def command(self, body: str = "") -> list[str]:
        """A job's argv: log the start, say so on stdout, run ``body``, log the end."""
        ledger = shlex.quote(str(self.path))
        return ["bash", "-c",
                f'echo "start $TITAN_JOB_ID $TITAN_ATTEMPT $$" >> {ledger}; '
                f'echo "$TITAN_JOB_ID started"; {body + "; " if body else ""}'
                f'echo "end $TITAN_JOB_ID $TITAN_ATTEMPT" >> {ledger}']

    def check_dag(self, parents: dict[str, list[str]]) -> None:
        """Every job ended; none started before all its parents ended; none that ended
        started again."""
        ended: set[str] = set()
        problems = []
        for entry in self.entries():
            what, job_id = entry[0], entry[1]
            if what == "start":
                if job_id in ended:
                    problems.append(f"{job_id} started again (attempt {entry[2]}) after it ended")
                early = [p for p in parents[job_id] if p not in ended]
                if early:
                    problems.append(f"{job_id} started before its parents {early} ended")
            elif job_id in ended:
                problems.append(f"{job_id} ended twice")
            else:
                ended.add(job_id)
        missing = sorted(set(parents) - ended)
        if missing:
            problems.append(f"never ended: {missing}")
        assert not problems, "\n".join(problems)


def write_pipeline(path: Path, name: str, jobs: Iterable[dict[str, Any]]) -> Path:
    """Write a pipeline file (JSON is YAML too) and return its path."""
    path.write_text(json.dumps({"name": name, "version": "1.0", "jobs": list(jobs)}, indent=2))
    return path


def dag_jobs(ledger: Any, width: int, depth: int, body: str = "",
             retries: int = 3) -> tuple[list[dict], dict[str, list[str]]]:
    """``width`` chains of ``depth`` jobs; each job after the first row also waits for its
    right-hand neighbour's parent, so the chains are woven into one DAG. Returns the jobs and
    each job's parents."""
    jobs, parents = [], {}
    for row in range(depth):
        for column in range(width):
            job_id = f"j{row:03d}-{column:02d}"
            ups = [] if row == 0 else sorted({f"j{row - 1:03d}-{column:02d}",
                                              f"j{row - 1:03d}-{(column + 1) % width:02d}"})
            parents[job_id] = ups
            job = {"id": job_id, "command": ledger.command(body), "retries": retries}
            if ups:
                job["depends_on"] = ups
            jobs.append(job)
    return jobs, parents


def gone(process: psutil.Process) -> bool:
    """Ended: no such process, or a zombie that init has not reaped yet (not ours to reap)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(processes: Iterable[psutil.Process], timeout: float = 15.0) -> list:
    """Wait (on the processes themselves) until each ended; return those still running."""
    deadline = time.monotonic() + timeout
    alive = [p for p in processes if not gone(p)]
    while alive and time.monotonic() < deadline:
        try:
            alive[0].wait(timeout=max(min(0.05, deadline - time.monotonic()), 0))
        except psutil.TimeoutExpired:
            pass
        alive = [p for p in alive if not gone(p)]
    return alive


def tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants (empty when it is gone)."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class LocalCluster:
    """``titanctl up`` over ``root`` (see the module docstring)."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, *,
                 web: bool = False) -> None:
        self.root = root
        self.web = web  # start the web console too (on a free port)
        root.mkdir(parents=True, exist_ok=True)
        self.env = {**FAST, **(env or {})}
        self.ledger = Ledger(root / "ledger")
        self.state: dict = {}
        self.is_down = False
        self.started: list[subprocess.Popen] = []  # processes the test started itself
        self._seen: dict[int, psutil.Process] = {}
        self._client: MasterClient | None = None

    # -- up and down --------------------------------------------------------------------------

    def up(self, workers: int = 2, slots: int = 2, *more: str) -> subprocess.CompletedProcess:
        """``titanctl up`` with ``more`` arguments (``--separate-store``, ...); the web console
        only when this cluster was made with ``web=True``."""
        console = ("--web-port", "0") if self.web else ("--no-web",)
        result = titanctl("up", "--data-dir", str(self.root), "--port", "0", "--workers",
                          str(workers), "--slots", str(slots), *console, *more, env=self.env)
        assert result.returncode == 0, result.stdout + result.stderr
        self.state = json.loads((self.root / "cluster.json").read_text())
        self.remember()
        self.is_down = False
        return result

    @property
    def address(self) -> str:
        return f"{self.state['master']['host']}:{self.state['master']['port']}"

    @property
    def port(self) -> int:
        return int(self.state["master"]["port"])

    @property
    def web_url(self) -> str:
        """The console's URL, ``http://127.0.0.1:PORT/`` (a cluster made with ``web=True``)."""
        return self.state["web"]["url"]

    def worker_pid(self, name: str) -> int:
        return next(w["pid"] for w in self.state["workers"] if w["name"] == name)

    def remember(self) -> None:
        """Note every process of the cluster alive now, to check at the end that it is gone."""
        pids = [p.pid for p in self.started]
        if self.state:
            pids += [self.state["master"]["pid"], *(w["pid"] for w in self.state["workers"])]
            pids += [self.state[name]["pid"] for name in ("store", "web") if name in self.state]
        for pid in pids:
            for process in tree(pid):
                self._seen.setdefault(process.pid, process)

    def leftovers(self) -> list[psutil.Process]:
        """Processes of this cluster still running."""
        marker = str(self.root)
        groups = {pid for path in self.root.glob("ledger*") for pid in Ledger(path).pids()}
        found = dict(self._seen)
        for process in psutil.process_iter(["cmdline"]):
            try:
                if marker in " ".join(process.info["cmdline"] or ()) or (
                        os.getpgid(process.pid) in groups and self._is_job(process)):
                    found.setdefault(process.pid, process)
            except (psutil.Error, OSError):
                continue
        found.pop(os.getpid(), None)
        return [p for p in found.values() if not gone(p)]

    def _is_job(self, process: psutil.Process) -> bool:
        """A job of this cluster, or a process a job started (never a process that merely
        got a recycled pid): it has the TITAN_PORT of this cluster's master."""
        return bool(self.state) and process.environ().get("TITAN_PORT") == str(self.port)

    def down(self) -> subprocess.CompletedProcess:
        """``titanctl down`` (the end of the test checks that nothing is left)."""
        self.remember()
        self.is_down = True
        return titanctl("down", "--data-dir", str(self.root), env=self.env)

    def down_and_check(self) -> None:
        """``titanctl down``, stop what the test started, and fail if anything is left."""
        if self._client is not None:
            self._client.close()
            self._client = None
        problems = []
        if self.state and not self.is_down:
            result = self.down()
            if result.returncode != 0:
                problems.append(f"titanctl down: {result.returncode} {result.stderr}")
        for process in self.started:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append(f"{process.args} did not stop on SIGTERM")
        left = wait_gone(self.leftovers(), timeout=15)
        for process in left:  # leave nothing behind for the next test, then fail
            try:
                problems.append(f"left running: {process.pid} {process.cmdline()}")
                process.kill()
            except psutil.Error:
                pass
        assert not problems, "\n".join(problems)

    def new_ledger(self, name: str) -> Ledger:
        """Another ledger in the data directory (its jobs are checked for at the end too)."""
        return Ledger(self.root / f"ledger-{name}")

    # -- commands -----------------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``titanctl ARGS --master ADDRESS``."""
        return titanctl(*args, "--master", self.address, env=self.env, timeout=timeout)

    def ctl_bytes(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``titanctl ARGS --master ADDRESS`` with stdout and stderr as bytes."""
        return subprocess.run([TITANCTL, *args, "--master", self.address], capture_output=True,
                              env={**os.environ, **self.env}, timeout=timeout)

    def json(self, *args: str) -> Any:
        """``titanctl ARGS --json``, parsed; fails on a non-zero exit."""
        result = self.ctl(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def submit(self, pipeline: Path) -> str:
        """Submit without waiting; return the run id."""
        return self.json("submit", str(pipeline))["run_id"]

    def spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        """Start a titanctl process that the end of the test stops (output to a log file)."""
        process = spawn_titanctl(args, self.root / log_name, self.env)
        self.started.append(process)
        return process

    def restart_master(self) -> subprocess.Popen:
        """``titanctl master`` again on the same port and data directory, in the background;
        returns once it is listening."""
        ready = self.root / f"master-{len(self.started)}.ready"
        process = self.spawn(["master", "--port", str(self.port), "--data-dir", str(self.root),
                              "--ready-file", str(ready)], "restarted-master.log")
        wait_for_file(ready, process)
        self.reconnect()
        return process

    # -- waiting ------------------------------------------------------------------------------

    @property
    def client(self) -> MasterClient:
        if self._client is None:
            host, port = self.state["master"]["host"], self.port
            self._client = MasterClient(host, port, timeout=10, identity="test")
        return self._client

    def reconnect(self) -> None:
        """Forget the client (its master went away); the next wait dials again."""
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # the connection is already broken
                pass
        self._client = None

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30,
                 what: str = "") -> Any:
        """Return ``predicate()`` once truthy, re-checked after each event of the master."""
        deadline = time.monotonic() + timeout
        after = self.client.wait_events(_FAR, 0.0).last_seq  # before the check: none missed
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for "
                                     f"{what or predicate}")
            after = self.client.wait_events(after, min(remaining, 5.0)).last_seq

    def wait_started(self, run_id: str, job_id: str, timeout: float = 30) -> None:
        """Wait until the job said it started on stdout: it wrote its ledger line before, and
        runs its body now."""
        said = f"{job_id} started\n".encode()
        self.wait_for(lambda: said in self.client.logs(f"{run_id}/{job_id}").data, timeout,
                      what=f"{run_id}/{job_id} to start")

    def wait_run(self, run_id: str, timeout: float = 60) -> dict:
        """Wait until every job of ``run_id`` is terminal; return ``status RUN --json``."""
        self.client.follow_run(run_id, timeout)
        return self.json("status", run_id)

    def kill(self, pid: int, *, group: bool = False) -> list[psutil.Process]:
        """SIGKILL ``pid`` (with ``group``: its whole process group, in one system call),
        remembering its descendants first; returns the descendants that were not killed."""
        processes = tree(pid)
        for process in processes:
            self._seen.setdefault(process.pid, process)
        killed = [p for p in processes if p.pid == pid or (group and _pgid(p.pid) == pid)]
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
        assert not wait_gone(killed, 10), f"{killed} survived SIGKILL"
        return [p for p in processes if p not in killed]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def cluster_factory(root: Path) -> Iterator[Callable[..., LocalCluster]]:
    """Body of a fixture: a factory of :class:`LocalCluster` under ``root`` (``make(name,
    env=..., web=...)``); at the end each is brought down and checked for leftovers."""
    made: list[LocalCluster] = []

    def make(name: str = "cluster", env: dict[str, str] | None = None,
             **kwargs: Any) -> LocalCluster:
        made.append(LocalCluster(root / name, env, **kwargs))
        return made[-1]
    yield make
    errors = []
    for cluster in made:
        try:
            cluster.down_and_check()
        except AssertionError as error:
            errors.append(str(error))
    assert not errors, "\n".join(errors)


def module_cluster(root: Path, workers: int, slots: int, *,
                   web: bool = False) -> Iterator[LocalCluster]:
    """Body of a module-scoped fixture: a cluster up for the whole module (``web``: with the
    web console), then brought down and checked for leftovers."""
    made = LocalCluster(root, web=web)
    try:
        made.up(workers=workers, slots=slots)
        yield made
    finally:
        made.down_and_check()


def point_environment_at(cluster: LocalCluster, monkeypatch, *also_unset: str) -> None:
    """TITAN_HOST / TITAN_PORT name the cluster's master, as in a user's shell; no credential or
    run of a job leaks in from the test's own environment."""
    monkeypatch.setenv("TITAN_HOST", cluster.state["master"]["host"])
    monkeypatch.setenv("TITAN_PORT", str(cluster.port))
    for name in ("TITAN_TOKEN", "TITAN_KEY_FILE", "TITAN_RUN_ID", *also_unset):
        monkeypatch.delenv(name, raising=False)
