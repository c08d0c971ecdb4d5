"""The warm executor: Python jobs forked from the launcher, an interpreter already started with
the modules jobs commonly import, instead of a fresh interpreter each.

Gevent-free, like the launcher that hosts it (``launcher``): the launcher is never monkey-patched
and single-threaded, so ``os.fork`` is safe there, and it reaps its children itself. A worker asks
for it per job (``LaunchSpawn.warm``) for ``.py`` jobs; the launcher forks only when the argv is
exactly what a spawn would run (``[this interpreter, "-u", script, *args]``) and no memory limit
is asked for (the forked child's address space holds the preloaded modules), else it spawns.

What the job sees is what ``python -u script args`` would give it:

* its own session (``setsid``), stdin /dev/null, stdout and stderr the job's pipes, unbuffered
  text streams with the interpreter's encoding (``PYTHONIOENCODING`` of the job honoured), no
  other descriptor of the launcher;
* exactly its environment (``os.environ`` replaced: what its own children inherit), its cwd,
  its resource limits, default signal dispositions (SIGINT raises KeyboardInterrupt; SIGPIPE and
  SIGXFSZ ignored, as Python sets them), an empty signal mask;
* ``sys.argv`` ``[script, *args]``, ``sys.path`` the script's directory, then the job's
  ``PYTHONPATH``, then the interpreter's own entries; a fresh ``__main__`` module whose
  ``__file__`` is the script, compiled without inheriting any ``__future__`` flag;
* the same ending: ``SystemExit`` codes (None 0, an int itself, anything else printed and 1), an
  uncaught exception's traceback from the script's frame on and exit 1, a KeyboardInterrupt
  ending by SIGINT, non-daemon threads joined, ``atexit`` functions run (the launcher's own
  cleared first), streams flushed (120 when stdout cannot be), a missing script exit 2 with
  Python's message.

The job's process also holds whatever the launcher imported (``sys.modules``): a job importing
one of those gets it at once, already initialised. Random generators reseed themselves after a
fork (``random``, ``secrets`` and ``uuid`` use the OS's entropy or reseed at fork).
"""

from __future__ import annotations

import atexit
import builtins
import gc
import importlib
import io
import os
import resource
import signal
import sys
import threading
import types
from collections.abc import Iterable
from importlib.machinery import SourceFileLoader
from typing import NoReturn

from titan_actors.wire.messages.launcher import LaunchSpawn

__all__ = ["Zygote"]

_MEMORY_LIMITS = frozenset(getattr(resource, name) for name in ("RLIMIT_AS", "RLIMIT_DATA",
                                                                "RLIMIT_RSS")
                           if hasattr(resource, name))
_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGTSTP,
                    signal.SIGTTIN, signal.SIGTTOU)


