"""Component directories and their locks, with a real second process as the other holder."""

from __future__ import annotations

import os
import selectors
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import titan_actors
from titan_actors.datadir import (
    DataDirLock,
    LockHolder,
    component_dir,
    read_holder,
    worker_component,
)
from titan_actors.errors import ConfigError, DataDirLockedError, UsageError

_HOLD = """
import sys
from titan_actors.datadir import DataDirLock
lock = DataDirLock(sys.argv[1])
lock.acquire()
print("READY", flush=True)
sys.stdin.readline()
"""


def _readline(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """Read one line of the child's stdout, failing after ``timeout`` instead of hanging."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            raise AssertionError(
                f"no line from the child within {timeout}s: "
                f"{proc.stderr.read() if proc.stderr else ''}"
            )
    return proc.stdout.readline()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A second process holding the lock on ``tmp_path/master`` until its stdin closes."""
    directory = component_dir(tmp_path, "master")
    src = str(Path(titan_actors.__file__).parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(directory), "master"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert _readline(proc) == "READY\n"
        yield proc, directory
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_component_dir_is_created_private(tmp_path: Path) -> None:
    root = tmp_path / "state" / "titan"
    path = component_dir(root, worker_component("gpu-1"))
    assert path == root / "worker-gpu-1" and path.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_component_dir_tightens_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir(mode=0o755)
    (tmp_path / "store").chmod(0o755)
    assert stat.S_IMODE(component_dir(tmp_path, "store").stat().st_mode) == 0o700


@pytest.mark.parametrize("component", ["", "..", ".", "a/b", "../etc", "-x", "worker x"])
def test_component_names_are_one_plain_segment(tmp_path: Path, component: str) -> None:
    with pytest.raises(ConfigError, match="not a valid component name"):
        component_dir(tmp_path, component)


def test_component_dir_over_a_file(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        component_dir(tmp_path, "web")


def test_lock_records_the_holder_and_clears_it_on_release(tmp_path: Path) -> None:
    fixed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    lock = DataDirLock(tmp_path, now=lambda: fixed)
    with lock:
        assert lock.held
        holder = read_holder(tmp_path)
        assert holder == LockHolder(
            os.getpid(), socket.gethostname(), tuple(sys.argv), "2026-01-02T03:04:05+00:00"
        )
        assert stat.S_IMODE(lock.lock_path.stat().st_mode) == 0o600
    assert not lock.held
    assert read_holder(tmp_path) is None
    assert lock.lock_path.exists()  # never deleted: see the module docstring
    lock.release()  # releasing twice is harmless


def test_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with DataDirLock(tmp_path) as first:
        with pytest.raises(DataDirLockedError, match=rf"held by pid {os.getpid()} "):
            DataDirLock(tmp_path).acquire()
        with pytest.raises(UsageError, match="already held by this DataDirLock"):
            first.acquire()
    with DataDirLock(tmp_path):
        pass


def test_lock_held_by_another_process_names_it(holder) -> None:
    proc, directory = holder
    with pytest.raises(DataDirLockedError) as info:
        DataDirLock(directory).acquire()
    message = str(info.value)
    assert (
        f"data directory {directory} is in use: held by pid {proc.pid} (-c {directory} master)"
        in message
    )
    assert f"on host {socket.gethostname()} since " in message
    assert info.value.holder.pid == proc.pid
    assert "choose another --data-dir" in message


def test_lock_of_a_process_that_exits_is_free(holder) -> None:
    proc, directory = holder
    proc.stdin.close()  # the child returns from readline and exits without releasing
    assert proc.wait(timeout=10) == 0
    with DataDirLock(directory) as lock:
        assert read_holder(directory).pid == os.getpid() and lock.held


def test_lock_of_a_killed_process_is_free(holder) -> None:
    proc, directory = holder
    proc.kill()
    proc.wait(timeout=10)
    assert read_holder(directory).pid == proc.pid  # the stale record stays ...
    with DataDirLock(directory):  # ... but the kernel released the lock
        assert read_holder(directory).pid == os.getpid()


def test_lock_without_a_recorded_holder(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path)
    with lock:
        os.truncate(lock.lock_path, 0)  # as seen between another holder's flock and its write
        with pytest.raises(DataDirLockedError, match="has not recorded its name yet"):
            DataDirLock(tmp_path).acquire()


def test_lock_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        DataDirLock(tmp_path / "missing").acquire()


def test_holder_command_is_short() -> None:
    holder = LockHolder(1, "h", ("/usr/bin/titanctl", "master", "x" * 500), "t")
    assert holder.command.startswith("titanctl master x") and len(holder.command) == 120
    assert LockHolder.from_json(b"{not json") is None
    assert LockHolder.from_json(holder.to_json()) == holder
