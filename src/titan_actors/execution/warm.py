"""The warm executor: Python jobs forked from the launcher, an interpreter already started with
the modules jobs commonly import, instead of a fresh interpreter each.

Gevent-free, like the launcher that hosts it (``launcher``): the launcher is never monkey-patched
and single-threaded, so ``os.fork`` is safe there, and it reaps its children itself. A worker asks
for it per job (``LaunchSpawn.warm``) for ``.py`` jobs; the launcher forks only when the result is
what a spawn would give (:meth:`Zygote.suits`): the argv is exactly ``[this interpreter, "-u",
script, *args]`` with this very interpreter, no memory limit is asked for (the fork's address
space holds the preloaded modules), the job's environment configures the interpreter and the
loader as the launcher's does (no other ``PYTHON*`` setting, the same ``LANG``/``LC_*``/
``LD_*``, ``HOME`` when user site-packages are on), and nothing importable in the script's real
folder or on its ``PYTHONPATH`` (a zip there: maybe) shadows a module the launcher imported.
Otherwise it spawns.

What the job sees is what ``python -u script args`` would give it:

* its own session (``setsid``) before the launcher reports it started (a kill that follows at
  once reaches its group), stdin /dev/null, stdout and stderr the job's pipes, unbuffered text
  streams with the interpreter's encoding (``PYTHONIOENCODING`` of the job honoured), no other
  descriptor of the launcher;
* exactly its environment (``os.environ`` replaced: what its own children inherit; ``TZ``
  applied), its marker and command line in ``/proc/PID/environ`` and ``/proc/PID/cmdline``
  (cleanup finds its pure-fork descendants by the marker; ``ps`` shows the script), its cwd,
  its resource limits, default signal dispositions (SIGINT raises KeyboardInterrupt; SIGPIPE and
  SIGXFSZ ignored, as Python sets them), an empty signal mask (signals sent while it was being
  set up are blocked until then, never handled by the launcher's handlers);
* ``sys.argv`` ``[script, *args]``, ``sys.path`` the script's directory, then the job's
  ``PYTHONPATH``, then the interpreter's own entries; a fresh ``__main__`` module whose
  ``__file__`` is the script, compiled without inheriting any ``__future__`` flag;
* the same ending: ``SystemExit`` codes (None 0, an int itself, anything else printed and 1), an
  uncaught exception's traceback from the script's frame on and exit 1, a KeyboardInterrupt
  ending by SIGINT, non-daemon threads joined, ``atexit`` functions run (logging's shutdown
  included), the objects of ``__main__`` and of the modules the job imported released (files
  they left open are flushed and closed, ``__del__`` runs), streams and C stdio flushed (120
  when stdout cannot be), a missing script exit 2 with Python's message (``warm_child``).
  These use CPython's own exit steps (``threading._shutdown``, ``atexit._run_exitfuncs``),
  private but stable since 3.x; the tests pin them.

Known differences: the job shares the launcher's string-hash seed (``PYTHONHASHSEED`` given to a
job makes it spawn), sees the preloaded modules already imported and initialised (module
constants read from the environment at import are refreshed for ``titan_sdk``), and its stack
is ~15 frames deeper. Like any process of the same user, a job can read the memory of the
process it was forked from, which once held other jobs' requests: jobs on one worker are one
trust domain (they can read each other's ``/proc/PID/environ`` anyway); a worker running jobs
that must not see each other's secrets sets ``--warm-executor false``.
"""

from __future__ import annotations

import gc
import importlib
import io
import json
import os
import resource
import select
import signal
import site
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import NoReturn

from titan_actors.execution._leftovers import MARKER_VAR
from titan_actors.execution.warm_child import (
    flush_c_stdio,
    refresh_from_environment,
    retitle,
    run_script,
)
from titan_actors.wire.messages.launcher import LaunchSpawn

__all__ = ["Zygote", "WarmStartFailed"]

_MEMORY_LIMITS = frozenset(getattr(resource, name) for name in ("RLIMIT_AS", "RLIMIT_DATA",
                                                                "RLIMIT_RSS")
                           if hasattr(resource, name))
_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGTSTP,
                    signal.SIGTTIN, signal.SIGTTOU)
_ALL_SIGNALS = frozenset(signal.valid_signals())
# PYTHON* variables read by the interpreter while the job runs, or handled here
_RUNTIME_PYTHON_VARS = frozenset({"PYTHONPATH", "PYTHONIOENCODING", "PYTHONUNBUFFERED",
                                  "PYTHONBREAKPOINT", "PYTHONDONTWRITEBYTECODE"})
_READY_TIMEOUT_S = 10.0
_IMPORT_SUFFIXES = tuple(importlib.machinery.all_suffixes())
ROOM_VAR = "TITAN_LAUNCHER_ROOM"  # pads the launcher's environment block (see _retitle)


