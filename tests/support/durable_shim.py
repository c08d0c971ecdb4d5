"""A power-loss model for the append-only file: ``write`` / ``fsync`` replacements that remember
what is durable, and the on-disk image a power cut would leave.

SIGKILL keeps the page cache, so a killed process cannot tell ``always`` from ``everysec``; a
power cut can. :class:`PowerLossDisk` watches one directory. Plug its :meth:`~PowerLossDisk.write`
and :meth:`~PowerLossDisk.fsync` into ``AppendOnlyFile.open(..., write=, fsync=)`` (or
``StoreOptions(write=, fsync=)``); the real I/O still happens, the disk only keeps books:

* per file (by inode): the size covered by its last fsync, and each write since, in order;
* the directory's names as of its last fsync (``fsync_directory`` passes the directory's
  descriptor to the same ``fsync``), so a create or a rename not followed by a directory fsync
  may be lost (``namespace="synced"``) or kept (``namespace="current"``).

:meth:`~PowerLossDisk.power_loss` then writes the image into another directory: each name of the
namespace with its file's synced bytes, optionally the first ``survive`` unsynced writes whole
(the OS had flushed them), and optionally the next one torn at ``tear`` bytes (``"random"``: a
seeded random offset inside it). Everything else after the last fsync is gone.

Model limits, on purpose: files are append-only (an ``ftruncate`` is taken as durable at once:
the writer only truncates a torn or failed tail, and fsyncs after it), and only the watched
directory's names are modelled. Each inode seen is held open (read-only, through ``/proc``), so
the old file of a rename stays readable for an image taken before the directory fsync.
"""

from __future__ import annotations

import os
import random
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class _Inode:
    reader: int                      # a read-only descriptor that keeps the inode alive
    synced: int = 0                  # bytes covered by the last fsync
    unsynced: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) writes


@dataclass(frozen=True)
class PowerLossImage:
    """What a power cut left: ``directory`` holds the files; ``files`` their bytes by name;
    ``dropped`` the bytes each file lost (written to the OS, not durable)."""

    directory: Path
    files: dict[str, bytes]
    dropped: dict[str, int]


class PowerLossDisk:
    """Book-keeping ``write`` and ``fsync`` for the files of ``directory`` (see the module
    docstring). Thread-safe: the writer calls them from threadpool threads.

    Files already in ``directory`` count as durable, names and bytes. Close it (or use it as a
    context manager) to release the descriptors it holds.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsyncs = 0
        self.directory_fsyncs = 0
        self._lock = threading.Lock()
        self._inodes: dict[int, _Inode] = {}
        self._names: dict[str, int] = {}
        with self._lock:
            self._names = self._listing()
            for name, ino in self._names.items():
                node = self._hold(self.directory / name, ino)
                node.synced = os.fstat(node.reader).st_size

    def __enter__(self) -> PowerLossDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for node in self._inodes.values():
                os.close(node.reader)
            self._inodes.clear()

    # -- the replacements for os.write and os.fsync ----------------------------------------------

    def write(self, fd: int, data) -> int:
        """``os.write``, remembering the write as not durable yet."""
        with self._lock:
            st = os.fstat(fd)
            offset = st.st_size if _appends(fd) else os.lseek(fd, 0, os.SEEK_CUR)
            written = os.write(fd, data)
            if stat.S_ISREG(st.st_mode):
                node = self._inodes.get(st.st_ino) or self._hold(f"/proc/self/fd/{fd}",
                                                                  st.st_ino)
                node.unsynced.append((offset, written))
            return written

    def fsync(self, fd: int) -> None:
        """``os.fsync``: a file's writes made before the call become durable; a directory's
        names as they are now (the watched directory only) become the durable namespace."""
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            with self._lock:
                names = self._listing() if _same_dir(fd, self.directory) else None
            os.fsync(fd)
            if names is not None:
                with self._lock:
                    for name, ino in names.items():
                        if ino not in self._inodes:
                            self._hold(self.directory / name, ino)
                    self._names = names
                    self.directory_fsyncs += 1
            return
        with self._lock:
            node = self._inodes.get(st.st_ino) or self._hold(f"/proc/self/fd/{fd}", st.st_ino)
            covered, writes = os.fstat(fd).st_size, len(node.unsynced)
        os.fsync(fd)  # a write made meanwhile (outside the lock) is not covered by this fsync
        with self._lock:
            node.synced = max(node.synced, covered)
            del node.unsynced[:writes]
            self.fsyncs += 1

    # -- the power cut ----------------------------------------------------------------------------

    def unsynced_bytes(self, name: str) -> int:
        """Bytes written to the file now named ``name`` and not durable yet."""
        with self._lock:
            node = self._inodes.get(os.stat(self.directory / name).st_ino)
            return sum(length for _, length in node.unsynced) if node else 0

    def power_loss(self, into: Path, *, tear: int | str | None = None,
                   survive: int | None = None, namespace: str = "synced",
                   seed: int = 0) -> PowerLossImage:
        """Write into ``into`` (a new directory) the files a power cut now would leave.

        Args:
            tear: None (no torn write), a byte count, or ``"random"``: that many bytes (a seeded
                random count shorter than the write) of the first lost write are kept.
            survive: how many unsynced writes of each file made it whole, in order (default:
                none; with ``tear``, all but the last, so that the last write is the torn one).
            namespace: ``"synced"``: names as of the directory's last fsync (a rename or create
                after it is lost); ``"current"``: names as they are now.
            seed: for ``tear="random"``.
        """
        if namespace not in ("synced", "current"):
            raise ValueError(f"namespace must be 'synced' or 'current', not {namespace!r}")
        rng = random.Random(seed)
        into = Path(into)
        into.mkdir(parents=True)
        files: dict[str, bytes] = {}
        dropped: dict[str, int] = {}
        with self._lock:
            names = dict(self._names) if namespace == "synced" else self._listing()
            for name, ino in sorted(names.items()):
                node = self._inodes.get(ino) or self._hold(self.directory / name, ino)
                size = os.fstat(node.reader).st_size
                data = os.pread(node.reader, size, 0) if size else b""
                keep = _kept(node, tear, survive, rng)
                files[name] = data[:keep]
                dropped[name] = max(len(data) - keep, 0)
                (into / name).write_bytes(files[name])
        return PowerLossImage(into, files, dropped)

    # -- internals -----------------------------------------------------------------------------

    def _listing(self) -> dict[str, int]:
        return {entry.name: entry.inode() for entry in os.scandir(self.directory)
                if entry.is_file(follow_symlinks=False)}

    def _hold(self, path: str | Path, ino: int) -> _Inode:
        node = _Inode(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        self._inodes[ino] = node
        return node


def _kept(node: _Inode, tear: int | str | None, survive: int | None,
          rng: random.Random) -> int:
    """How many bytes of the file survive the cut (appends: a prefix)."""
    pending = node.unsynced
    if survive is None:
        survive = max(len(pending) - 1, 0) if tear is not None else 0
    keep = node.synced
    for offset, length in pending[:survive]:
        keep = max(keep, offset + length)
    if tear is not None and survive < len(pending):
        offset, length = pending[survive]
        cut = rng.randrange(length) if tear == "random" and length else \
            0 if tear == "random" else min(int(tear), length)
        keep = max(keep, offset + cut)
    return keep


def _appends(fd: int) -> bool:
    import fcntl
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)


def _same_dir(fd: int, directory: Path) -> bool:
    st = os.fstat(fd)
    mine = os.stat(directory)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
