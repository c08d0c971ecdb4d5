"""Finding what a job left running (``execution._leftovers``): the pure selection, and /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from support import wait_until
from titan_actors.execution import _leftovers
from titan_actors.execution._leftovers import JobMark, Proc

JOB = JobMark(pid=100, start=5000, own_session=True, marker="run/job/1/1/abcd")


def _proc(pid: int, start: int = 5001, pgid: int | None = None, sid: int | None = None,
          zombie: bool = False) -> Proc:
    return Proc(pid, pid if pgid is None else pgid, pid if sid is None else sid, start, zombie,
                "p")


def _select(procs, marked=(), taken=False, job=JOB):
    asked = []

    def has(pid: int) -> bool:
        asked.append(pid)
        return pid in marked
    chosen = [p.pid for p in _leftovers.select(procs, job, taken, has)]
    return chosen, asked


def test_group_and_session_members_are_the_job_s():
    chosen, asked = _select([_proc(101, pgid=100), _proc(102, pgid=102, sid=100)])
    assert chosen == [101, 102] and asked == []  # no environment was read for them


def test_the_marker_finds_a_daemon_that_left_the_session():
    chosen, _ = _select([_proc(200), _proc(201)], marked={200})
    assert chosen == [200]


def test_once_the_leader_pid_is_taken_only_the_marker_counts():
    # pid 100 holds a new process: group 100 may be a new group of that process's
    chosen, _ = _select([_proc(101, pgid=100), _proc(200)], marked={200}, taken=True)
    assert chosen == [200]


def test_older_processes_zombies_and_the_leader_pid_are_never_chosen():
    procs = [_proc(300, start=4999, pgid=100), _proc(301, start=4000), _proc(302, zombie=True,
             pgid=100), _proc(100, pgid=100)]
    chosen, asked = _select(procs, marked={300, 301, 302, 100})
    assert chosen == [] and asked == []  # nothing older than the job is even looked at


def test_a_job_without_its_own_session_or_marker():
    shared = JobMark(pid=100, start=5000, own_session=False, marker="")
    chosen, asked = _select([_proc(101, pgid=100)], marked={101}, job=shared)
    assert chosen == [] and asked == []


def test_stat_reads_this_process():
    me = _leftovers.stat(os.getpid())
    assert (me.pid, me.pgid, me.sid, me.zombie) == (os.getpid(), os.getpgid(0), os.getsid(0),
                                                    False)
    assert me.start > 0 and _leftovers.is_same(me)
    assert not _leftovers.is_same(Proc(me.pid, me.pgid, me.sid, me.start + 1, False, "x"))
    assert _leftovers.stat(2**22 + 12345) is None  # above pid_max: no such process


def test_has_marker_matches_the_whole_variable_only():
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "TITAN_ATTEMPT_MARKER": "k/abcd"}
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"], env=env)
    try:  # Popen returns before exec has set up the new environment: wait for it
        wait_until(lambda: _leftovers.has_marker(child.pid, "k/abcd"), timeout=10,
                   what="the child's environment")
        assert not _leftovers.has_marker(child.pid, "k/abc")
        assert not _leftovers.has_marker(child.pid, "k/abcde")
        # the descendants of this process, seen through /proc, include it
        assert child.pid in [p.pid for p in _leftovers.descendants(os.getpid())]
        proc = _leftovers.stat(child.pid)
        older = Proc(proc.pid, proc.pgid, proc.sid, proc.start - 1, False, "x")
        assert _leftovers.signal_procs([older], signal.SIGTERM) == []  # another start: kept
        assert child.poll() is None
        assert _leftovers.signal_procs([proc], signal.SIGTERM) == [proc]
        assert child.wait(10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait(10)