class WarmStartFailed(Exception):
    """The forked child could not become the job (it exited; the message says why)."""


class Zygote:
    """The launcher's warm state: the modules it preloaded and the interpreter's own path."""

    def __init__(self, preloaded: tuple[str, ...], failed: tuple[str, ...],
                 shadowable: dict[str, str], own_path: list[str]) -> None:
        self.preloaded = preloaded
        self.failed = failed  # "name: why" of the modules that could not be imported
        self._shadowable = shadowable
        self._base_path = own_path
        self._modules = frozenset(sys.modules)  # what a job finds imported: not its own
        self._folders: dict[str, tuple[int, bool]] = {}  # folder -> (mtime, shadows)
        self._own_env = dict(os.environ)
        stream = sys.__stdout__
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._errors = getattr(stream, "errors", None) or "strict"

    @classmethod
    def prepare(cls, modules: Iterable[str]) -> Zygote | None:
        """Import ``modules`` (one that fails is skipped and named in ``failed``); None when
        importing left a thread running (a fork would copy a process missing it) or brought
        gevent in (it must never be here)."""
        done, failed = [], []
        for name in modules:
            try:
                importlib.import_module(name)
            except BaseException as error:  # noqa: BLE001 - even SystemExit: skip that module
                failed.append(f"{name}: {error!r}")
            else:
                done.append(name)
        if threading.active_count() > 1 or _native_threads() > 1 or "gevent" in sys.modules:
            return None
        own_path = _interpreter_path()  # before anything else runs in this process
        # every module a job finds already imported here, which a file of its own could shadow,
        # with the folder it was imported from (the same file found again shadows nothing)
        shadowable = {name: _home(sys.modules[name]) for name in list(sys.modules)
                      if "." not in name and name not in sys.builtin_module_names
                      and name != "__main__"}
        gc.collect()
        gc.freeze()  # what is here now stays shared with every child (no refcount-free pages)
        return cls(tuple(done), tuple(failed), shadowable, own_path)

    @classmethod
    def for_launcher(cls, modules: Iterable[str]) -> Zygote | None:
        """:meth:`prepare`, saying on stderr (the worker's log) what went wrong."""
        zygote = cls.prepare(modules)
        if zygote is None:
            print("titan launcher: importing the warm executor's modules started a thread or "
                  "imported gevent; Python jobs are spawned instead", file=sys.stderr)
        elif zygote.failed:
            print("titan launcher: the warm executor could not preload: "
                  + "; ".join(zygote.failed), file=sys.stderr)
        return zygote

    def suits(self, msg: LaunchSpawn) -> bool:
        """Whether ``msg`` can be forked here with the same outcome as a spawn."""
        argv, env = msg.argv, msg.env
        if not (len(argv) >= 3 and argv[1] == "-u" and not argv[2].startswith("-")
                and argv[0] == sys.executable  # (a venv's python is not its base's)
                and not _MEMORY_LIMITS.intersection(msg.rlimits)):
            return False
        own = self._own_env
        for name in set(env) | set(own):
            if _configures_the_interpreter(name) and env.get(name) != own.get(name):
                return False  # it configures the interpreter (or the loader) differently
        script = os.path.realpath(os.path.join(msg.cwd, argv[2]))
        folders = [os.path.dirname(script), *_path_entries(env, msg.cwd)]
        return not any(self._shadows(folder) for folder in folders)

    def _shadows(self, folder: str) -> bool:
        """Whether ``folder`` holds something importable under the name of a module already
        imported here (cached by the folder's modification time); a zip on the path: maybe."""
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            return False
        known = self._folders.get(folder)
        if known is not None and known[0] == mtime:
            return known[1]
        if os.path.isfile(folder):  # a zip (or egg) on the PYTHONPATH: not looked into
            shadows = True
        else:
            try:
                home = os.path.realpath(folder)
                with os.scandir(folder) as entries:
                    shadows = any(self._shadowable.get(_import_name(entry), home) != home
                                  for entry in entries)
            except OSError:
                shadows = False
        if len(self._folders) > 1024:
            self._folders.clear()
        self._folders[folder] = (mtime, shadows)
        return shadows

    def fork(self, msg: LaunchSpawn, fds: list[int], env: dict[str, str]) -> int:
        """Fork the job of ``msg`` (stdout/stderr ``fds``, environment ``env`` with its marker)
        and return its pid once it is its own session and its signals are its own. Raises
        WarmStartFailed (the child exited) or OSError (no fork). The caller sets the cwd around
        the call; the child never returns from here."""
        for stream in (sys.stdout, sys.stderr):  # nothing of the launcher's may reach the job
            if stream is not None:
                stream.flush()
        flush_c_stdio()
        ready_r, ready_w = os.pipe()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            os.close(ready_r)
            os.close(ready_w)
            raise
        if pid == 0:
            _child(self, msg, fds, env, ready_r, ready_w)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(ready_w)
        try:
            why = _read_until_closed(ready_r, _READY_TIMEOUT_S)
        finally:
            os.close(ready_r)
        if why is None:
            os.kill(pid, signal.SIGKILL)
            why = f"the forked job did not get ready within {_READY_TIMEOUT_S} s"
        if why:
            os.waitpid(pid, 0)  # it is exiting (or killed): reap it here, nothing to report
            raise WarmStartFailed(why)
        return pid

    def become_job(self, msg: LaunchSpawn, fds: list[int], env: dict[str, str],
                   keep: int) -> None:
        """In the child: turn the launcher's copy into the job's process (all but running the
        script). ``keep``: a descriptor to leave open (the readiness pipe)."""
        signal.set_wakeup_fd(-1)
        for sig in _DEFAULT_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if msg.new_session:
            os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = os.open(os.devnull, os.O_WRONLY) if not fds else -1
        os.dup2(fds[0] if fds else out, 1)
        os.dup2(fds[1] if fds else out, 2)
        os.closerange(3, keep)  # the launcher's socket, selector, pipes, these copies
        os.closerange(keep + 1, _max_fd())
        for res, value in msg.rlimits.items():
            resource.setrlimit(res, (value, value))
        os.environ.clear()  # libc's environ no longer points into the original block
        retitle(env.get(MARKER_VAR, ""), msg.argv)
        os.environ.update(env)
        time.tzset()
        sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
        refresh_from_environment()
        script = msg.argv[2]
        sys.argv = list(msg.argv[2:])
        sys.orig_argv = list(msg.argv)
        sys.path[:] = [os.path.dirname(os.path.realpath(script)),
                       *_path_entries(env, msg.cwd), *self._base_path]
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


