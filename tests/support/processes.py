"""Real processes in tests: start, wait for readiness by file, and check nothing is left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
TITANCTL = str(BIN / "titanctl")


def titanctl(*args: str, env: dict | None = None, timeout: float = 60,
             cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run ``titanctl ARGS`` to completion and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([TITANCTL, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=cwd)


def spawn_titanctl(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``titanctl ARGS`` in the background, its output appended to ``log``, with this
    process's environment plus ``env``."""
    with open(log, "ab") as out:
        return subprocess.Popen([TITANCTL, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **env})


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 30) -> str:
    """Wait until ``path`` exists (written atomically by the process) and return its text.

    Fails early, with the process's output, when the process exits first.
    """
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        try:  # a bounded wait on the process, not a sleep; Popen's own wait keeps the exit
            process.wait(timeout=0.01)  # status (psutil's would reap it and lose it)
        except subprocess.TimeoutExpired:
            continue
        out, err = process.communicate(timeout=5)
        raise AssertionError(f"process exited with {process.returncode}: {out}{err}")
    return path.read_text()


def stop_and_check(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process, wait for it, and assert it left no child process behind."""
    children = psutil.Process(process.pid).children(recursive=True)
    process.terminate()
    process.wait(timeout=timeout)
    gone, alive = psutil.wait_procs(children, timeout=timeout)
    assert not alive, f"processes left behind: {alive}"
