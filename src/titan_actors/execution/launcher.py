"""The launcher: a small, never-patched process that starts, signals and reaps a worker's jobs.

Run as ``python -m titan_actors.execution.launcher FD`` where FD is one end of a Unix stream
socket pair; the worker (``launcher_client.Launcher``) holds the other end. Frames are the
wire's (``wire.messages.launcher``). This module imports no gevent: spawning from a
monkey-patched gevent process is slow (``gevent.subprocess``) or hangs (patched ``fork`` +
``waitpid``), so a worker keeps its event loop clean by delegating here.

How it works, one thread around one ``selectors`` loop:

* spawn: ``os.posix_spawn`` (vfork + exec in glibc), by default in a new session so the job's
  tree is one process group; stdin /dev/null, stdout/stderr the two pipe write ends sent with the
  request (``SCM_RIGHTS``, received close-on-exec so no other job inherits them; our copies are
  closed at once). ``chdir`` around the spawn sets the cwd (3.11's ``posix_spawn`` has none; one
  thread, so nothing else sees it). A job with resource limits is forked instead
  (``_posix.spawn_as`` without a user switch): the child sets them before its ``exec``, so no
  instruction of the job runs without them.
* as another user: started with ``--user UID:GID`` (a root launcher whose jobs run as another
  user, ``job_user``), the launcher forks, and the child sets its limits, drops to that user
  (no supplementary group, then the group, then the user), enters the cwd as that user and
  execs (``_posix.spawn_as``); the warm executor is off then (its fork would hold the root
  launcher's memory). Processes are still reaped, signalled and cleaned up as root.
* warm: started with ``--warm MODULES``, the launcher imports those modules once it is ready
  and forks Python jobs that ask for it (``LaunchSpawn.warm``) from itself instead of spawning a
  fresh interpreter (``warm``: what the job sees is what ``python -u script`` gives it). The
  child is reaped, limited, signalled and cleaned up like a spawned one.
* reap: SIGCHLD wakes the loop (``signal.set_wakeup_fd``); ``waitpid(-1, WNOHANG)`` reaps. As a
  child subreaper (Linux) the launcher also reaps orphaned grandchildren.
* clean up: when a leader exits (unless asked otherwise), what its job left running gets
  SIGTERM at once and SIGKILL after the job's ``cleanup_grace``: the members of its group and
  session, and every process carrying its marker (``TITAN_ATTEMPT_MARKER``), such as a daemon
  that double-forked out of the session. All of them are in the launcher's tree (it is their
  subreaper), so only that tree is searched (``_leftovers``). The exit is reported at once with
  the count (nothing then holds the job's pipes for long); ``CleanupDone`` follows when the
  SIGKILL round is over. Without /proc, the group alone is SIGKILLed at once.
* kill: the signal goes to the whole group; SIGKILL follows after the caller's grace.
* end: on EOF from the worker (it died or closed), SIGTERM, or a protocol error, every group is
  SIGKILLed, children are reaped (at most ``_REAP_S``), and the launcher exits. On a
  ``LaunchShutdown`` the groups get SIGTERM first and SIGKILL after the grace.
"""

from __future__ import annotations

import array
import heapq
import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from titan_actors.errors import ProtocolError
from titan_actors.execution import _leftovers, _posix, warm
from titan_actors.execution.launcher_cleanup import CleanupMixin
from titan_actors.wire import codec
from titan_actors.wire.frame import FrameReader
from titan_actors.wire.messages.launcher import (
    LauncherReady,
    LaunchKill,
    LaunchShutdown,
    LaunchSpawn,
    ProcessExited,
    SpawnFailed,
    SpawnSucceeded,
)

__all__ = ["main"]

_RECV_BYTES = 64 * 1024  # a recv into a buffer of 128 KiB or more costs ~10x more here
_MAX_FDS = 16                    # per recvmsg; a request carries 2, and one recvmsg stops there
_ANC_BYTES = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)
_REAP_S = 5.0                    # after the last SIGKILL: how long to wait for children to go


@dataclass(slots=True)
class _Child:
    key: str
    pid: int
    group: bool               # leads its own process group (signal the group, not the pid)
    kill_group_on_exit: bool  # clean up what it leaves running when it exits
    marker: str = ""
    grace: float = 2.0        # of the cleanup: SIGTERM, then SIGKILL this much later
    told: bool = False        # its group was signalled (LaunchKill): its members know already
    report: bool = True       # False: reaped silently (a spawn reported as failed after all)


