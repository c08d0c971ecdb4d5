"""A job's resource limits: the ``limits:`` mapping of a pipeline job, as ``setrlimit`` limits.

=============  =========================================  ===================================
``limits:``    value                                      applied as (soft = hard)
=============  =========================================  ===================================
``memory``     a size (``512MiB``, ``2G``, bytes)          ``RLIMIT_AS``: address space
``cpu``        whole seconds of CPU time                   ``RLIMIT_CPU``: SIGXCPU when spent
``open_files`` a count                                     ``RLIMIT_NOFILE``
``file_size``  a size                                      ``RLIMIT_FSIZE``: SIGXFSZ beyond it
=============  =========================================  ===================================

Limits apply to the job's process and are inherited by what it starts (each process on its
own). A job that a limit ends is reported with the limit named in its failure reason.
"""

from __future__ import annotations

import resource
import signal
from collections.abc import Mapping

from .errors import ConfigError
from .sizes import format_size, parse_size

LIMITS: dict[str, tuple[int, str]] = {
    "memory": (resource.RLIMIT_AS, "a size such as 512MiB or 2G (at least 16MiB)"),
    "cpu": (resource.RLIMIT_CPU, "whole seconds of CPU time, at least 1"),
    "open_files": (resource.RLIMIT_NOFILE, "a count, at least 16"),
    "file_size": (resource.RLIMIT_FSIZE, "a size such as 100MiB (at least 1k)"),
}
_MIN = {"memory": 16 << 20, "cpu": 1, "open_files": 16, "file_size": 1024}
_SIZES = frozenset({"memory", "file_size"})


def parse_limit(name: str, value: object) -> int:
    """The limit ``name`` read from ``value`` (an int, or for sizes a text like ``512MiB``).

    Raises:
        ConfigError: an unknown name or a value out of range, saying what would be right.
    """
    if name not in LIMITS:
        raise ConfigError(f"unknown limit {name!r}; known: {', '.join(LIMITS)}")
    expected = LIMITS[name][1]
    if isinstance(value, bool):
        raise ConfigError(f"limit {name}: expected {expected}, got {value!r}")
    if name in _SIZES and isinstance(value, str):
        try:
            number = parse_size(_MIN[name])(value.strip())
        except ConfigError as error:
            raise ConfigError(f"limit {name}: {error}") from None
    elif isinstance(value, int):
        number = value
    else:
        raise ConfigError(f"limit {name}: expected {expected}, got {value!r}")
    if number < _MIN[name] or number >= 1 << 62:
        raise ConfigError(f"limit {name}: expected {expected}, got {value!r}")
    return number


def limit_problems(limits: Mapping[str, int], where: str) -> list[str]:
    """The problems of a spec's ``limits`` as the master receives them (already numbers)."""
    out = []
    for name, value in limits.items():
        try:
            parse_limit(name, value)
        except ConfigError as error:
            out.append(f"{where}: {error}")
    return out


def to_rlimits(limits: Mapping[str, int]) -> dict[int, int]:
    """``{RLIMIT_*: value}`` for the launcher (unknown names are ignored: an older spec)."""
    return {LIMITS[name][0]: value for name, value in limits.items() if name in LIMITS}


def shown(name: str, value: int) -> str:
    if name in _SIZES:
        return format_size(value)
    return f"{value} s" if name == "cpu" else str(value)


def explain_exit(limits: Mapping[str, int], exit_code: int) -> str:
    """Why a job with ``limits`` may have ended with ``exit_code`` (negative: killed by that
    signal; 128 + N from a shell: its command was), or "" when no limit explains it."""
    if not limits or exit_code == 0:
        return ""
    if 128 < exit_code < 128 + 65:  # a shell whose command a signal ended exits 128 + signal
        exit_code = 128 - exit_code
    cpu, file_size, memory = (limits.get(n) for n in ("cpu", "file_size", "memory"))
    if cpu and exit_code in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"its cpu limit of {shown('cpu', cpu)} was spent"
    if file_size and exit_code == -signal.SIGXFSZ:
        return f"it wrote past its file_size limit of {shown('file_size', file_size)}"
    if memory and (exit_code > 0 or exit_code in (-signal.SIGSEGV, -signal.SIGABRT)):
        return (f"it had a memory limit of {shown('memory', memory)}: an allocation beyond it "
                f"fails (MemoryError in Python)")
    return ""
