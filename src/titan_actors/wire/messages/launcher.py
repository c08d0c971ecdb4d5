"""The pipe protocol between a worker and its launcher process (type ids 280-299).

These frames never cross the network: they travel over a Unix socket pair between a worker and
the launcher it started (``execution.launcher``), so they require no capability. The worker sends
requests (``Launch*``); the launcher answers with events (``Launcher*`` / ``Spawn*`` /
``ProcessExited``), each naming the caller's key. A :class:`LaunchSpawn` frame whose ``fds`` is 2
carries two file descriptors (the write ends of the job's stdout and stderr pipes) as
``SCM_RIGHTS`` ancillary data attached to its first byte.
"""

from __future__ import annotations

from ..registry import Message, message


@message(280)
class LaunchSpawn(Message):
    """Start ``argv`` with exactly ``env`` in ``cwd``.

    ``fds``: 2 when the frame carries stdout and stderr write ends (in that order), 0 for
    /dev/null. ``rlimits``: ``resource.RLIMIT_*`` -> limit (soft = hard). ``new_session``: the
    child calls setsid, so its whole tree can be signalled as one group. ``marker``: set as
    ``TITAN_ATTEMPT_MARKER`` in the environment (inherited by every descendant) when not empty.
    ``kill_group_on_exit``: when the leader exits, terminate what it left running (its group and
    session, and every process carrying its marker): SIGTERM at once, SIGKILL ``cleanup_grace``
    seconds later. ``warm``: a Python job that the launcher may fork from its warm interpreter
    (``execution.warm``) instead of spawning, when the argv allows it.
    """

    key: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    rlimits: dict[int, int]
    fds: int
    new_session: bool = True
    kill_group_on_exit: bool = True
    marker: str = ""
    cleanup_grace: float = 2.0
    warm: bool = False


@message(281)
class LaunchKill(Message):
    """Send ``signal`` to the process group of ``key``; SIGKILL it ``grace`` seconds later (0:
    no escalation). Unknown keys are ignored: the process has already exited."""

    key: str
    signal: int
    grace: float


@message(282)
class LaunchShutdown(Message):
    """SIGTERM every group, SIGKILL what is left after ``grace`` seconds, reap, exit."""

    grace: float


@message(283)
class LauncherReady(Message):
    """The launcher is up and listening (its first frame)."""

    pid: int


@message(284)
class SpawnSucceeded(Message):
    """``key`` runs as ``pid`` (also its process group id when it has its own session)."""

    key: str
    pid: int


@message(285)
class SpawnFailed(Message):
    """``key`` could not be started: ``error`` says why (``errno`` 0: not an OS error)."""

    key: str
    error: str
    errno: int


@message(286)
class ProcessExited(Message):
    """The leader of ``key`` was reaped: ``code`` is its exit status, or -N when signal N killed
    it (as ``os.waitstatus_to_exitcode``). ``left_running``: how many processes the job left
    running were sent SIGTERM (``left_names``: ``"PID (name)"`` of the first ten). ``cleaning``:
    some process of the job was still there; :class:`CleanupDone` follows after the SIGKILL
    round."""

    key: str
    pid: int
    code: int
    left_running: int = 0
    left_names: tuple[str, ...] = ()
    cleaning: bool = False


@message(287)
class CleanupDone(Message):
    """What the process of ``key`` (launched with ``marker``) left running is gone: the SIGKILL
    round after the grace is over. ``killed``: how many were still there and got SIGKILL."""

    key: str
    marker: str
    killed: int = 0