class _Launcher(CleanupMixin):
    def __init__(self, fd: int, clock: Callable[[], float] = time.monotonic,
                 preload: tuple[str, ...] | None = None,
                 user: tuple[int, int] | None = None) -> None:
        os.set_inheritable(fd, False)
        self._user = user if user is not None and user[0] != os.geteuid() else None
        self._preload = preload if self._user is None else None
        self._zygote: warm.Zygote | None = None
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self._clock = clock
        self._reader = FrameReader()
        self._fds: deque[int] = deque()
        self._out = bytearray()
        self._children: dict[int, _Child] = {}
        self._by_key: dict[str, _Child] = {}
        self._leftovers: set[int] = set()     # groups whose leader exited, members alive
        self._deadlines: list[tuple[float, int, Callable[[], None]]] = []  # (when, seq, do)
        self._can_look = os.path.exists("/proc/self/stat")  # else no cleanup beyond the group
        self._seq = 0
        self._closing = False
        self._give_up_at: float | None = None
        self._connected = True
        self._has_children = False
        self._sel = selectors.DefaultSelector()
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _posix.no_op)  # the wakeup fd carries them; a handler enables it
        self._sel.register(self._sock, selectors.EVENT_READ, self._on_socket)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._on_signals)
        self._handlers: dict[type, Callable[[Any], None]] = {
            LaunchSpawn: self._spawn, LaunchKill: self._kill, LaunchShutdown: self._shutdown}

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until the worker goes away or asks to shut down; return the exit status."""
        if self._preload is not None:  # before ready: no launch waits on the imports
            self._zygote = warm.Zygote.for_launcher(self._preload)
        self._send(LauncherReady(os.getpid()))
        while not self._done():
            for key, mask in self._sel.select(self._timeout()):
                key.data(mask)
            self._fire_deadlines()
        self._flush()
        self._sock.close()
        return 1 if self._has_children else 0  # 1: gave up on some child

    def _timeout(self) -> float | None:
        whens = [self._deadlines[0][0]] if self._deadlines else []
        if self._give_up_at is not None:
            whens.append(self._give_up_at)
        return max(0.0, min(whens) - self._clock()) if whens else None

    def _done(self) -> bool:
        if not self._closing:
            return False
        if not self._has_children and not self._out:
            return True
        return self._give_up_at is not None and self._clock() >= self._give_up_at

    def _fire_deadlines(self) -> None:
        now = self._clock()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, action = heapq.heappop(self._deadlines)
            action()
        if self._closing and not self._deadlines and self._has_children:
            for pid in _posix.direct_children():  # escaped daemons (new sessions) adopted by us
                _posix.send_signal(pid, False, signal.SIGKILL)

    # -- the socket ----------------------------------------------------------------------------

    def _on_socket(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush()
        if not mask & selectors.EVENT_READ:
            return
        try:
            data, ancdata, flags, _ = self._sock.recvmsg(_RECV_BYTES, _ANC_BYTES,
                                                        socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancdata, flags = b"", [], 0
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                self._fds.extend(fds)
        try:
            if flags & socket.MSG_CTRUNC:
                raise ProtocolError("file descriptors were dropped in transit (MSG_CTRUNC)")
            if not data:
                self._abandon()
                return
            for frame in self._reader.feed(data):
                msg = codec.decode_frame_message(frame)
                handler = self._handlers.get(type(msg))
                if handler is None:
                    raise ProtocolError(f"launcher got an unexpected message {msg!r}")
                handler(msg)
        except ProtocolError as e:
            print(f"titan launcher: {e}; killing every job and exiting", file=sys.stderr)
            self._abandon()

    def _send(self, msg: Any) -> None:
        if self._connected:
            self._out += codec.encode_frame(msg)
            self._flush()

    def _flush(self) -> None:
        while self._out and self._connected:
            try:
                sent = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the worker is gone: nobody to tell any more
                self._out.clear()
                self._disconnect()
                return
            del self._out[:sent]
        if self._connected:
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._out else 0)
            self._sel.modify(self._sock, mask, self._on_socket)

    def _disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self._out.clear()
            self._sel.unregister(self._sock)

    # -- requests ------------------------------------------------------------------------------

    def _spawn(self, msg: LaunchSpawn) -> None:
        if msg.fds not in (0, 2) or len(self._fds) < msg.fds:
            raise ProtocolError(f"spawn of {msg.key!r} announces {msg.fds} file descriptors, "
                                f"{len(self._fds)} arrived")
        fds = [self._fds.popleft() for _ in range(msg.fds)]
        try:
            if self._closing:
                self._send(SpawnFailed(msg.key, "the launcher is shutting down", 0))
            elif msg.key in self._by_key:
                self._send(SpawnFailed(msg.key, f"key {msg.key!r} is already running", 0))
            else:
                self._start(msg, fds)
        finally:
            for fd in fds:
                os.close(fd)

    def _start(self, msg: LaunchSpawn, fds: list[int]) -> None:
        program = msg.argv[0] if msg.argv else ""
        try:
            _posix.check_rlimits(msg.rlimits)
            zygote = self._zygote if msg.warm else None
            if zygote is not None and zygote.suits(msg):
                env = _posix.job_env(msg)
                pid = _posix.in_cwd(msg.cwd, lambda: zygote.fork(msg, fds, env))
            elif self._user is not None or msg.rlimits:
                pid = _posix.spawn_as(msg, fds, *(self._user or (None, None)))
            else:
                pid = _posix.spawn(msg, fds)
        except OSError as e:
            self._send(SpawnFailed(msg.key, _posix.describe(program, msg.cwd, e), e.errno or 0))
            return
        except (ValueError, warm.WarmStartFailed) as e:  # an empty argv, a NUL byte, a limit
            self._send(SpawnFailed(msg.key, f"cannot start {program!r}: {e}", 0))  # too high
            return
        child = _Child(msg.key, pid, msg.new_session, msg.kill_group_on_exit, msg.marker,
                       msg.cleanup_grace)
        self._children[pid] = child
        self._by_key[msg.key] = child
        self._has_children = True
        self._send(SpawnSucceeded(msg.key, pid))

    def _kill(self, msg: LaunchKill) -> None:
        child = self._by_key.get(msg.key)
        if child is None:
            return
        _posix.send_signal(child.pid, child.group, msg.signal)
        child.told = child.group
        if msg.grace > 0 and msg.signal != signal.SIGKILL:
            self._kill_later(child.pid, child.group, msg.grace)

    def _kill_later(self, pid: int, group: bool, grace: float) -> None:
        def kill() -> None:
            if pid in self._children or pid in self._leftovers:  # else its id may be reused
                _posix.send_signal(pid, group, signal.SIGKILL)
        self._at(self._clock() + grace, kill)

    def _at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._deadlines, (when, self._seq, action))

    def _shutdown(self, msg: LaunchShutdown) -> None:
        self._closing = True
        for pid, group in self._targets():
            _posix.send_signal(pid, group, signal.SIGTERM)
            self._kill_later(pid, group, msg.grace)
        self._give_up_at = self._clock() + max(msg.grace, 0.0) + _REAP_S
        self._reap()

    def _abandon(self) -> None:
        """The worker is gone or cannot be understood: kill everything now, reap, exit."""
        self._disconnect()
        self._closing = True
        for pid, group in self._targets():
            _posix.send_signal(pid, group, signal.SIGKILL)
        for pid in _posix.direct_children():
            _posix.send_signal(pid, False, signal.SIGKILL)
        self._deadlines.clear()
        self._give_up_at = self._clock() + _REAP_S
        self._reap()

    def _targets(self) -> list[tuple[int, bool]]:
        return ([(c.pid, c.group) for c in self._children.values()]
                + [(pgid, True) for pgid in self._leftovers])

    # -- signals and reaping -------------------------------------------------------------------

    def _on_signals(self, _mask: int) -> None:
        got = bytearray()
        while True:
            try:
                chunk = os.read(self._wake_r, 512)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                break
            got += chunk
        if signal.SIGTERM in got or signal.SIGHUP in got:
            self._abandon()
        if signal.SIGCHLD in got:
            self._reap()

    def _reap(self) -> None:
        while True:
            try:  # look first, reap after: the leader's zombie still holds its pid and group
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                self._has_children = False
                break
            if info is None or info.si_pid == 0:
                break
            pid = info.si_pid
            child = self._children.get(pid)
            cleans = (child is not None and child.kill_group_on_exit and self._can_look
                      and not self._closing)
            job, found = self._look(child) if cleans else (None, [])
            _, status = os.waitpid(pid, 0)  # a zombie: at once
            if child is None:
                continue  # an orphaned grandchild adopted by us (subreaper): nothing to report
            del self._children[pid]
            if self._by_key.get(child.key) is child:
                del self._by_key[child.key]
            left: list[_leftovers.Proc] = []
            cleaning = False
            if job is not None:
                left, cleaning = self._clean_up(child, job, found)
            elif child.group and (child.kill_group_on_exit or self._closing):
                _posix.send_signal(pid, True, signal.SIGKILL)
            elif child.group and _posix.group_alive(pid):
                self._leftovers.add(pid)
            if child.report:
                self._send(ProcessExited(child.key, pid, os.waitstatus_to_exitcode(status),
                                         len(left), _leftovers.describe(left), cleaning))
        self._leftovers = {pgid for pgid in self._leftovers if _posix.group_alive(pgid)}


_USAGE = "usage: python -m titan_actors.execution.launcher FD [--warm MODULE,...] [--user UID:GID]"


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``launcher FD [--warm MODULE,...] [--user UID:GID]``. Returns the process
    exit status."""
    args = sys.argv[1:] if argv is None else argv
    preload: tuple[str, ...] | None = None
    user: tuple[int, int] | None = None
    options = dict(zip(args[1::2], args[2::2], strict=False))
    if "--warm" in options:  # the warm executor, these modules preloaded
        preload = tuple(name for name in options.pop("--warm").split(",") if name)
    if "--user" in options:  # jobs run as this user (the launcher is root)
        uid, _, gid = options.pop("--user").partition(":")
        if not (uid.isdigit() and gid.isdigit()):
            print(_USAGE, file=sys.stderr)
            return 2
        user = (int(uid), int(gid))
    if options or len(args) % 2 != 1 or not args[0].isdigit():
        print(_USAGE, file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    if sys.path and sys.path[0] in ("", os.getcwd()):  # "-m" put the worker's cwd there: no
        del sys.path[0]                                 # module is imported from it
    os.chdir("/")  # hold no directory busy
    _posix.become_subreaper()
    return _Launcher(int(args[0]), preload=preload, user=user).run()


if __name__ == "__main__":
    sys.exit(main())
