"""What a job left running when its main process exited: find it in /proc, signal it exactly.

Gevent-free and psutil-free: the launcher (never patched, started per worker) uses it. Linux
only; elsewhere nothing is found and the launcher falls back to signalling the job's group.

A job's processes are recognised three ways, each also started no earlier than the job:

* its process group and session (the job runs in a session of its own, whose ids are the
  leader's pid), as long as no other process holds that pid (else the ids may be a new group's);
* the marker: every attempt gets ``TITAN_ATTEMPT_MARKER=<unique value>`` in its environment,
  which descendants inherit even when they leave the session (``setsid``, a double fork), unless
  they scrub their environment or overwrite it (some process-title tricks do);
* where to look: the launcher is a child subreaper, so a descendant whose parent exits is
  re-parented to the launcher, never to init. After the main process exits, everything the job
  left is in the launcher's tree, outside the subtrees of the jobs still running.

A process is named by its pid and start time (clock ticks since boot, ``/proc/PID/stat`` field
22), and signalled through a pidfd after checking the start time again, so a pid reused by an
unrelated process is never signalled.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

__all__ = ["MARKER_VAR", "JobMark", "Proc", "describe", "descendants", "find", "has_marker",
           "is_same", "select", "signal_exact", "signal_procs", "stat"]

MARKER_VAR = "TITAN_ATTEMPT_MARKER"
_MAX_ENVIRON = 4 << 20  # bytes of /proc/PID/environ read at most (ARG_MAX is far below)


@dataclass(frozen=True, slots=True)
class Proc:
    """One process as /proc shows it."""

    pid: int
    pgid: int
    sid: int
    start: int     # clock ticks since boot: with the pid, the process's identity
    zombie: bool
    name: str


@dataclass(frozen=True, slots=True)
class JobMark:
    """What identifies the processes of one job: its leader (pid and start time), whether the
    leader had a session of its own (so its group and session ids are the job's), and its
    marker (empty: none)."""

    pid: int
    start: int
    own_session: bool
    marker: str


def stat(pid: int) -> Proc | None:
    """The process ``pid`` now, or None when there is none (or /proc cannot say)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        close = data.rindex(b")")  # the name may hold spaces and parentheses
        name = data[data.index(b"(") + 1:close].decode(errors="replace")
        fields = data[close + 2:].split()
        return Proc(pid, int(fields[2]), int(fields[3]), int(fields[19]), fields[0] == b"Z", name)
    except (ValueError, IndexError):
        return None


def is_same(proc: Proc) -> bool:
    """True while ``proc``'s pid still belongs to that process (same start time)."""
    now = stat(proc.pid)
    return now is not None and now.start == proc.start


def has_marker(pid: int, marker: str) -> bool:
    """True when the environment ``pid`` was started with holds ``MARKER_VAR=marker``.
    False when it does not, or cannot be read (another user's process, a zombie)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read(_MAX_ENVIRON)
    except OSError:
        return False
    return f"\0{MARKER_VAR}={marker}\0".encode() in b"\0" + data + b"\0"


def _children(pid: int) -> list[int]:
    """The children of ``pid`` (of every thread of it). Raises OSError when /proc cannot say."""
    found: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(child) for child in f.read().split()]
        except FileNotFoundError:  # the thread ended meanwhile, or no CONFIG_PROC_CHILDREN
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue
            raise
    return found


def _children_by_scan() -> dict[int, list[int]]:
    """Every process's children, from one pass over /proc (when the children files are
    missing)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
            ppid = int(data[data.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(root: int, skip: Collection[int] = (), single_root: bool = False) -> list[Proc]:
    """The descendants of ``root`` now, without entering the subtrees of ``skip``.
    ``single_root``: ``root`` has one thread (its children are read from one file)."""
    try:
        if single_root:
            with open(f"/proc/{root}/task/{root}/children", "rb") as f:
                first = [int(child) for child in f.read().split()]
        else:
            first = _children(root)
        children_of: Callable[[int], list[int]] = _children
    except OSError:
        try:
            tree = _children_by_scan()
        except OSError:  # no /proc at all
            return []
        first = tree.get(root, [])
        children_of = lambda pid: tree.get(pid, [])  # noqa: E731
    found: list[Proc] = []
    todo = [pid for pid in first if pid not in skip]
    seen = set(todo)
    while todo:
        pid = todo.pop()
        proc = stat(pid)
        if proc is None:
            continue
        found.append(proc)
        try:
            kids = children_of(pid)
        except OSError:  # it exited meanwhile: its children went to the subreaper (us)
            continue
        for kid in kids:
            if kid not in seen and kid not in skip:
                seen.add(kid)
                todo.append(kid)
    return found


def select(procs: Iterable[Proc], job: JobMark, leader_pid_taken: bool,
           marked: Callable[[int], bool]) -> list[Proc]:
    """The processes of ``procs`` that belong to ``job`` (see the module docstring).

    ``leader_pid_taken``: some process now holds the leader's pid (the leader was reaped), so a
    group or session of that id may be someone else's: then only the marker counts.
    ``marked(pid)`` says whether a process carries the job's marker (it reads /proc, so it is
    asked last, and only of processes that started no earlier than the job). Zombies are left
    out: they are dead already.
    """
    chosen = []
    for proc in procs:
        if proc.zombie or proc.start < job.start or proc.pid == job.pid:
            continue
        if job.own_session and not leader_pid_taken and job.pid in (proc.pgid, proc.sid):
            chosen.append(proc)
        elif job.marker and marked(proc.pid):
            chosen.append(proc)
    return chosen


def find(job: JobMark, root: int, skip: Collection[int] = (),
         single_root: bool = False) -> list[Proc]:
    """What ``job`` left running among the descendants of ``root`` (the launcher), outside the
    subtrees of ``skip`` (the leaders of the jobs still running), once its leader was reaped."""
    procs = descendants(root, skip, single_root)
    if not procs:
        return []
    taken = stat(job.pid) is not None
    return select(procs, job, taken, lambda pid: has_marker(pid, job.marker))


def signal_exact(pid: int, still_same: Callable[[], bool], sig: int) -> bool:
    """Send ``sig`` to the process ``pid`` only when ``still_same()`` says it is still the one
    meant; return whether it was sent.

    The process is pinned with a pidfd first (Linux 5.3+), then checked, then signalled
    through the pidfd: a pid reused in between cannot be hit. Without pidfds the check and the
    ``kill`` are as close together as they can be.
    """
    fd = -1
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (OSError, AttributeError):
        pass
    try:
        if not still_same():
            return False
        if fd >= 0:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def signal_procs(procs: Iterable[Proc], sig: int) -> list[Proc]:
    """Signal each process still the one named; return those signalled."""
    return [p for p in procs if signal_exact(p.pid, lambda p=p: is_same(p), sig)]


def describe(procs: Iterable[Proc], limit: int = 10) -> tuple[str, ...]:
    """``"PID (name)"`` of the first ``limit`` processes."""
    return tuple(f"{p.pid} ({p.name})" for p in list(procs)[:limit])