def _child(zygote: Zygote, msg: LaunchSpawn, fds: list[int], env: dict[str, str],
           ready_r: int, ready_w: int) -> NoReturn:
    """The forked child: become the job, say so, run it; never return to the launcher."""
    code = 127
    interrupted = False
    try:
        os.close(ready_r)
        try:
            zygote.become_job(msg, fds, env, keep=ready_w)
        except BaseException as error:  # noqa: BLE001 - reported through the pipe
            os.write(ready_w, f"cannot start the job: {error!r}".encode()[:4000] or b"?")
            raise
        os.close(ready_w)  # ready: the launcher reports the job started
        signal.pthread_sigmask(signal.SIG_SETMASK, ())  # signals sent meanwhile arrive now
        code, interrupted = run_script(msg.argv[2], zygote._modules)
    finally:
        if interrupted:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code)


def _configures_the_interpreter(name: str) -> bool:
    """An environment variable read when an interpreter (or the dynamic loader) starts."""
    return (name.startswith("PYTHON") and name not in _RUNTIME_PYTHON_VARS
            or name.startswith(("LC_", "LD_")) or name in ("LANG", "LANGUAGE")
            or name == "HOME" and bool(site.ENABLE_USER_SITE))


def _home(module: object) -> str:
    """The real folder a module was imported from ("" for none: frozen, built in)."""
    where = getattr(module, "__file__", None)
    if not where:
        return ""
    folder = os.path.dirname(where)
    if os.path.basename(where).startswith("__init__."):  # a package: the folder it is in
        folder = os.path.dirname(folder)
    return os.path.realpath(folder)


def _import_name(entry: os.DirEntry) -> str:
    """The module name under which ``import`` would find ``entry`` ("" for none)."""
    name = entry.name
    if entry.is_dir():
        return name if name.isidentifier() else ""
    for suffix in _IMPORT_SUFFIXES:
        if name.endswith(suffix):
            stem = name[:-len(suffix)]
            return stem if stem.isidentifier() else ""
    return ""


def _path_entries(env: dict[str, str], cwd: str) -> list[str]:
    """The job's PYTHONPATH as the interpreter would put it on sys.path (made absolute
    against the job's cwd, empty entries left out)."""
    return [os.path.normpath(os.path.join(cwd, p))
            for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


def _read_until_closed(fd: int, timeout: float) -> str | None:
    """What the child wrote before closing its end ("" when nothing: ready); None when it
    did not close it within ``timeout`` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode("utf-8", "replace")
        data += chunk


def _interpreter_path() -> list[str]:
    """The ``sys.path`` this interpreter has of its own (stdlib, site-packages, what their .pth
    files add), without a PYTHONPATH: asked of a fresh copy of it, once."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        out = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps("
                              "sys.path[1:]))"], env=env, capture_output=True, timeout=60,
                             check=True, cwd="/").stdout
        return [str(p) for p in json.loads(out)]
    except (OSError, subprocess.SubprocessError, ValueError):
        added = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if p}
        return [p for p in sys.path if os.path.abspath(p) not in added]


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
