"""A job that double-forks a daemon (orphan-cleanup tests), and how to tell that it is gone.

The job's main process forks; the child calls ``setsid`` (a session of its own, out of the
job's group) and forks the daemon, then exits, so the daemon is re-parented (to the launcher,
a subreaper). The daemon sends ``daemon PID START`` (START: clock ticks since boot, from
/proc/self/stat, which with the pid names it exactly) back through a pipe, and blocks in
``signal.pause()``; the main process prints that line and exits 0.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from titan_actors.execution import _leftovers

_CODE = """
import os, signal, sys
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        {ignore}
        with open("/proc/self/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        os.write(w, f"daemon {{os.getpid()}} {{start}}".encode())
        {detach}
        while True:
            signal.pause()
    os._exit(0)
os.close(w)
said = os.read(r, 100).decode()
os.wait()
print(said, flush=True)
{then}
"""
_DETACH = ("null = os.open(os.devnull, os.O_RDWR)\n"
           "        for fd in (0, 1, 2):\n            os.dup2(null, fd)")
_LINE = re.compile(rb"daemon (\d+) (\d+)")


def daemon_code(*, ignore_term: bool = False, detach: bool = True, then: str = "") -> str:
    """The job's Python code. ``ignore_term``: the daemon ignores SIGTERM. ``detach``: it
    points its stdin/stdout/stderr at /dev/null (else it holds the job's pipes). ``then``: a
    statement the main process runs after printing (``"signal.pause()"``: it keeps running)."""
    return _CODE.format(ignore="signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_term
                        else "pass", detach=_DETACH if detach else "pass", then=then)


def daemon_argv(**options: bool | str) -> list[str]:
    return [sys.executable, "-c", daemon_code(**options)]


def write_daemon_script(path: Path, **options: bool | str) -> Path:
    path.write_text(daemon_code(**options))
    return path


@dataclass(frozen=True)
class Daemon:
    pid: int
    start: int

    @classmethod
    def find(cls, output: bytes) -> Daemon | None:
        """The daemon a job's output names, or None when it names none (yet)."""
        match = _LINE.search(output)
        return cls(int(match[1]), int(match[2])) if match else None

    @classmethod
    def find_all(cls, output: bytes) -> list[Daemon]:
        return [cls(int(m[1]), int(m[2])) for m in _LINE.finditer(output)]

    def alive(self) -> bool:
        """Still running (a zombie is not: it is dead, waiting for its parent to reap it)."""
        now = _leftovers.stat(self.pid)
        return now is not None and now.start == self.start and not now.zombie
