"""The worker's side of the launcher: start it once, then launch, kill and hear about exits.

Everything here uses gevent's modules explicitly (``gevent.socket``, ``gevent.event``) and works
the same whether the process is monkey-patched (a worker) or not (the test process). One reader
greenlet, owned by the :class:`Launcher`, turns the launcher's frames into results: a
:class:`LaunchedProcess` per key, whose ``exited`` AsyncResult holds the exit code (negative: the
signal that killed it), plus an optional ``on_exit`` callback.

Each launch creates two pipes here (close-on-exec); their write ends travel to the launcher with
the request (``SCM_RIGHTS``) and are closed here once sent, so the job holds the only writers and
EOF on the read ends means every process of the job has closed its output. The read ends are
non-blocking and belong to the caller (``output.OutputCapture`` reads and closes them).

Every launch gets a marker, ``<key>/<random>``, that the launcher puts in the process's
environment (``TITAN_ATTEMPT_MARKER``) and uses to find what the process left running when it
exits; ``launcher_records`` keeps the launches in the worker's registry for its next life and
kills what the jobs of a launcher that died left running (without a registry: their groups).
"""

from __future__ import annotations

import array
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gevent import socket as gsocket
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore
from gevent.pool import Group

import titan_actors
from titan_actors.errors import (
    LauncherBrokenError,
    LauncherClosedError,
    LaunchError,
    ProtocolError,
    TitanError,
)
from titan_actors.execution import _posix
from titan_actors.execution.command import passed_env
from titan_actors.execution.launched import LaunchedProcess
from titan_actors.execution.launcher_records import ChildRecords
from titan_actors.execution.orphans import ChildRegistry
from titan_actors.execution.warm import ROOM_VAR
from titan_actors.wire import codec
from titan_actors.wire.frame import DEFAULT_MAX_PAYLOAD, HEADER_SIZE, FrameReader
from titan_actors.wire.messages.launcher import (
    CleanupDone,
    LauncherReady,
    LaunchKill,
    LaunchShutdown,
    LaunchSpawn,
    ProcessExited,
    SpawnFailed,
    SpawnSucceeded,
)

__all__ = ["LaunchedProcess", "Launcher"]

_log = logging.getLogger(__name__)
_RECV_BYTES = 64 * 1024
_SRC_ROOT = str(Path(titan_actors.__file__).resolve().parent.parent)
_UNSAFE = re.compile(r"[^\w./:@+-]")  # what a marker keeps of a key: no spaces, no '='

ExitCallback = Callable[["LaunchedProcess", int], None]


