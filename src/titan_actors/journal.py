"""A small append-only file of a process's own bookkeeping: one ``write`` per change, rewritten
compacted when it holds many more entries than live ones.

Used by the worker's report book (``actors.worker_reports``) and child registry
(``execution.orphans``). Entries are not fsynced: such a file matters when the process died and
the machine did not, and then the page cache has it. A short write (a full disk) makes the
change rewrite the whole file instead; a rewrite that fails leaves nothing to append to until
one succeeds, so no entry ever lands on a descriptor that was closed and reused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["Journal"]

_SLACK = 256  # entries beyond 4 per live one that trigger a rewrite


class Journal:
    """The file ``path``, appended to through one open descriptor. Not thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temp = path.with_name(f".{path.name}.tmp")
        self._fd = -1
        self._entries = 0

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def append(self, entry: bytes, live: int, content: Callable[[], bytes]) -> None:
        """Append ``entry``; or, when the file has grown past ``live`` entries by much (or
        cannot take it whole), rewrite it as ``content()``, which holds ``live`` entries."""
        if self._fd < 0 or self._entries >= _SLACK + 4 * live:
            self.rewrite(content(), live)
        elif os.write(self._fd, entry) != len(entry):
            self.rewrite(content(), live)
        else:
            self._entries += 1

    def rewrite(self, content: bytes, entries: int, durably: bool = False) -> None:
        """Replace the file with ``content`` (``entries`` of them; fsynced when ``durably``:
        a crash then leaves the old file or the new one) and append to it from now on."""
        self.close()
        with open(self._temp, "wb") as out:
            out.write(content)
            out.flush()
            if durably:
                os.fsync(out.fileno())
        fd = os.open(self._temp, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.replace(self._temp, self.path)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._entries = fd, entries
