"""Remember a worker's job processes on disk, so that its next life can kill the leftovers.

A worker's launcher kills every job when the worker goes away, however it goes. This is the
second line, for when both die at once (a SIGKILL to both, the OOM killer): the worker records
each job process in ``<worker_dir>/children`` (:class:`ChildRegistry`), and at start
:func:`kill_orphans` kills each recorded process group still alive, then forgets the records.

A process is recognised by ``(pid, create_time)`` (from psutil), so a pid reused by an unrelated
process is never signalled. When the recorded leader is gone but members of its group remain,
they are recognised by their process group id together with a start time no earlier than the
leader's: the kernel does not give a pid out again while a group of that id still exists.

The file is rewritten whole (temp file, ``os.replace``) on every change, never fsynced: it
matters only when the worker died and the machine did not, and then the page cache has it.
One line per child: ``pid pgid create_time key``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["FILE_NAME", "ChildRecord", "ChildRegistry", "kill_orphans", "read_records"]

FILE_NAME = "children"
_SAME_START_S = 0.05  # create_time is derived from clock ticks: allow for rounding


@dataclass(frozen=True, slots=True)
class ChildRecord:
    """One job process: its pid, its process group id (== pid in its own session), its start
    time (psutil's ``create_time``, epoch seconds) and the launcher key it ran under."""

    pid: int
    pgid: int
    create_time: float
    key: str = ""

    def to_line(self) -> str:
        key = self.key.replace("\n", " ")
        return f"{self.pid} {self.pgid} {self.create_time!r} {key}\n"


class ChildRegistry:
    """The worker's record of its live job processes (``<worker_dir>/children``).

    A new registry starts empty and overwrites the file: call :func:`kill_orphans` first.
    """

    def __init__(self, worker_dir: str | os.PathLike[str]) -> None:
        self._path = Path(worker_dir) / FILE_NAME
        self._children: dict[int, ChildRecord] = {}
        self._write()

    @property
    def records(self) -> list[ChildRecord]:
        """The recorded children, in the order they were added."""
        return list(self._children.values())

    def add(self, pid: int, pgid: int | None = None, key: str = "") -> ChildRecord | None:
        """Record the process ``pid`` (its group ``pgid``, default ``pid``); return the record,
        or None when the process is already gone (nothing left to clean up)."""
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            return None
        record = ChildRecord(pid, pid if pgid is None else pgid, create_time, key)
        self._children[pid] = record
        self._write()
        return record

    def remove(self, pid: int) -> None:
        """Forget ``pid`` (it exited and was reaped). Unknown pids are ignored."""
        if self._children.pop(pid, None) is not None:
            self._write()

    def _write(self) -> None:
        tmp = self._path.with_name(f".{FILE_NAME}.tmp")
        tmp.write_text("".join(r.to_line() for r in self._children.values()))
        os.replace(tmp, self._path)


def read_records(worker_dir: str | os.PathLike[str]) -> list[ChildRecord]:
    """Return the records of ``<worker_dir>/children`` (none when it is missing). A line that
    cannot be parsed (a torn write by some other tool) is skipped."""
    try:
        text = (Path(worker_dir) / FILE_NAME).read_text(errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        try:
            records.append(ChildRecord(int(parts[0]), int(parts[1]), float(parts[2]),
                                       parts[3] if len(parts) > 3 else ""))
        except (IndexError, ValueError):
            continue
    return records


def kill_orphans(worker_dir: str | os.PathLike[str],
                 sig: int = signal.SIGKILL) -> list[ChildRecord]:
    """Send ``sig`` to every recorded process group that is still the one recorded, empty the
    record file, and return the records that were signalled.

    Call it at worker start, before the launcher starts anything. Processes this user may not
    signal are skipped. To wait for them: ``psutil.wait_procs`` on their pids.
    """
    records = read_records(worker_dir)
    by_group: dict[int, list[psutil.Process]] | None = None
    killed = []
    for record in records:
        alive = _leader_alive(record)
        if alive is None and record.pgid == record.pid:  # the leader is gone: its group?
            if by_group is None:
                by_group = _processes_by_group()
            alive = any(_started_since(p, record.create_time)
                        for p in by_group.get(record.pgid, ()))
        if alive and _signal(record, sig):  # None (gone, no group of its own) is falsy
            killed.append(record)
    path = Path(worker_dir) / FILE_NAME
    if path.exists():
        path.write_text("")
    return killed


def _leader_alive(record: ChildRecord) -> bool | None:
    """True: the recorded process is still there; False: its pid now belongs to another
    process (so its group is empty); None: no process has the pid."""
    try:
        create_time = psutil.Process(record.pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return False
    return abs(create_time - record.create_time) <= _SAME_START_S


def _processes_by_group() -> dict[int, list[psutil.Process]]:
    groups: dict[int, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        try:
            groups.setdefault(os.getpgid(proc.pid), []).append(proc)
        except OSError:
            continue
    return groups


def _started_since(proc: psutil.Process, since: float) -> bool:
    try:
        return proc.create_time() >= since - _SAME_START_S
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _signal(record: ChildRecord, sig: int) -> bool:
    try:
        if record.pgid == record.pid:
            os.killpg(record.pgid, sig)
        else:
            os.kill(record.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