class Launcher(ChildRecords):
    """A running launcher process and the socket to it. Make one with :meth:`start`."""

    def __init__(self, sock: gsocket.socket, popen: subprocess.Popen,
                 on_exit: ExitCallback | None = None,
                 registry: ChildRegistry | None = None) -> None:
        self._sock = sock
        self._popen = popen
        self._on_exit = on_exit
        self._registry = registry
        self._markers: set[str] = set()  # recorded in the registry, not yet forgotten
        self._send_lock = Semaphore()
        self._pending: dict[str, LaunchedProcess] = {}
        self._running: dict[str, LaunchedProcess] = {}
        self._ready: AsyncResult = AsyncResult()
        self._eof = Event()
        self._closing = False
        self._delivering = False
        self._error: TitanError | None = None
        self._group = Group()
        self._handlers: dict[type, Callable] = {
            LauncherReady: self._on_ready, SpawnSucceeded: self._on_spawned,
            SpawnFailed: self._on_spawn_failed, ProcessExited: self._on_exited,
            CleanupDone: self._on_cleanup_done}
        self._reader = self._group.spawn(self._read_loop)

    @classmethod
    def start(cls, python: str = sys.executable, *, timeout: float = 10.0,
              on_exit: ExitCallback | None = None,
              registry: ChildRegistry | None = None,
              warm_preload: Sequence[str] | None = None,
              user: tuple[int, int] | None = None) -> Launcher:
        """Start a launcher process with the interpreter ``python`` and wait until it is ready.

        ``warm_preload``: run the warm executor for Python jobs launched with ``warm=True``,
        with these modules imported beforehand (None: every job is spawned); ``timeout`` then
        covers the imports too. ``user``: (uid, gid) every process it starts runs as, when not
        this process's user (this process must be root; the warm executor is off then). The
        launcher's environment is what a job may get of this process's
        (``command.passed_env``), nothing more.

        ``on_exit(process, code)`` is called from the reader greenlet for every reported exit
        (after ``process.exited`` is set); an exception it raises is logged. ``registry``:
        where to record each launch for the next life (see the module docstring). Raises
        LauncherBrokenError when the launcher exits or stays silent for ``timeout`` seconds.
        """
        parent, child = gsocket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # what a job may get of this environment, never more: warm jobs start as its copies
        env = passed_env()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC_ROOT, env.get("PYTHONPATH")) if p)
        env[ROOM_VAR] = "." * 512  # room for a warm job's marker in /proc/PID/environ
        try:
            popen = subprocess.Popen(
                [python, "-m", "titan_actors.execution.launcher", str(child.fileno()),
                 *(() if warm_preload is None else ("--warm", ",".join(warm_preload))),
                 *(() if user is None else ("--user", f"{user[0]}:{user[1]}"))],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env, close_fds=True)
        except OSError as e:
            parent.close()
            raise LaunchError(f"cannot start the launcher with {python!r}: {e}",
                              e.errno or 0) from e
        finally:
            child.close()
        launcher = cls(parent, popen, on_exit, registry)
        try:
            launcher._ready.wait(timeout)
            if not launcher._ready.ready():
                raise LauncherBrokenError(f"the launcher (pid {popen.pid}) did not report ready "
                                          f"within {timeout} s")
            launcher._ready.get(block=False)
        except BaseException:
            launcher.close(grace=0, timeout=2)
            raise
        return launcher

    @property
    def pid(self) -> int:
        """The launcher process's pid."""
        return self._popen.pid

    @property
    def running(self) -> dict[str, LaunchedProcess]:
        """A copy of the processes started and not yet reported exited, by key."""
        return dict(self._running)

    def launch(self, key: str, argv: Sequence[str], env: Mapping[str, str], cwd: str, *,
               rlimits: Mapping[int, int] | None = None, capture: bool = True,
               new_session: bool = True, kill_group_on_exit: bool = True,
               cleanup_grace: float = 2.0, timeout: float = 10.0,
               warm: bool = False) -> LaunchedProcess:
        """Start ``argv`` with exactly ``env`` (nothing inherited) in ``cwd``, as ``key``.

        ``argv[0]`` without a slash is looked up on the launcher's PATH (resolve it first with
        ``command.build_command`` to use the job's). ``rlimits``: ``resource.RLIMIT_*`` -> limit.
        ``capture``: give the job output pipes (else /dev/null). ``kill_group_on_exit``: when
        the process exits, terminate what it left running (its group, its session, whatever
        carries its marker): SIGTERM, then SIGKILL after ``cleanup_grace`` seconds. ``warm``:
        a Python job (``[python, "-u", script, ...]``) the warm executor may fork instead (when
        the launcher runs one; see ``execution.warm``).

        Returns the LaunchedProcess once the launcher confirms the spawn. Raises LaunchError
        (the program is missing, not executable, the key is in use, the launcher did not answer
        within ``timeout``), LauncherClosedError after :meth:`close`, LauncherBrokenError when
        the launcher died.
        """
        self._check_open()
        if key in self._pending or key in self._running:
            raise LaunchError(f"a process with key {key!r} is already running")
        marker = f"{_UNSAFE.sub('_', key)[:200]}/{secrets.token_hex(8)}"
        read_fds, write_fds = _posix.pipes(2 if capture else 0)
        proc = LaunchedProcess(key, *(read_fds or [-1, -1]), marker, kill_group_on_exit)
        try:
            request = codec.encode_frame(LaunchSpawn(
                key, list(argv), dict(env), cwd, dict(rlimits or {}), len(write_fds),
                new_session, kill_group_on_exit, marker, float(cleanup_grace), bool(warm)))
            if len(request) - HEADER_SIZE > DEFAULT_MAX_PAYLOAD:  # the launcher would hang up
                raise LaunchError(f"cannot start {key!r}: its argv and env take "
                                  f"{len(request)} bytes, above {DEFAULT_MAX_PAYLOAD}")
            self._pending[key] = proc
            self._record(key, marker)  # before the job exists, let alone forks
            self._send(request, write_fds)
        except BaseException:
            if self._delivering:  # the request will arrive whole: kill what it starts
                proc._abandoned = True
            else:
                self._pending.pop(key, None)
                self._forget(marker)
            _posix.close_all(read_fds)
            raise
        finally:
            _posix.close_all(write_fds)
        try:
            proc._started.wait(timeout)
            if not proc._started.ready():
                raise LaunchError(f"the launcher did not answer the spawn of {key!r} "
                                  f"within {timeout} s")
            proc._started.get(block=False)
        except BaseException:
            self._abandon(proc)
            _posix.close_all(read_fds)
            raise
        return proc

    def kill(self, key: str, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the whole process group of ``key``, then SIGKILL after ``grace``
        seconds (0: no escalation). Does nothing when ``key`` is not running. The exit arrives
        as usual through ``exited``. Raises LauncherClosedError / LauncherBrokenError."""
        self._check_open()
        if key in self._running or key in self._pending:
            self._send(codec.encode_frame(LaunchKill(key, int(sig), float(grace))))

    def close(self, grace: float = 2.0, timeout: float = 10.0) -> None:
        """Stop the launcher: its jobs get SIGTERM, then SIGKILL after ``grace`` seconds; wait
        (at most ``grace + timeout`` seconds) for it to exit, killing it if it does not.
        Processes whose exit was not reported fail with LauncherClosedError. Idempotent."""
        if not self._closing:
            self._closing = True
            if not self._eof.is_set():
                try:
                    self._send(codec.encode_frame(LaunchShutdown(float(grace))))
                except (OSError, TitanError):
                    pass
            if not self._eof.wait(grace + timeout):
                self._popen.kill()
        self._group.kill(timeout=timeout)
        self._sock.close()
        try:
            code = self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _log.error("the launcher (pid %d) did not exit", self._popen.pid)
            return
        if code == 0:  # it exited once every process of its tree was gone
            for marker in list(self._markers):
                self._forget(marker)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise LauncherClosedError("the launcher was closed")
        if self._error is not None:
            raise self._error

    def _send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        """Send one whole frame (``fds`` ride with its first byte).

        A frame cut short (the caller was killed or timed out mid-send) would desynchronise
        the stream, so its rest is sent by a greenlet of ours, which holds the lock until done.
        ``_delivering`` tells the caller whether any byte went out.
        """
        self._send_lock.acquire()
        self._delivering = False
        view = memoryview(data)
        try:
            if fds:  # gevent's sendmsg may send nothing after waiting: then try again
                ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                while not self._delivering:
                    sent = self._sock.sendmsg([view], ancdata)
                    self._delivering = sent > 0
                view = view[sent:]
            while view:
                view = view[self._sock.send(view):]
                self._delivering = True
        except OSError as e:
            self._send_lock.release()
            raise self._error or LauncherBrokenError(
                f"the launcher (pid {self.pid}) is gone: {e}") from e
        except BaseException:
            if self._delivering and view:
                self._group.spawn(self._finish_frame, view)
            else:
                self._send_lock.release()
            raise
        self._send_lock.release()

    def _finish_frame(self, view: memoryview) -> None:
        try:
            while view:
                view = view[self._sock.send(view):]
        except OSError:
            pass  # the reader sees the launcher gone
        finally:
            self._send_lock.release()

    def _abandon(self, proc: LaunchedProcess) -> None:
        """Nobody waits for ``proc`` any more: kill it once (or as soon as) it has started."""
        if not proc._started.ready():
            proc._abandoned = True
        elif proc._started.successful():
            try:
                self.kill(proc.key, grace=0, sig=signal.SIGKILL)
            except TitanError:
                pass

    def _read_loop(self) -> None:
        reader = FrameReader()
        why = "closed its end"
        try:
            while True:
                data = self._sock.recv(_RECV_BYTES)
                if not data:
                    break
                for frame in reader.feed(data):
                    msg = codec.decode_frame_message(frame)
                    handler = self._handlers.get(type(msg))
                    if handler is None:
                        raise ProtocolError(f"unexpected message from the launcher: {msg!r}")
                    handler(msg)
        except (OSError, ProtocolError) as e:
            why = f"broke the pipe protocol: {e}"
        finally:
            self._on_eof(why)

    def _on_eof(self, why: str) -> None:
        if self._closing:
            error: TitanError = LauncherClosedError("the launcher was closed")
        else:
            error = LauncherBrokenError(f"the launcher (pid {self.pid}) {why}")
            _log.error("%s; killing the %d process groups it had started", error,
                       len(self._running))
            if self._registry is None:  # (no record of their start times to check)
                for proc in self._running.values():
                    # a dead launcher leaves them running in their sessions
                    _posix.send_signal(proc.pid, True, signal.SIGKILL)
        self._error = error
        for proc in [*self._pending.values(), *self._running.values()]:
            if not proc._started.ready():
                proc._started.set_exception(error)
            if not proc.exited.ready():
                proc.exited.set_exception(error)
        self._pending.clear()
        self._running.clear()
        if not self._ready.ready():
            self._ready.set_exception(error)
        self._eof.set()
        if not self._closing and self._markers:
            self._kill_escaped()

    def _on_ready(self, msg: LauncherReady) -> None:
        self._ready.set(msg.pid)

    def _on_spawned(self, msg: SpawnSucceeded) -> None:
        proc = self._pending.pop(msg.key, None)
        if proc is None:
            return
        proc.pid = msg.pid
        self._running[msg.key] = proc
        if proc.marker in self._markers:
            self._update(self._registry.started, proc.marker, msg.pid)
        if proc._abandoned:
            self._send(codec.encode_frame(LaunchKill(msg.key, signal.SIGKILL, 0.0)))
        proc._started.set(msg.pid)

    def _on_cleanup_done(self, msg: CleanupDone) -> None:
        if msg.killed:
            _log.warning("%s: %d processes it left running ignored SIGTERM and were killed",
                         msg.key, msg.killed)
        self._forget(msg.marker)

    def _on_spawn_failed(self, msg: SpawnFailed) -> None:
        proc = self._pending.pop(msg.key, None)
        if proc is not None:
            self._forget(proc.marker)
            proc._started.set_exception(LaunchError(msg.error, msg.errno))

    def _on_exited(self, msg: ProcessExited) -> None:
        proc = self._running.pop(msg.key, None)
        if proc is None or proc.pid != msg.pid:
            return
        proc.left_running, proc.left_names = msg.left_running, msg.left_names
        if msg.left_running:
            _log.info("%s exited (%d) and left %d processes running, sent SIGTERM: %s",
                      msg.key, msg.code, msg.left_running, ", ".join(msg.left_names))
        # else the record stays until CleanupDone or, without a cleanup (what the process left
        # runs on: kill_group_on_exit=False), for as long as the launcher runs
        if proc._cleans and not msg.cleaning:
            self._forget(proc.marker)
        proc.exited.set(msg.code)
        if self._on_exit is not None:
            try:
                self._on_exit(proc, msg.code)
            except Exception:
                _log.exception("the on_exit callback failed for %r", proc)

