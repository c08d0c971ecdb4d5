"""``titanctl up`` and ``titanctl down``: a local cluster of background processes."""

from __future__ import annotations

import json
import os
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


def _titanctl() -> list[str]:
    return [sys.executable, "-m", "titan_actors.cli"]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_ready(path: Path, process: subprocess.Popen, what: str, log: Path,
                timeout: float) -> dict:
    """Wait for a ready file (bounded waits on the process, never a blind sleep)."""
    deadline = time.monotonic() + timeout
    child = psutil.Process(process.pid)
    while not path.exists():
        if process.poll() is not None:
            raise UsageError(f"the {what} exited with code {process.returncode} before it was "
                             f"ready; see {log}")
        if time.monotonic() > deadline:
            raise UsageError(f"the {what} was not ready within {timeout:.0f} s; see {log}")
        try:
            child.wait(timeout=0.02)
        except psutil.TimeoutExpired:
            pass
    return json.loads(path.read_text())


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(_titanctl() + args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)


@settings_options("data_dir", "port", "key_file", "log_level")
def up(config: Config,
       workers: int = typer.Option(2, "--workers", min=0, help="Workers to start."),
       slots: int = typer.Option(None, "--slots", min=1, help="Slots per worker (default: "
                                 "the CPU count)."),
       timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for readiness.")
       ) -> None:
    """Start a local cluster in the background: a master and workers (see `titanctl down`)."""
    root = Path(config.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    state_file = root / CLUSTER_FILE
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if _alive(state["master"]["pid"]):
            typer.echo(f"a cluster is already running from {root} (master "
                       f"{state['master']['host']}:{state['master']['port']}); "
                       "`titanctl down` stops it")
            raise typer.Exit(1)
    env = dict(os.environ, TITAN_DATA_DIR=str(root))
    if config.key_file:
        env["TITAN_KEY_FILE"] = str(config.key_file)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    for stale in root.glob("*.ready"):
        stale.unlink()
    master = _start(["master", "--port", str(config.port), "--ready-file",
                     str(root / "master.ready")], logs / "master.log", env)
    info = _wait_ready(root / "master.ready", master, "master", logs / "master.log", timeout)
    address = f"{info['host']}:{info['port']}"
    started = []
    for index in range(1, workers + 1):
        name = f"worker-{index}"
        args = ["worker", "--master", address, "--name", name, "--ready-file",
                str(root / f"{name}.ready")] + (["--slots", str(slots)] if slots else [])
        started.append((name, _start(args, logs / f"{name}.log", env)))
    state = {"data_dir": str(root), "master": {"pid": master.pid, **info}, "workers": []}
    for name, process in started:
        ready = _wait_ready(root / f"{name}.ready", process, name, logs / f"{name}.log",
                            timeout)
        state["workers"].append({"name": name, "pid": ready["pid"]})
    _wait_registered(config, address, [name for name, _ in started], timeout)
    state_file.write_text(json.dumps(state, indent=2))
    typer.echo(f"master   {address}   (pid {master.pid}, log {logs / 'master.log'})")
    for name, process in started:
        typer.echo(f"{name} connected (pid {process.pid}, log {logs / (name + '.log')})")
    typer.echo(f"\nnext: titanctl submit pipelines/quickstart/pipeline.yaml --wait --master "
               f"{address}\n      titanctl status --master {address}\n      titanctl down "
               f"--data-dir {root}")


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
    """Stop exactly what `titanctl up` started (workers drain first, then the master)."""
    root = Path(config.data_dir)
    state_file = root / CLUSTER_FILE
    if not state_file.exists():
        typer.echo(f"no cluster is running from {root}")
        raise typer.Exit(1)
    state = json.loads(state_file.read_text())
    for group in ([w["pid"] for w in state["workers"]], [state["master"]["pid"]]):
        procs = []
        for pid in group:
            try:
                process = psutil.Process(pid)
                process.send_signal(signal.SIGTERM)
                procs.append(process)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for process in alive:
            process.kill()
        psutil.wait_procs(alive, timeout=5)
    state_file.unlink()
    typer.echo(f"stopped the cluster in {root}")
