"""The OS primitives of the launcher process (``launcher``): spawn, signal, reap helpers.

Gevent-free, like the launcher. Linux-specific parts (``/proc``, ``prctl``) degrade to doing
nothing elsewhere.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Callable
from typing import Any

from titan_actors.execution._leftovers import MARKER_VAR
from titan_actors.wire.messages.launcher import LaunchSpawn

# Python ignores SIGPIPE and SIGXFSZ at startup and the launcher ignores SIGINT; ignored signals
# stay ignored across exec, so the job gets them (and the others a job may rely on) reset.
_SIGDEF = frozenset({signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                     signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
                     signal.SIGCHLD, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_PR_SET_CHILD_SUBREAPER = 36


def no_op(_signum: int, _frame: object) -> None:
    """A signal handler that does nothing (``set_wakeup_fd`` needs one installed)."""
    return None


def send_signal(pid: int, group: bool, sig: int) -> None:
    """Signal the process group ``pid`` (``group``) or the process; gone or foreign: ignored."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """True while some process is in the group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def direct_children() -> list[int]:
    """Our children as the kernel lists them (Linux; empty where /proc cannot say)."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children", "rb") as f:
            return [int(pid) for pid in f.read().split()]
    except OSError:
        return []


def check_rlimits(rlimits: dict[int, int]) -> None:
    """Raise ValueError for a limit this process could not give (above its hard limit)."""
    for res, value in rlimits.items():
        _soft, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY and (value == resource.RLIM_INFINITY or value > hard):
            raise ValueError(f"limit {res}={value} is above this worker's hard limit {hard}")


def job_env(msg: LaunchSpawn) -> dict[str, str]:
    """The environment of the job of ``msg``: its own, with its marker."""
    return {**msg.env, MARKER_VAR: msg.marker} if msg.marker else msg.env


def in_cwd(cwd: str, start: Callable[[], int]) -> int:
    """Call ``start`` with ``cwd`` as this process's working directory (the launcher is one
    thread: nothing else sees it), then go back to ``/``. A cwd that cannot be entered raises
    its OSError marked for :func:`describe`."""
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as e:
            e.titan_cwd = True  # type: ignore[attr-defined]
            raise
    try:
        return start()
    finally:
        if cwd:
            os.chdir("/")


def spawn(msg: LaunchSpawn, fds: list[int]) -> int:
    """Start the process ``msg`` asks for and return its pid; OSError / ValueError say why not."""
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    if fds:
        actions += [(os.POSIX_SPAWN_DUP2, fds[0], 1), (os.POSIX_SPAWN_DUP2, fds[1], 2)]
    else:
        actions += [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    if not msg.argv:
        raise ValueError("the command is empty")
    start = os.posix_spawn if "/" in msg.argv[0] else os.posix_spawnp
    env = job_env(msg)
    return in_cwd(msg.cwd, lambda: start(msg.argv[0], msg.argv, env, file_actions=actions,
                                         setsid=msg.new_session, setsigdef=_SIGDEF,
                                         setsigmask=()))


def describe(program: str, cwd: str, e: OSError) -> str:
    """The error text of a failed spawn: what could not be done, and the OS's reason."""
    why = os.strerror(e.errno).lower() if e.errno else str(e)
    if getattr(e, "titan_cwd", False):
        return f"cannot enter the working directory {cwd!r}: {why}"
    return f"cannot start {program!r}: {why}"


def apply_rlimits(pid: int, rlimits: dict[int, int]) -> None:
    """Set each limit (soft = hard) on the running process ``pid``."""
    for res, value in rlimits.items():
        resource.prlimit(pid, res, (value, value))


def become_subreaper() -> None:
    """Have orphaned descendants reparented to this process (Linux), so it reaps them."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: orphaned grandchildren go to init instead


def pipes(count: int) -> tuple[list[int], list[int]]:
    """``count`` pipes: their non-blocking read ends, and their (blocking) write ends."""
    read_fds: list[int] = []
    write_fds: list[int] = []
    try:
        for _ in range(count):
            r, w = os.pipe()
            read_fds.append(r)
            write_fds.append(w)
            os.set_blocking(r, False)
    except BaseException:
        close_all(read_fds)
        close_all(write_fds)
        raise
    return read_fds, write_fds


def close_all(fds: list[int]) -> None:
    """Close and forget every descriptor of ``fds`` (already closed ones are skipped)."""
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass
