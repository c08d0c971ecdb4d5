"""A real ``titanctl store`` or ``titanctl master`` process for the durability tests: start it
on a data directory, talk to it (to a store as the master does, ``Role.PEER``), SIGKILL it,
start it again.

Readiness is its ready file (pid, host, port); a process that exits before it is ready fails the
wait with its output. :meth:`StoreProcess.stop` ends whatever is still running (SIGTERM, then
SIGKILL) and the end of each test checks that nothing of it is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from support.processes import TITANCTL, wait_for_file
from titan_actors.wire.blocking import BlockingClient
from titan_actors.wire.roles import Role


class ServerProcess:
    """``titanctl COMPONENT --data-dir DATA_DIR`` on port 0, with ``env`` (TITAN_* settings);
    its log and ready files go to ``log_dir`` (default: beside the data directory)."""

    component = "store"
    _port_option = "--store-port"

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None,
                 log_dir: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.data_dir.parent
        self.env = {"TITAN_LOG_LEVEL": "info", **(env or {})}
        self.process: subprocess.Popen | None = None
        self.address: tuple[str, int] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.data_dir.name}-{self.component}.log"

    def start(self, env: dict[str, str] | None = None) -> ServerProcess:
        """Start it (``env`` on top of this object's) and wait until it listens."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        ready = self.log_dir / f"{self.data_dir.name}-{self.component}-{self.starts}.ready"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [TITANCTL, self.component, "--data-dir", str(self.data_dir), self._port_option,
                 "0", "--ready-file", str(ready)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env, **(env or {})})
        info = json.loads(wait_for_file(ready, self.process))
        self.address = (info["host"], info["port"])
        return self

    def client(self, identity: str = "test", timeout: float = 10.0) -> BlockingClient:
        """A blocking connection (to a store: as the master's link makes one)."""
        assert self.address is not None
        role = Role.PEER if self.component == "store" else Role.CLIENT
        return BlockingClient(*self.address, role=role, identity=identity, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL it and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for it to exit on its own (a failpoint killed it); return its exit status."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM it if it runs (SIGKILL after 10 s) and reap it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(
                f"the {self.component} did not stop on SIGTERM:\n{self.log()[-2000:]}") from None


class StoreProcess(ServerProcess):
    """``titanctl store --store-port 0``."""


class MasterProcess(ServerProcess):
    """``titanctl master --port 0`` (its store embedded unless ``env`` says otherwise)."""

    component = "master"
    _port_option = "--port"
