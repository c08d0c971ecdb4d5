"""Job output kept by the master: one file per job under its data directory, capped.

Writes are small appends of worker batches; reads serve ``titanctl logs`` and the SDK's
``fetch_logs`` by byte offset, so ``logs -f`` resumes where it was.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

TRUNCATION_MARKER = b"\n[titan: output truncated: the log reached its cap]\n"


class LogStore:
    """Per-job log files under ``directory``, each capped at ``cap`` bytes (then a marker)."""

    def __init__(self, directory: Path, cap: int = 64 * 1024 * 1024) -> None:
        self._dir = directory
        self._cap = cap
        self._sizes: dict[tuple[str, str], int] = {}
        self._truncated: set[tuple[str, str]] = set()
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str, job_id: str) -> Path:
        """The job's log file. Raises OSError (EINVAL) for an id that is not one plain name:
        whatever reaches here, no id ever names a file outside the log directory."""
        for name in (run_id, job_id):
            if not name or name in (".", "..") or "/" in name or "\0" in name:
                raise OSError(errno.EINVAL, f"not a job's log: {run_id!r}/{job_id!r}")
        return self._dir / run_id / f"{job_id}.log"

    def size(self, run_id: str, job_id: str) -> int:
        key = (run_id, job_id)
        if key not in self._sizes:
            try:
                self._sizes[key] = self.path(run_id, job_id).stat().st_size
            except FileNotFoundError:
                self._sizes[key] = 0
        return self._sizes[key]

    def truncated(self, run_id: str, job_id: str) -> bool:
        return (run_id, job_id) in self._truncated

    def append(self, run_id: str, job_id: str, data: bytes) -> int:
        """Append ``data``; returns how many bytes were kept (0 once the cap was reached)."""
        key = (run_id, job_id)
        if key in self._truncated or not data:
            return 0
        size = self.size(run_id, job_id)
        room = self._cap - size
        kept = data[:max(room, 0)]
        if len(kept) < len(data):
            self._truncated.add(key)
            kept += TRUNCATION_MARKER
        path = self.path(run_id, job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as out:
            out.write(kept)
        self._sizes[key] = size + len(kept)
        return len(kept)

    def read(self, run_id: str, job_id: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Up to ``limit`` bytes from ``offset`` (empty when there is nothing more yet)."""
        try:
            with open(self.path(run_id, job_id), "rb") as source:
                source.seek(max(offset, 0))
                return source.read(max(limit, 0))
        except FileNotFoundError:
            return b""

    def drop_run(self, run_id: str) -> None:
        """Delete a run's logs (retention)."""
        for key in [k for k in self._sizes if k[0] == run_id]:
            del self._sizes[key]
            self._truncated.discard(key)
        shutil.rmtree(self._dir / run_id, ignore_errors=True)

    def runs_on_disk(self) -> list[str]:
        return sorted(entry.name for entry in os.scandir(self._dir) if entry.is_dir())
