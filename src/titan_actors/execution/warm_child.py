"""What runs in a warm job's process after the fork (``warm``): the script as a fresh
``__main__`` and the interpreter's exit steps, the job's marker and command line written where
``/proc`` shows them, module constants read from the environment refreshed.

Gevent-free, like the launcher it is forked from.
"""

from __future__ import annotations

import atexit
import builtins
import ctypes
import gc
import os
import sys
import threading
import types
from importlib.machinery import SourceFileLoader

from titan_actors.execution._leftovers import MARKER_VAR

__all__ = ["flush_c_stdio", "refresh_from_environment", "retitle", "run_script"]

_libc: ctypes.CDLL | None = None  # this process's C library, once looked up


def run_script(script: str, preloaded: frozenset[str]) -> tuple[int, bool]:
    """Run ``script`` as ``__main__``, then the interpreter's exit steps; return (exit code,
    ended by KeyboardInterrupt)."""
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=script, __builtins__=builtins, __cached__=None,
                         __loader__=SourceFileLoader("__main__", script), __spec__=None,
                         __package__=None)
    sys.modules["__main__"] = main
    try:
        with open(script, "rb") as f:
            source = f.read()
    except OSError as error:
        sys.stderr.write(f"{sys.executable}: can't open file {script!r}: [Errno "
                         f"{error.errno}] {error.strerror}\n")
        return 2, False
    code, interrupted = 0, False
    try:
        exec(compile(source, script, "exec", dont_inherit=True), main.__dict__)  # noqa: S102
    except SystemExit as stop:
        code = _exit_code(stop)
    except BaseException as error:  # noqa: BLE001 - the interpreter reports anything
        interrupted = isinstance(error, KeyboardInterrupt)
        tb = error.__traceback__.tb_next if error.__traceback__ else None  # from the script
        if isinstance(error, SyntaxError) and error.filename == script:
            tb = None  # Python shows where, not a traceback
        _report(error.with_traceback(tb))
        code = 1
    return _finish(code, main, preloaded), interrupted


def _report(error: BaseException) -> None:
    try:
        sys.excepthook(type(error), error, error.__traceback__)
    except BaseException:  # noqa: BLE001 - a hook that fails: Python's own, as Python does
        sys.__excepthook__(type(error), error, error.__traceback__)


def _finish(code: int, main: types.ModuleType, preloaded: frozenset[str]) -> int:
    """What the interpreter does at exit: join threads, run atexit, release the objects of
    ``__main__`` and of the modules the job imported (files they left open are flushed and
    closed, ``__del__`` runs), flush the streams and C stdio."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # non-daemon threads run out
    except BaseException as error:  # noqa: BLE001
        _report(error)
    atexit._run_exitfuncs()
    try:
        main.__dict__.clear()
        gc.collect()
        imported = [n for n in list(sys.modules) if n not in preloaded]
        if imported and threading.active_count() == 1:  # no daemon thread may still use them
            for name in reversed(imported):
                module = sys.modules.get(name)
                if isinstance(module, types.ModuleType):
                    module.__dict__.clear()
            gc.collect()
    except BaseException as error:  # noqa: BLE001
        _report(error)
    for stream, failure in ((sys.stdout, 120), (sys.stderr, None)):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except Exception:  # noqa: BLE001
            if failure is not None:
                code = failure
    flush_c_stdio()
    return code


def flush_c_stdio() -> None:
    """``fflush(NULL)``: what C code of the process buffered (``os._exit`` would drop it)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None)
        _libc.fflush(None)
    except (OSError, AttributeError):
        pass


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


def refresh_from_environment() -> None:
    """Module constants that preloaded modules read from the environment at import."""
    module = sys.modules.get("titan_sdk.titan_sdk")  # its TITAN_HOST / TITAN_PORT (COMPAT)
    if module is None:
        return
    host = os.environ.get("TITAN_HOST", module.DEFAULT_HOST)
    port = int(os.environ.get("TITAN_PORT", module.DEFAULT_PORT))
    for holder in (module, sys.modules.get("titan_sdk")):
        if holder is not None:
            holder.TITAN_HOST, holder.TITAN_PORT = host, port


def retitle(marker: str, argv: list[str]) -> None:
    """Write the job's marker over this process's original environment block, and its argv
    over the command line (Linux; what ``/proc/PID/environ`` and ``cmdline`` show, which a
    forked, never exec'd process otherwise shares with the launcher). Where the blocks cannot
    be found, or are too small, nothing changes."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        arg_start, arg_end, env_start, env_end = (int(v) for v in fields[45:49])
    except (OSError, ValueError, IndexError):
        return
    blocks = [(arg_start, arg_end, "\0".join(argv).encode() + b"\0")]
    if marker:
        blocks.append((env_start, env_end, f"{MARKER_VAR}={marker}\0".encode()))
    for start, end, data in blocks:
        size = end - start
        if start and size > 0 and (len(data) <= size or start == arg_start):
            data = data[:size - 1] + b"\0" if len(data) > size else data
            ctypes.memmove(start, data.ljust(size, b"\0"), size)
