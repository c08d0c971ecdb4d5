"""Remember a worker's job processes on disk, so that its next life can kill the leftovers.

A worker's launcher kills what a job left running when the job's main process exits, and every
job when the worker goes away. This is the second line, for when both die at once (a SIGKILL to
both, the OOM killer): the launcher client records each attempt in ``<worker_dir>/children``
(:class:`ChildRegistry`), and at start :func:`kill_orphans` kills what the records name, then
forgets them.

A record is written twice: with the attempt's marker (the value of ``TITAN_ATTEMPT_MARKER`` in
its environment) *before* the spawn request leaves, so even a job that double-forked a daemon
at once is found by its marker; then with the main process's pid, process group and start time.
It is forgotten once the launcher reports that what the attempt left running is gone.

What a record names (:func:`select_orphans`, pure):

* the main process: same pid *and* same start time (psutil's ``create_time``), so a pid reused
  by an unrelated process is never signalled;
* the members of its group and session (ids == the leader's pid) that started no earlier than
  it, unless another process now holds the leader's pid (then a group of that id may be a new
  one; the kernel gives a pid out again only once no group or session of that id is left);
* every process, of any session, whose environment holds the record's marker (a random part
  makes it unique across lives, workers and hosts).

Each is signalled through a pidfd after its start time was checked again
(``_leftovers.signal_exact``). The file is a journal: every change appends one line (one
``write``, no rename, never fsynced: it matters only when the worker died and the machine did not,
and then the page cache has it), and it is rewritten compacted (temp file, ``os.replace``) once
it holds many more lines than live records. A record line is ``pid pgid create_time marker key``
(``-`` for no marker; pid 0 until the process started) and replaces an earlier line of the same
marker (or, without one, the same pid); ``- NAME`` forgets the record of marker NAME (``#PID``
for one without a marker). The last line of each name wins.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from titan_actors.execution._leftovers import MARKER_VAR, signal_exact
from titan_actors.journal import Journal

__all__ = ["FILE_NAME", "ChildRecord", "ChildRegistry", "Seen", "kill_orphans", "kill_records",
           "read_records", "select_orphans"]

_log = logging.getLogger(__name__)

FILE_NAME = "children"
_SAME_START_S = 0.05  # create_time is derived from clock ticks: allow for rounding


@dataclass(frozen=True, slots=True)
class ChildRecord:
    """One attempt's process: its pid (0: not started yet), its process group id (== pid in its
    own session), its start time (psutil's ``create_time``, epoch seconds), the launcher key it
    ran under, and the marker in its environment ("" for none)."""

    pid: int
    pgid: int
    create_time: float
    key: str = ""
    marker: str = ""

    def to_line(self) -> str:
        key = self.key.replace("\n", " ")
        return f"{self.pid} {self.pgid} {self.create_time!r} {self.marker or '-'} {key}\n"


@dataclass(frozen=True, slots=True)
class Seen:
    """A process found running: pid, start time, group, session and its marker ("" when it has
    none, or none of those looked for)."""

    pid: int
    create_time: float
    pgid: int
    sid: int
    marker: str = ""


class ChildRegistry:
    """The worker's record of its attempts' processes (``<worker_dir>/children``).

    A new registry starts empty and overwrites the file: call :func:`kill_orphans` first.
    Records are keyed by marker (or by pid for those added without one).
    """

    def __init__(self, worker_dir: str | os.PathLike[str]) -> None:
        self._children: dict[str, ChildRecord] = {}
        self._journal = Journal(Path(worker_dir) / FILE_NAME)
        self._journal.rewrite(b"", 0)

    @property
    def records(self) -> list[ChildRecord]:
        """The recorded children, in the order they were added."""
        return list(self._children.values())

    def expect(self, key: str, marker: str) -> None:
        """Record that a process carrying ``marker`` is about to start as ``key``."""
        self._set(marker, ChildRecord(0, 0, 0.0, key, marker))

    def started(self, marker: str, pid: int) -> ChildRecord | None:
        """Add the pid, group and start time of the process expected with ``marker``. When it
        is already gone, the record keeps only the marker (its descendants may live on)."""
        record = self._children.get(marker)
        if record is None:
            return None
        try:
            record = replace(record, pid=pid, pgid=os.getpgid(pid),
                             create_time=psutil.Process(pid).create_time())
        except (psutil.NoSuchProcess, ProcessLookupError):
            return record
        self._set(marker, record)
        return record

    def forget(self, marker: str) -> None:
        """Drop the record of ``marker`` (everything it named is gone). Unknown: ignored."""
        if self._children.pop(marker, None) is not None:
            self._append(f"- {marker}\n")

    def add(self, pid: int, pgid: int | None = None, key: str = "") -> ChildRecord | None:
        """Record the process ``pid`` (its group ``pgid``, default ``pid``) without a marker;
        return the record, or None when the process is already gone."""
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            return None
        record = ChildRecord(pid, pid if pgid is None else pgid, create_time, key)
        self._set(f"#{pid}", record)
        return record

    def remove(self, pid: int) -> None:
        """Forget the records of ``pid`` (it exited and was reaped). Unknown pids are ignored."""
        for name in [name for name, r in self._children.items() if r.pid == pid]:
            del self._children[name]
            self._append(f"- {name}\n")

    def _set(self, name: str, record: ChildRecord) -> None:
        self._children[name] = record
        self._append(record.to_line())

    def _append(self, line: str) -> None:
        self._journal.append(line.encode(), len(self._children), self._content)

    def _content(self) -> bytes:
        """The journal of the live records alone: one line each."""
        return "".join(r.to_line() for r in self._children.values()).encode()


def read_records(worker_dir: str | os.PathLike[str]) -> list[ChildRecord]:
    """Return the records of ``<worker_dir>/children`` (none when it is missing). A line that
    cannot be parsed (a torn write by some other tool) is skipped; a line of the older format
    (``pid pgid create_time key``) has no marker."""
    try:
        text = (Path(worker_dir) / FILE_NAME).read_text(errors="replace")
    except FileNotFoundError:
        return []
    records: dict[str, ChildRecord] = {}
    for line in text.splitlines():
        if line.startswith("- "):
            records.pop(line[2:], None)
            continue
        record = _parse(line)
        if record is not None:
            records[record.marker or f"#{record.pid}"] = record
    return list(records.values())


def _parse(line: str) -> ChildRecord | None:
    parts = line.split(" ", 4)
    try:
        pid, pgid, create_time = int(parts[0]), int(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        return None
    if len(parts) == 5:
        marker = "" if parts[3] == "-" else parts[3]
        return ChildRecord(pid, pgid, create_time, parts[4], marker)
    return ChildRecord(pid, pgid, create_time, parts[3] if len(parts) > 3 else "")


def select_orphans(records: Iterable[ChildRecord],
                   seen: Iterable[Seen]) -> list[tuple[ChildRecord, Seen]]:
    """The processes of ``seen`` that ``records`` name (see the module docstring), each once,
    with the first record that names it. Pure: no I/O."""
    seen = list(seen)
    by_pid = {s.pid: s for s in seen}
    chosen: dict[int, tuple[ChildRecord, Seen]] = {}
    for record in records:
        holder = by_pid.get(record.pid) if record.pid else None
        leader = holder is not None and _same_start(holder.create_time, record.create_time)
        # A group or session is matched by the leader's pid only while that leader is alive
        # (same start time). Once it is gone its pid can be reused by a new leader whose own
        # members outlive it: only the marker tells the job's processes apart then (a record
        # without one, of the older format, still uses the group).
        groups = (record.pid > 0 and record.pgid == record.pid
                  and (leader or (holder is None and not record.marker)))
        for proc in seen:
            if proc.pid in chosen:
                continue
            if ((leader and proc is holder)
                    or (record.marker and proc.marker == record.marker)
                    or (groups and record.pid in (proc.pgid, proc.sid)
                        and proc.create_time >= record.create_time - _SAME_START_S)):
                chosen[proc.pid] = (record, proc)
    return list(chosen.values())


def kill_records(records: Iterable[ChildRecord],
                 sig: int = signal.SIGKILL) -> list[ChildRecord]:
    """Send ``sig`` to every process the records name; return the records that named at least
    one process signalled. Scans every process this user may see (psutil); logs each kill."""
    records = list(records)
    if not records:
        return []
    markers = {r.marker for r in records if r.marker}
    killed: dict[int, ChildRecord] = {}
    for record, proc in select_orphans(records, _snapshot(markers)):
        name = _name(proc.pid)
        if signal_exact(proc.pid, lambda proc=proc: _still(proc), sig):
            _log.warning("killed process %d (%s), left running by %s", proc.pid, name,
                         record.key or record.marker or "a job")
            killed[id(record)] = record
    return list(killed.values())


def kill_orphans(worker_dir: str | os.PathLike[str],
                 sig: int = signal.SIGKILL) -> list[ChildRecord]:
    """Send ``sig`` to every process the records of ``<worker_dir>/children`` name, empty the
    file, and return the records that named a process signalled.

    Call it at worker start, before the launcher starts anything. Processes this user may not
    signal are skipped. To wait for them: ``psutil.wait_procs`` on their pids.
    """
    killed = kill_records(read_records(worker_dir), sig)
    path = Path(worker_dir) / FILE_NAME
    if path.exists():
        path.write_text("")
    return killed


def _snapshot(markers: set[str]) -> list[Seen]:
    """Every process now (but this one), with its marker when it is one of ``markers``."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            create_time = proc.create_time()
            pgid, sid = os.getpgid(proc.pid), os.getsid(proc.pid)
        except (psutil.Error, OSError):
            continue
        marker = ""
        if markers:
            try:
                value = proc.environ().get(MARKER_VAR, "")
            except (psutil.Error, OSError):  # another user's process, a zombie
                value = ""
            marker = value if value in markers else ""
        found.append(Seen(proc.pid, create_time, pgid, sid, marker))
    return found


def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def _still(proc: Seen) -> bool:
    try:
        return _same_start(psutil.Process(proc.pid).create_time(), proc.create_time)
    except psutil.Error:
        return False


def _same_start(a: float, b: float) -> bool:
    return abs(a - b) <= _SAME_START_S