class Zygote:
    """The launcher's warm state: the modules it preloaded and the interpreter's own path."""

    def __init__(self, preloaded: tuple[str, ...], failed: tuple[str, ...]) -> None:
        self.preloaded = preloaded
        self.failed = failed  # (name: why) of the modules that could not be imported
        self.interpreter = os.path.realpath(sys.executable)
        self._base_path = _own_path()
        stream = sys.__stdout__
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._errors = getattr(stream, "errors", None) or "strict"

    @classmethod
    def prepare(cls, modules: Iterable[str]) -> Zygote | None:
        """Import ``modules`` (one that fails is skipped and named in ``failed``); None when
        importing left a thread running (forking would copy a process missing it)."""
        done, failed = [], []
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as error:  # noqa: BLE001 - any import error: skip that module
                failed.append(f"{name}: {error}")
            else:
                done.append(name)
        if threading.active_count() > 1 or _native_threads() > 1:
            return None
        gc.collect()
        gc.freeze()  # what is here now stays shared with every child (no refcount-free pages)
        return cls(tuple(done), tuple(failed))

    def suits(self, msg: LaunchSpawn) -> bool:
        """Whether ``msg`` can be forked here with the same outcome as a spawn."""
        argv = msg.argv
        return (len(argv) >= 3 and argv[1] == "-u" and not argv[2].startswith("-")
                and os.path.realpath(argv[0]) == self.interpreter
                and not _MEMORY_LIMITS.intersection(msg.rlimits))

    def fork(self, msg: LaunchSpawn, fds: list[int], env: dict[str, str]) -> int:
        """Fork the job of ``msg`` (stdout/stderr ``fds``, environment ``env``) and return its
        pid; the child never returns from here. The caller sets the cwd around the call."""
        for stream in (sys.stdout, sys.stderr):  # nothing of the launcher's may reach the job
            if stream is not None:
                stream.flush()
        pid = os.fork()
        if pid:
            return pid
        try:  # the child: nothing may escape back into the launcher's loop
            self._become_job(msg, fds, env)
        except BaseException as error:  # noqa: BLE001
            _die(f"titan warm executor: cannot start the job: {error!r}\n", 127)
        _run_script(msg.argv[2])

    def _become_job(self, msg: LaunchSpawn, fds: list[int], env: dict[str, str]) -> None:
        signal.set_wakeup_fd(-1)
        if msg.new_session:
            os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(fds[0] if fds else null, 1)
        os.dup2(fds[1] if fds else null, 2)
        os.closerange(3, _max_fd())  # the launcher's socket, selector, pipes, these copies
        for sig in _DEFAULT_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        for res, value in msg.rlimits.items():
            resource.setrlimit(res, (value, value))
        os.environ.clear()
        os.environ.update(env)
        script = msg.argv[2]
        sys.argv = list(msg.argv[2:])
        sys.orig_argv = list(msg.argv)
        extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.path.dirname(os.path.realpath(script)), *extra, *self._base_path]
        sys.path_importer_cache.clear()
        encoding, errors = self._encoding, self._errors
        if env.get("PYTHONIOENCODING"):
            named, _, given = env["PYTHONIOENCODING"].partition(":")
            encoding, errors = named or encoding, given or errors
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(
            io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding, errors)
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(
            io.FileIO(1, "w", closefd=False), encoding, errors, "\n", write_through=True)
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding, "backslashreplace", "\n",
            write_through=True)
        atexit._clear()  # the launcher's own exit functions are not the job's


def _run_script(script: str) -> NoReturn:
    """Run ``script`` as ``__main__`` and end the process the way the interpreter would."""
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=script, __builtins__=builtins, __cached__=None,
                         __loader__=SourceFileLoader("__main__", script), __spec__=None,
                         __package__=None)
    sys.modules["__main__"] = main
    code = 0
    interrupted = False
    try:
        with open(script, "rb") as f:
            source = f.read()
    except OSError as error:
        _die(f"{sys.executable}: can't open file {script!r}: [Errno {error.errno}] "
             f"{error.strerror}\n", 2)
    try:
        exec(compile(source, script, "exec", dont_inherit=True), main.__dict__)  # noqa: S102
    except SystemExit as stop:
        code = _exit_code(stop)
    except BaseException as error:  # noqa: BLE001 - the interpreter reports anything
        interrupted = isinstance(error, KeyboardInterrupt)
        tb = error.__traceback__.tb_next if error.__traceback__ else None  # from the script
        if isinstance(error, SyntaxError) and error.filename == script:
            tb = None  # Python shows where, not a traceback
        sys.excepthook(type(error), error.with_traceback(tb), tb)
        code = 1
    code = _finish(code)
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _finish(code: int) -> int:
    """What the interpreter does at exit: join threads, run atexit, flush the streams."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # non-daemon threads run out
    except BaseException as error:  # noqa: BLE001
        sys.excepthook(type(error), error, error.__traceback__)
    atexit._run_exitfuncs()
    for stream, failure in ((sys.stdout, 120), (sys.stderr, None)):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001
            if failure is not None:
                code = failure
    return code


def _exit_code(stop: SystemExit) -> int:
    value = stop.code
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    try:
        print(value, file=sys.stderr)
    except Exception:  # noqa: BLE001
        pass
    return 1


def _die(message: str, code: int) -> NoReturn:
    try:
        os.write(2, message.encode("utf-8", "backslashreplace"))
    finally:
        os._exit(code)


def _own_path() -> list[str]:
    """The interpreter's own ``sys.path`` entries: without the launcher's directory (first) and
    what its PYTHONPATH added."""
    added = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    return [p for p in sys.path[1:] if os.path.abspath(p) not in added]


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1
