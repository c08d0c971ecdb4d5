"""The OS primitives of the launcher process (``launcher``): spawn, signal, reap helpers.

Gevent-free, like the launcher. Linux-specific parts (``/proc``, ``prctl``) degrade to doing
nothing elsewhere.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
from collections.abc import Callable
from typing import Any, NoReturn

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
            name = next((n for n in dir(resource) if n.startswith("RLIMIT_")
                         and getattr(resource, n) == res), str(res))
            raise ValueError(f"limit {name}={value} is above this worker's hard limit {hard}")


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


def spawn_as(msg: LaunchSpawn, fds: list[int], uid: int | None, gid: int | None) -> int:
    """:func:`spawn` with resource limits, and as the user ``uid`` (group ``gid``, no
    supplementary group) unless ``uid`` is None: fork, set the limits (before the exec, so not
    one instruction of the job runs without them; ``prlimit`` on another user's process would
    also need CAP_SYS_RESOURCE, which containers rarely give root), drop the launcher's
    privileges, enter the cwd as that user, exec (``posix_spawn`` can do neither). Switching
    users needs root; the job's HOME is then its cwd when ``msg.env`` has none. An exec that
    fails raises its OSError here, as a failed spawn does; the child is reaped."""
    if not msg.argv:
        raise ValueError("the command is empty")
    program = msg.argv[0]
    if "/" not in program:  # as posix_spawnp: on the launcher's PATH
        program = shutil.which(program) or program
    env = job_env(msg)
    if uid is not None and msg.cwd and "HOME" not in env:
        env = {**env, "HOME": msg.cwd}
    err_r, err_w = os.pipe()  # close-on-exec: EOF with nothing read means the exec worked
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(err_r)
        os.close(err_w)
        raise
    if pid == 0:
        _become(msg, fds, program, env, uid, gid, err_w)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    os.close(err_w)
    try:
        report = b""
        while chunk := os.read(err_r, 256):
            report += chunk
    finally:
        os.close(err_r)
    if not report:
        return pid
    os.waitpid(pid, 0)  # it exited without becoming the job: nothing to report as an exit
    where, _, rest = report.decode("utf-8", "replace").partition(":")
    number, _, why = rest.partition(":")
    code = int(number) if number.isdigit() else 0
    error = OSError(code, os.strerror(code) if code else f"{why or 'failed'} (at {where})")
    if where == "cwd":
        error.titan_cwd = True  # type: ignore[attr-defined]
    raise error


def _become(msg: LaunchSpawn, fds: list[int], program: str, env: dict[str, str],
            uid: int | None, gid: int | None, err_w: int) -> NoReturn:
    """In the forked child: what posix_spawn does for :func:`spawn`, then the user switch, then
    exec; on failure "STEP:ERRNO:WHY" goes to ``err_w`` and the child exits 127."""
    step = "setup"
    try:
        signal.set_wakeup_fd(-1)  # the launcher's: a signal here must not wake it
        for sig in _SIGDEF:
            signal.signal(sig, signal.SIG_DFL)
        if msg.new_session:
            os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(fds[0] if fds else null, 1)
        os.dup2(fds[1] if fds else null, 2)
        step = "limits"
        for res, value in msg.rlimits.items():
            resource.setrlimit(res, (value, value))
        if uid is not None and gid is not None:
            step = "user"
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
                raise PermissionError(errno.EPERM, "the user switch did not take")
        step = "cwd"
        if msg.cwd:
            os.chdir(msg.cwd)  # again, as the job user: it must be able to reach it
        step = "exec"
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        os.execve(program, msg.argv, env)
    except BaseException as e:  # noqa: BLE001 - say why, never return to the launcher
        code = (e.errno or 0) if isinstance(e, OSError) else 0
        os.write(err_w, f"{step}:{code}:{e}".encode("utf-8", "replace")[:1000])
    finally:
        os._exit(127)


def describe(program: str, cwd: str, e: OSError) -> str:
    """The error text of a failed spawn: what could not be done, and the OS's reason."""
    why = os.strerror(e.errno).lower() if e.errno else str(e)
    if getattr(e, "titan_cwd", False):
        return f"cannot enter the working directory {cwd!r}: {why}"
    return f"cannot start {program!r}: {why}"


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
