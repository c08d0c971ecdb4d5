"""A master with a cluster key as a real process, its role keys, workers, and raw wire access.

For the security tests (tests/security): :class:`KeyedMaster` runs ``titanctl master --key-file``
over a scratch data directory (its log outside it, so that a search of the data directory for
an attacker's marker finds only what the master kept); :meth:`KeyedMaster.key` derives role key
files as ``titanctl key derive`` does; :func:`raw_ask` sends one frame of any type id with any
payload over an authenticated :class:`~titan_actors.wire.blocking.BlockingClient` and returns
the answer or the error it raised.
"""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path

from support.processes import spawn_titanctl, stop_and_check, wait_for_file
from titan_actors.client import MasterClient
from titan_actors.config_security import generate_key_file, read_key_file
from titan_actors.keys import derive_role_key_file, load_keyring
from titan_actors.wire import codec
from titan_actors.wire.auth import JobToken, KeyRing
from titan_actors.wire.blocking import BlockingClient
from titan_actors.wire.frame import Flag
from titan_actors.wire.remote_errors import reply_value
from titan_actors.wire.roles import Role

# jobs run as the test's own user: the security tests look at what a job sees, not at whom it
# runs as (tests/security/test_job_user.py does that)
SAME_USER = {"TITAN_JOB_USER": getpass.getuser(), "TITAN_HEARTBEAT_INTERVAL": "0.2",
             "TITAN_LEASE": "3", "TITAN_BURST_MAX_PER_HOST": "0", "TITAN_LOG_LEVEL": "info",
             "TITAN_DRAIN_TIMEOUT": "1"}


class KeyedMaster:
    """``titanctl master --key-file`` over ``root/data`` (see the module docstring)."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.data = root / "data"
        root.mkdir(parents=True, exist_ok=True)
        self.cluster_key = generate_key_file(root / "cluster.key")
        self.env = {**SAME_USER, **(env or {})}
        self.args = args
        self.processes: list[subprocess.Popen] = []
        self.host, self.port, self.pid = "127.0.0.1", 0, 0

    def start(self) -> KeyedMaster:
        ready = self.root / "master.ready"
        self.master = self.spawn(["master", "--data-dir", str(self.data), "--port", "0",
                                  "--key-file", str(self.cluster_key), "--ready-file",
                                  str(ready), *self.args], "master.log")
        info = json.loads(wait_for_file(ready, self.master))
        self.host, self.port, self.pid = info["host"], info["port"], info["pid"]
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        """Start ``titanctl ARGS`` (output to ``root/log_name``); :meth:`stop` stops it."""
        process = spawn_titanctl(args, self.root / log_name, self.env)
        self.processes.append(process)
        return process

    def worker(self, name: str, key_file: Path, *args: str) -> subprocess.Popen:
        """A worker process with ``key_file``, returned once it started."""
        ready = self.root / f"{name}.ready"
        process = self.spawn(["worker", "--master", self.address, "--name", name,
                              "--data-dir", str(self.data), "--key-file", str(key_file),
                              "--slots", "4", "--tags", "GENERAL", "--ready-file", str(ready),
                              *args], f"{name}.log")
        wait_for_file(ready, process)
        return process

    def log(self, name: str = "master.log") -> str:
        return (self.root / name).read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM every process started here, workers first; fail if any left a child."""
        for process in reversed(self.processes):
            if process.poll() is None:
                stop_and_check(process, timeout=20)

    # -- keys and clients ---------------------------------------------------------------------

    def key(self, role: Role) -> Path:
        """The role key file of ``role`` (made on first use, as `titanctl key derive`)."""
        path = self.root / f"{role.name.lower()}.key"
        if not path.exists():
            derive_role_key_file(self.cluster_key, role, path)
        return path

    def keyring(self, role: Role | None = None) -> KeyRing:
        """The cluster key's ring (every role), or one role's ring."""
        return load_keyring(self.cluster_key if role is None else self.key(role))

    def raw_key(self) -> bytes:
        return read_key_file(self.cluster_key)

    def client(self, role: Role = Role.ADMIN, identity: str = "test") -> MasterClient:
        """A MasterClient proving ``role`` with that role's own key file."""
        return MasterClient(self.host, self.port, keys=self.keyring(role), role=role,
                            identity=identity, timeout=10)

    def wire(self, role: Role, identity: str = "test", *, keys: KeyRing | None = None,
             token: JobToken | None = None) -> BlockingClient:
        """A raw blocking wire client with ``role``'s key file (or ``keys`` / ``token``)."""
        if keys is None and token is None:
            keys = self.keyring(role)
        return BlockingClient(self.host, self.port, role=role, identity=identity, keys=keys,
                              token=token, timeout=10)


def raw_ask(client: BlockingClient, type_id: int, payload: bytes,
            request_id: int) -> object:
    """Send one request frame (any type id, any payload) and return its answer, or the error
    the answer carries (returned, not raised)."""
    client.connection.send_raw(type_id, payload, request_id=request_id)
    while True:
        frame = client.connection.recv()
        if frame.flags & Flag.REPLY and frame.request_id == request_id:
            try:
                return reply_value(frame)
            except Exception as error:  # the refusal is the answer under test
                return error


def ask_message(client: BlockingClient, message: object, request_id: int) -> object:
    """:func:`raw_ask` with an encoded message."""
    type_id, payload = codec.encode_any(message)
    return raw_ask(client, type_id, payload, request_id)


def wait_for(client: MasterClient, predicate, timeout: float = 30, what: str = "") -> object:
    """Return ``predicate()`` once truthy, re-checked after each event of the master (a
    long-poll on its event stream, never a sleep)."""
    import time

    deadline = time.monotonic() + timeout
    after = client.wait_events(1 << 60, 0.0).last_seq  # taken before the check: none missed
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        after = client.wait_events(after, min(remaining, 5.0)).last_seq


def files_holding(root: Path, needle: bytes) -> list[str]:
    """The files under ``root`` whose bytes contain ``needle``."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and needle in path.read_bytes())
