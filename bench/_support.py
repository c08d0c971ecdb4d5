"""What several benchmarks share: remember a server's process tree and, at the end, make sure
nothing they started is left running (wait briefly, then kill and report); an fsync that counts
its calls."""

from __future__ import annotations

import os

import psutil


def remember(pid: int, seen: dict[int, psutil.Process]) -> list[psutil.Process]:
    """Add ``pid`` and its descendants to ``seen``; return them (none when it is gone)."""
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for p in family:
        seen.setdefault(p.pid, p)
    return family


def sweep(marker: str, known: dict[int, psutil.Process], timeout: float = 15.0) -> list[str]:
    """Wait at most ``timeout`` seconds for ``known`` and every process whose command line
    mentions ``marker`` (a temporary directory of the run) to exit; kill the rest and return
    what had to be killed."""
    found = dict(known)
    for process in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(process.info["cmdline"] or ()):
                found.setdefault(process.pid, process)
        except psutil.Error:
            continue
    found.pop(os.getpid(), None)
    _, alive = psutil.wait_procs(list(found.values()), timeout=timeout)
    killed = []
    for process in alive:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                killed.append(f"killed leftover {process.pid} {process.cmdline()}")
                process.kill()
        except psutil.Error:
            pass
    return killed


class CountingFsync:
    """``os.fsync`` that counts its calls (an AOF's ``fsync`` argument)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)
