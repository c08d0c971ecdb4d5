"""``titanctl up`` and ``titanctl down``: a local cluster of background processes.

``up`` records what it started in ``<data-dir>/cluster.json``: the master's address, and for the
master, each worker, the web console (its URL too; ``--no-web`` starts none) and (with
``--separate-store``) the store process its pid and its start time (psutil's ``create_time``).
``down`` stops them, and the workers launched from the console (``<data-dir>/web/
launched.json``); it signals a recorded pid only while the process with that pid is the one
that was started (same start time), so a pid the kernel gave again to an unrelated process is
never touched.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import typer

from ..config import Config, settings_options
from ..errors import UsageError

CLUSTER_FILE = "cluster.json"
_SAME_START_S = 0.05  # create_time comes from clock ticks: allow for rounding


def _titanctl() -> list[str]:
    return [sys.executable, "-m", "titan_actors.cli"]


def _recorded(entry: dict) -> psutil.Process | None:
    """The live process that ``entry`` ({pid, create_time}) recorded, or None when it ended
    (a zombie counts as ended) or its pid now belongs to another process."""
    try:
        process = psutil.Process(entry["pid"])
        if "create_time" in entry and \
                abs(process.create_time() - entry["create_time"]) > _SAME_START_S:
            return None
        return None if process.status() == psutil.STATUS_ZOMBIE else process
    except psutil.Error:
        return None


def _identity(pid: int, what: str) -> dict:
    try:
        return {"pid": pid, "create_time": psutil.Process(pid).create_time()}
    except psutil.Error:
        raise UsageError(f"the {what} (pid {pid}) exited right after it was ready") from None


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each process ended (a zombie counts: init reaps it, in its own time).
    Returns those still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = list(processes)
    while alive:
        for process in alive:
            try:  # a bounded wait on the process itself, never a blind sleep
                process.wait(timeout=max(min(0.05, deadline - time.monotonic()), 0))
            except psutil.TimeoutExpired:
                pass
        alive = [p for p in alive if _running(p)]
        if time.monotonic() >= deadline:
            break
    return alive


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _bursts(worker: psutil.Process) -> list[psutil.Process]:
    """The burst workers ``worker`` started (its children running ``worker --burst-of``)."""
    try:
        children = worker.children()
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if "--burst-of" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def _log_tail(log: Path, lines: int = 3) -> str:
    try:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return "".join(f"\n  {line}" for line in tail[-lines:])


def _wait_ready(path: Path, process: subprocess.Popen, what: str, log: Path,
                timeout: float) -> dict:
    """Wait for a ready file (bounded waits on the process, never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise UsageError(f"the {what} was not ready within {timeout:.0f} s; see {log}"
                             f"{_log_tail(log)}")
        try:  # Popen's own wait: it keeps the exit status (psutil's would reap it away)
            process.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            continue
        raise UsageError(f"the {what} exited with code {process.returncode} before it was "
                         f"ready; see {log}{_log_tail(log)}")
    return json.loads(path.read_text())


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(_titanctl() + args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def _read_state(state_file: Path) -> dict:
    try:
        state = json.loads(state_file.read_text())
        valid = isinstance(state["master"]["pid"], int) and isinstance(state["workers"], list)
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise UsageError(f"{state_file} is not what `titanctl up` writes (it needs master.pid "
                         "and workers); stop the processes it names by hand, then remove it")
    return state


def _refuse_if_running(state_file: Path, root: Path) -> None:
    if not state_file.exists():
        return
    state = _read_state(state_file)
    if any(_recorded(entry) is not None for entry in (state["master"], state.get("store"))
           if entry):
        typer.echo(f"a cluster is already running from {root} (master "
                   f"{state['master']['host']}:{state['master']['port']}); "
                   "`titanctl down` stops it", err=True)
        raise typer.Exit(1)


@settings_options("data_dir", "port", "store_port", "web_port", "key_file", "log_level",
                  "job_user")
def up(config: Config,
       workers: int = typer.Option(2, "--workers", min=0, help="Workers to start."),
       slots: int = typer.Option(None, "--slots", min=1, help="Slots per worker (default: "
                                 "the CPU count)."),
       separate_store: bool = typer.Option(False, "--separate-store", help="Run the store as "
                                           "its own process (on --store-port) instead of "
                                           "inside the master."),
       web: bool = typer.Option(True, "--web/--no-web", help="Start the web console (on "
                                "--web-port, default 5000; 0 picks a free port)."),
       timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for readiness.")
       ) -> None:
    """Start a local cluster in the background: a master, workers and the web console, and
    with --separate-store a store process (see `titanctl down`).

    Its workers run jobs as you (the user running `up`, root included), not as nobody as a
    `titanctl worker` started by root does: this is your own cluster, and your Python may not
    be reachable by nobody. --job-user / TITAN_JOB_USER chooses another user.

    Exit status 1 when a cluster is already running from the data directory; 2 when a
    component could not start (what was started is stopped again).
    """
    root = Path(config.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    state_file = root / CLUSTER_FILE
    _refuse_if_running(state_file, root)
    env = dict(os.environ, TITAN_DATA_DIR=str(root), TITAN_LOG_LEVEL=str(config.log_level))
    if config.key_file:
        env["TITAN_KEY_FILE"] = str(config.key_file)
    env["TITAN_JOB_USER"] = _job_user(config)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    for stale in root.glob("*.ready"):
        stale.unlink()
    started: list[tuple[str, subprocess.Popen]] = []
    try:
        state = _start_all(config, root, logs, env, workers, slots, separate_store, timeout,
                           started)
        if web:
            state["web"] = _start_web(config, root, logs, env, state, timeout, started)
    except BaseException:  # a failed or interrupted start leaves nothing running
        _stop_started([process for _, process in started])
        raise
    state_file.write_text(json.dumps(state, indent=2))
    address = f"{state['master']['host']}:{state['master']['port']}"
    if "store" in state:
        typer.echo(f"store    {state['store']['host']}:{state['store']['port']}   (pid "
                   f"{state['store']['pid']}, log {logs / 'store.log'})")
    typer.echo(f"master   {address}   (pid {state['master']['pid']}, log "
               f"{logs / 'master.log'})")
    for entry in state["workers"]:
        typer.echo(f"{entry['name']} connected (pid {entry['pid']}, log "
                   f"{logs / (entry['name'] + '.log')})")
    if "web" in state:
        typer.echo(f"console  {state['web']['url']}   (pid {state['web']['pid']}, log "
                   f"{logs / 'web.log'})")
    typer.echo(f"\nnext: titanctl submit pipelines/quickstart/pipeline.yaml --wait --master "
               f"{address}\n      titanctl status --master {address}\n      titanctl down "
               f"--data-dir {root}")


def _job_user(config: Config) -> str:
    """What the workers get as ``job_user``: the one given, else the invoking user."""
    from ..config import Source

    if config.source("job_user") is not Source.DEFAULT:
        return str(config.job_user)
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a name (containers): the uid itself
        return str(os.geteuid())


def _start_all(config: Config, root: Path, logs: Path, env: dict, workers: int,
               slots: int | None, separate_store: bool, timeout: float,
               started: list[tuple[str, subprocess.Popen]]) -> dict:
    """Start the store process (with ``separate_store``), the master, then the workers, and
    wait until every worker registered. Appends each process to ``started`` as soon as it
    exists; returns the cluster.json state."""
    state: dict = {"data_dir": str(root)}
    master_args = ["master", "--port", str(config.port)]
    if separate_store:
        store = _start(["store", "--store-port", str(config.store_port), "--ready-file",
                        str(root / "store.ready")], logs / "store.log", env)
        started.append(("store", store))
        info = _wait_ready(root / "store.ready", store, "store", logs / "store.log", timeout)
        state["store"] = {**info, **_identity(store.pid, "store")}
        master_args += ["--store-address", f"{info['host']}:{info['port']}"]
    master = _start(master_args + ["--ready-file", str(root / "master.ready")],
                    logs / "master.log", env)
    started.append(("master", master))
    info = _wait_ready(root / "master.ready", master, "master", logs / "master.log", timeout)
    state["master"] = {**info, **_identity(master.pid, "master")}
    state["workers"] = []
    address = f"{info['host']}:{info['port']}"
    names = [f"worker-{index}" for index in range(1, workers + 1)]
    for name in names:
        args = ["worker", "--master", address, "--name", name, "--ready-file",
                str(root / f"{name}.ready")] + (["--slots", str(slots)] if slots else [])
        started.append((name, _start(args, logs / f"{name}.log", env)))
    for name, process in started:
        if name in names:
            _wait_ready(root / f"{name}.ready", process, name, logs / f"{name}.log", timeout)
            state["workers"].append({"name": name, **_identity(process.pid, name)})
    _wait_registered(config, address, names, timeout)
    return state


def _start_web(config: Config, root: Path, logs: Path, env: dict, state: dict,
               timeout: float, started: list[tuple[str, subprocess.Popen]]) -> dict:
    """Start the web console pointed at the master; returns its cluster.json entry."""
    address = f"{state['master']['host']}:{state['master']['port']}"
    web = _start(["web", "--master", address, "--web-port", str(config.web_port),
                  "--ready-file", str(root / "web.ready")], logs / "web.log", env)
    started.append(("web", web))
    info = _wait_ready(root / "web.ready", web, "web console", logs / "web.log", timeout)
    return {**info, **_identity(web.pid, "web console")}


def _stop_started(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):  # workers first, then the master, then the store
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_registered(config: Config, address: str, names: list[str], timeout: float) -> None:
    from ..client import MasterClient, parse_address
    from ..keys import keyring_from_config
    host, port = parse_address(address)
    deadline = time.monotonic() + timeout
    with MasterClient(host, port, keys=keyring_from_config(config), timeout=10) as client:
        after = 0
        while True:
            connected = {w.name for w in client.workers() if w.connected}
            if set(names) <= connected:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UsageError(f"workers {sorted(set(names) - connected)} did not register "
                                 f"within {timeout:.0f} s")
            after = client.wait_events(after, min(remaining, 5.0)).last_seq


@settings_options("data_dir")
def down(config: Config,
         timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait before "
                                       "killing.")) -> None:
    """Stop exactly what `titanctl up` started (workers drain first, then the master, then
    the store process if there is one)."""
    root = Path(config.data_dir)
    state_file = root / CLUSTER_FILE
    if not state_file.exists():
        typer.echo(f"no cluster is running from {root}")
        raise typer.Exit(1)
    state = _read_state(state_file)
    store = [state["store"]] if "store" in state else []
    web = [state["web"]] if "web" in state else []
    launched = _launched_workers(root)
    for group in (web, state["workers"] + launched, [state["master"]], store):
        procs = []
        for entry in group:
            process = _recorded(entry)
            for one in [process, *_bursts(process)] if process is not None else []:
                try:  # a worker, and the burst workers it started: they drain too
                    one.send_signal(signal.SIGTERM)
                    procs.append(one)
                except psutil.Error:
                    pass
        alive = _wait_gone(procs, timeout)
        for process in alive:
            try:
                process.kill()
            except psutil.Error:
                pass
        _wait_gone(alive, 5)
    state_file.unlink()
    typer.echo(f"stopped the cluster in {root}")


def _launched_workers(root: Path) -> list[dict]:
    """The workers the web console launched ({pid, create_time, name}), if any."""
    from titan_web.launch import recorded_workers
    return recorded_workers(root / "web")
