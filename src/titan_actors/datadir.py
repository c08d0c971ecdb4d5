"""Component data directories and the lock that gives each one a single owner.

Each component keeps its files in its own subdirectory of the data directory (``data_dir``):
``master``, ``store``, ``worker-<name>``, ``web``. The process that owns one holds an exclusive
``flock`` on ``<dir>/LOCK`` for as long as it runs and writes who it is into that file, so a second
process on the same directory is refused with a message naming the holder. The kernel releases a
``flock`` when its holder exits, however it exits, so a lock whose holder died is free: there is no
stale-lock cleanup to get wrong. The lock file is never deleted (deleting it would let two
processes lock two different files of the same name).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from titan_actors.errors import ConfigError, DataDirLockedError, UsageError

__all__ = [
    "LOCK_FILE_NAME",
    "DataDirLock",
    "LockHolder",
    "component_dir",
    "read_holder",
    "worker_component",
]

LOCK_FILE_NAME = "LOCK"
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MAX_HOLDER_BYTES = 64 * 1024
_MAX_COMMAND_CHARS = 120


def worker_component(name: str) -> str:
    """Return the component name of the worker called ``name`` (``worker-<name>``)."""
    return f"worker-{name}"


def component_dir(root: str | os.PathLike[str], component: str) -> Path:
    """Return ``root/component``, created with mode 0700 if needed (``root`` too).

    An existing component directory is given mode 0700 again: it holds the component's state and
    nobody else should read it.

    Raises:
        ConfigError: ``component`` is not one plain name (letters, digits, ``.``, ``_``, ``-``;
            no ``/`` or ``..``), or the directory cannot be created.
    """
    if not _COMPONENT.match(component) or component in (".", ".."):
        raise ConfigError(
            f"{component!r} is not a valid component name; "
            "expected letters, digits, '.', '_' or '-' "
            "(master, store, worker-<name>, web)"
        )
    path = Path(root).expanduser() / component
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        if (
            stat.S_IMODE(path.stat().st_mode) != 0o700
        ):  # the umask may have narrowed it; an old one may be wider
            path.chmod(0o700)
    except FileExistsError:
        raise ConfigError(
            f"data directory {path} exists and is not a directory; move it away"
        ) from None
    except OSError as e:
        raise ConfigError(
            f"data directory {path} cannot be created: {e.strerror}; check --data-dir"
        ) from e
    return path


@dataclass(frozen=True)
class LockHolder:
    """Who holds a data directory lock, as written into its lock file."""

    pid: int
    hostname: str
    argv: tuple[str, ...]
    started: str  # ISO 8601, UTC: when the lock was taken

    @property
    def command(self) -> str:
        """The holder's command line, program name without its path (``titanctl master``)."""
        if not self.argv:
            return "?"
        line = shlex.join([os.path.basename(self.argv[0]), *self.argv[1:]])
        return line if len(line) <= _MAX_COMMAND_CHARS else line[: _MAX_COMMAND_CHARS - 3] + "..."

    def describe(self) -> str:
        """Return ``pid 1234 (titanctl master) on host x since 2026-...``."""
        return f"pid {self.pid} ({self.command}) on host {self.hostname} since {self.started}"

    def to_json(self) -> bytes:
        """Encode for the lock file."""
        data = {
            "pid": self.pid,
            "hostname": self.hostname,
            "argv": list(self.argv),
            "started": self.started,
        }
        return (json.dumps(data) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> LockHolder | None:
        """Decode a lock file's content; None when it is empty or not a holder record."""
        try:
            data = json.loads(raw.decode("utf-8"))
            return cls(
                int(data["pid"]),
                str(data["hostname"]),
                tuple(map(str, data["argv"])),
                str(data["started"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def read_holder(directory: str | os.PathLike[str]) -> LockHolder | None:
    """Return the holder recorded in ``directory``'s lock file, or None when none is recorded.

    This reads the file only. A holder killed without releasing leaves its record behind, so the
    record says who held the lock last, not that it is held now: :meth:`DataDirLock.acquire`
    is what knows.
    """
    try:
        with open(Path(directory) / LOCK_FILE_NAME, "rb") as f:
            return LockHolder.from_json(f.read(_MAX_HOLDER_BYTES))
    except FileNotFoundError:
        return None


def _now() -> datetime:
    return datetime.now(UTC)


class DataDirLock:
    """An exclusive ``flock`` on ``<directory>/LOCK``; a context manager.

    Args:
        directory: the component directory to own (it must exist; see :func:`component_dir`).
        now: the wall clock, for the start time recorded in the lock file.
    """

    def __init__(
        self, directory: str | os.PathLike[str], now: Callable[[], datetime] = _now
    ) -> None:
        self.directory = Path(directory)
        self.lock_path = self.directory / LOCK_FILE_NAME
        self._now = now
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> LockHolder:
        """Take the lock without waiting and record this process as its holder.

        Returns:
            The holder record written into the lock file.

        Raises:
            DataDirLockedError: another process (or another DataDirLock in this process) holds
                it; the message names the directory and the holder. ``.holder`` is the holder
                record, or None when it has not been written yet.
            ConfigError: the directory does not exist or the lock file cannot be opened.
            UsageError: this object already holds the lock.
        """
        if self._fd is not None:
            raise UsageError(f"the lock on {self.directory} is already held by this DataDirLock")
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ConfigError(f"data directory {self.directory} does not exist") from None
        except OSError as e:
            raise ConfigError(f"lock file {self.lock_path} cannot be opened: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = LockHolder.from_json(os.pread(fd, _MAX_HOLDER_BYTES, 0))
            os.close(fd)
            raise self._locked_error(holder) from None
        except OSError as e:
            os.close(fd)
            raise ConfigError(f"lock file {self.lock_path} cannot be locked: {e.strerror}") from e
        holder = LockHolder(
            os.getpid(),
            socket.gethostname(),
            tuple(sys.argv),
            self._now().isoformat(timespec="seconds"),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.to_json(), 0)
        self._fd = fd
        return holder

    def _locked_error(self, holder: LockHolder | None) -> DataDirLockedError:
        who = (
            f"held by {holder.describe()}"
            if holder
            else "held by another process (it has not recorded its name yet)"
        )
        error = DataDirLockedError(
            f"data directory {self.directory} is in use: {who}; "
            "stop that process or choose another "
            "--data-dir"
        )
        error.directory = self.directory  # type: ignore[attr-defined]
        error.holder = holder  # type: ignore[attr-defined]
        return error

    def release(self) -> None:
        """Clear the holder record and release the lock; does nothing when not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(
                fd, 0
            )  # a clean exit leaves no record that could be taken for a live holder
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DataDirLock({str(self.directory)!r}, held={self.held})"
