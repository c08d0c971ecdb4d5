"""Many hosts on one machine: a master and workers in network namespaces of their own.

:class:`Hosts` makes one namespace for the master and one per worker (``titan-<pid>-<host>``,
so that concurrent test processes never share one), joined by a bridge in the master's
namespace: the master's host is ``10.213.7.1``, worker ``i`` ``10.213.7.(i + 2)``, each worker
behind a veth pair whose master-side end :meth:`Hosts.cut` sets down (the worker's cable is
pulled: no FIN, no RST, segments lost until :meth:`Hosts.heal`). Nothing touches the test
machine's own namespace; :meth:`Hosts.delete` removes every namespace (their interfaces go with
them), and is safe to call after a partial setup.

:class:`NetnsCluster` runs ``titanctl master`` and ``titanctl worker`` inside them with a cluster
key (an address off loopback needs one), talks to the master through a MasterClient whose socket
was made in the master's namespace (``setns`` in a thread of its own: the namespace belongs to a
socket from its creation on), and at the end stops every process it started, SIGKILLs the
process group of anything left, checks that nothing is left and deletes the namespaces.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from support.fault_cluster import ClusterEvents
from support.local_cluster import FAST, LocalCluster, wait_gone
from support.processes import TITANCTL, titanctl, wait_for_file
from titan_actors.client import MasterClient
from titan_actors.keys import load_keyring

SUBNET = "10.213.7"
_CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def unavailable() -> str:
    """Why namespaces cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"titan-{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
    except OSError as error:
        return f"`ip netns add` does not work here: {error}"
    _ip("netns", "del", probe)
    return ""


def in_namespace(namespace: str, function: Callable[[], Any], timeout: float = 30) -> Any:
    """Call ``function`` in a new thread that first entered ``namespace`` (its network only);
    return its value or raise its error. Sockets it makes stay in that namespace."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
            finally:
                os.close(fd)
            outcome["value"] = function()
        except BaseException as error:  # handed to the caller
            outcome["error"] = error
    thread = threading.Thread(target=run, name=f"in-{namespace}")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{function} did not return within {timeout} s in {namespace}"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Hosts:
    """The namespaces and their links (see the module docstring)."""

    def __init__(self, workers: tuple[str, ...]) -> None:
        prefix = f"titan-{os.getpid()}"
        self.master = f"{prefix}-m"
        self.namespaces = {name: f"{prefix}-{name}" for name in workers}
        self.addresses = {name: f"{SUBNET}.{i + 2}" for i, name in enumerate(workers)}
        self.master_address = f"{SUBNET}.1"
        self.made: list[str] = []

    def create(self) -> Hosts:
        m = self.master
        self._add(m)
        _ip("-n", m, "link", "add", "br0", "type", "bridge")
        _ip("-n", m, "addr", "add", f"{self.master_address}/24", "dev", "br0")
        _ip("-n", m, "link", "set", "br0", "up")
        for name, namespace in self.namespaces.items():
            self._add(namespace)
            _ip("-n", m, "link", "add", f"to-{name}", "type", "veth", "peer", "name", "eth0",
                "netns", namespace)
            _ip("-n", m, "link", "set", f"to-{name}", "master", "br0", "up")
            _ip("-n", namespace, "addr", "add", f"{self.addresses[name]}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
        return self

    def _add(self, namespace: str) -> None:
        _ip("netns", "add", namespace)
        self.made.append(namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")

    def cut(self, worker: str) -> None:
        _ip("-n", self.master, "link", "set", f"to-{worker}", "down")

    def heal(self, worker: str) -> None:
        _ip("-n", self.master, "link", "set", f"to-{worker}", "up")

    def delete(self) -> list[str]:
        """Delete every namespace made; returns the errors (none expected)."""
        errors = []
        for namespace in reversed(self.made):
            try:
                _ip("netns", "del", namespace)
            except OSError as error:
                errors.append(str(error))
        self.made.clear()
        return errors


class NetnsCluster(ClusterEvents, LocalCluster):
    """A master and workers on :class:`Hosts` (see the module docstring)."""

    def __init__(self, root: Path, workers: tuple[str, ...]) -> None:
        super().__init__(root)
        self.hosts = Hosts(workers)
        self.key = root / "cluster.key"
        self.processes: dict[str, subprocess.Popen] = {}

    def up(self, workers: dict[str, tuple[str, ...]], slots: int = 2) -> None:
        """Make the namespaces, start the master, then each worker with its tags; return once
        every worker registered."""
        self.hosts.create()
        (self.root / "logs").mkdir(exist_ok=True)
        made = titanctl("key", "generate", str(self.key))
        assert made.returncode == 0, made.stderr
        info = json.loads(self._start("master", self.hosts.master, [
            "master", "--host", self.hosts.master_address, "--port", "0"]))
        self.state = {"master": {"host": self.hosts.master_address, "port": info["port"],
                                 "pid": info["pid"]}, "workers": []}
        for name, tags in workers.items():
            self._start(name, self.hosts.namespaces[name], [
                "worker", "--master", self.address, "--name", name, "--tags", ",".join(tags),
                "--slots", str(slots)])
            self.state["workers"].append({"name": name, "pid": self.processes[name].pid})
        for name in workers:
            self.wait_for(lambda name=name: self.connected(name), what=f"{name} to register")
        self.remember()

    def _start(self, name: str, namespace: str, args: list[str]) -> str:
        ready = self.root / f"{name}.ready"
        with open(self.root / "logs" / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, TITANCTL, *args, "--key-file", str(self.key),
                 "--data-dir", str(self.root), "--ready-file", str(ready)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **FAST}, start_new_session=True)
        self.processes[name] = process
        self.started.append(process)
        return wait_for_file(ready, process)

    @property
    def client(self) -> MasterClient:
        if self._client is None:
            keys = load_keyring(self.key)
            self._client = in_namespace(self.hosts.master, lambda: MasterClient(
                self.hosts.master_address, self.port, keys=keys, timeout=10, identity="test"))
        return self._client

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``titanctl ARGS`` in the master's namespace, with the key."""
        return subprocess.run(
            ["ip", "netns", "exec", self.hosts.master, TITANCTL, *args, "--master",
             self.address, "--key-file", str(self.key)], capture_output=True, text=True,
            env={**os.environ, **FAST}, timeout=timeout)

    def down_and_check(self) -> None:
        """Stop the workers (they drain), then the master; SIGKILL the process group of
        anything still running; fail if anything was left; delete the namespaces."""
        problems: list[str] = []
        try:
            if self._client is not None:
                self._client.close()
                self._client = None
            self.remember()
            ordered = [p for name, p in self.processes.items() if name != "master"]
            ordered += [self.processes["master"]] if "master" in self.processes else []
            for process in ordered:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGCONT)
                    process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    problems.append(f"{process.args[3:5]} did not stop on SIGTERM")
            left = wait_gone(self.leftovers(), timeout=10)
            for process in left:
                problems.append(f"left running: {process.pid} {process.cmdline()}")
            for process in self.processes.values():  # each runs in a session of its own
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for process in left:
                try:
                    process.kill()
                except psutil.Error:
                    pass
        finally:
            problems += self.hosts.delete()
        assert not problems, "\n".join(problems)
