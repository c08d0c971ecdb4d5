"""What the launcher (``launcher``) does after a job's leader exits: find what the job left
running, SIGTERM it at once and SIGKILL what is still there after the job's grace.

A mixin of the launcher's ``_Launcher`` (it uses its ``_children``, ``_at`` and ``_send``);
gevent-free like the launcher.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from titan_actors.execution import _leftovers
from titan_actors.wire.messages.launcher import CleanupDone

_KILL_ROUNDS = 8                 # SIGKILL rounds of a cleanup (each catches what forked meanwhile)


class CleanupMixin:
    """The cleanup steps of the launcher (see the module docstring)."""

    _children: dict[int, Any]

    def _look(self, child: Any) -> tuple[_leftovers.JobMark, list[_leftovers.Proc]]:
        """What the job of ``child`` left running, looked for while its leader is a zombie
        (its start time is still there to read, and no other process can hold its pid)."""
        procs = _leftovers.descendants(os.getpid(), self._children.keys(), single_root=True)
        if not procs:  # the common case: no /proc/PID/stat of the leader to read
            return _leftovers.JobMark(child.pid, 0, child.group, child.marker), []
        leader = _leftovers.stat(child.pid)
        job = _leftovers.JobMark(child.pid, leader.start if leader else 0, child.group,
                                 child.marker)
        return job, _leftovers.select(procs, job, False,
                                      lambda pid: _leftovers.has_marker(pid, job.marker))

    def _clean_up(self, child: Any, job: _leftovers.JobMark,
                  found: list[_leftovers.Proc]) -> tuple[list[_leftovers.Proc], bool]:
        """The leader of ``child`` was just reaped: SIGTERM what its job left running
        (``found``), and SIGKILL what is still there after the grace. Returns the processes
        sent SIGTERM, and whether a SIGKILL round (then ``CleanupDone``) follows.

        When the job was killed (``LaunchKill`` to its group), its group's members got that
        signal already and are on their way out: they are neither signalled twice nor counted
        as left running, but the SIGKILL round after the grace covers them too."""
        if not found:
            return [], False
        fresh = [p for p in found if not (child.told and p.pgid == child.pid)]
        left = _leftovers.signal_procs(fresh, signal.SIGTERM)
        self._at(self._clock() + max(child.grace, 0.0),
                 lambda: self._finish_cleanup(child.key, job))
        return left, True

    def _finish_cleanup(self, key: str, job: _leftovers.JobMark) -> None:
        killed: set[tuple[int, int]] = set()
        for _ in range(_KILL_ROUNDS):  # a round finds what forked before the last one's SIGKILL
            found = [p for p in self._find(job) if (p.pid, p.start) not in killed]
            if not found:
                break
            _leftovers.signal_procs(found, signal.SIGKILL)
            killed.update((p.pid, p.start) for p in found)
        self._send(CleanupDone(key, job.marker, len(killed)))

    def _find(self, job: _leftovers.JobMark) -> list[_leftovers.Proc]:
        # the jobs still running own their subtrees: nothing of an exited job is in them
        return _leftovers.find(job, os.getpid(), skip=self._children.keys(), single_root=True)
