"""Inspecting and repairing an append-only file offline (``titanctl aof check PATH [--fix]``).

Run these on a file no process has open: ``fix_aof`` truncates in place.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from titan_actors.aof import record as _rec
from titan_actors.aof import rewrite as _rw
from titan_actors.aof.replay import Damage, DamageKind, scan
from titan_actors.errors import AofCorruptError, AofFormatError, PersistenceError


@dataclass(frozen=True, slots=True)
class AofReport:
    """What :func:`check_aof` found in one file.

    Attributes:
        path: the file.
        file_size: its size in bytes.
        format_version: the version in its header; None when the header is not valid.
        record_count: the good records before any damage.
        last_good_offset: byte offset just past the last good record.
        damage: the first damage, or None when the file is clean: a torn tail, corruption, or
            (kind ``FORMAT``, offset 0) a header this release does not read.
        strict: whether a torn tail counts as a refusal (as ``open(strict=True)`` would).
    """

    path: Path
    file_size: int
    format_version: int | None
    record_count: int
    last_good_offset: int
    damage: Damage | None
    strict: bool

    @property
    def loadable(self) -> bool:
        """True when opening the file would succeed (after truncating a torn tail if not strict)."""
        if self.damage is None:
            return True
        return self.damage.kind is DamageKind.TORN and not self.strict

    def format(self) -> str:
        """Return the report as human-readable lines (no trailing newline)."""
        damage = self.damage
        if damage is not None and damage.kind is DamageKind.FORMAT:
            return "\n".join([f"{self.path}: {self.file_size} bytes",
                              f"  NOT LOADABLE: {damage.reason}"])
        lines = [f"{self.path}: format version {self.format_version}, {self.file_size} bytes",
                 f"  records: {self.record_count} good, last good offset {self.last_good_offset}"]
        if damage is None:
            lines.append("  OK: no damage")
        elif damage.kind is DamageKind.TORN:
            lines.append(f"  torn tail at byte offset {damage.offset} "
                         f"({damage.dropped_bytes} bytes): {damage.reason}")
            if self.strict:
                lines.append("  NOT LOADABLE in strict mode; `--fix` truncates the torn tail "
                             "(after a backup)")
            else:
                lines.append("  loadable: opening it drops the torn tail; `--fix` truncates it "
                             "now (after a backup)")
        else:
            lines.append(f"  CORRUPT at byte offset {damage.offset} ({damage.dropped_bytes} "
                         f"bytes from there to the end): {damage.reason}")
            lines.append("  NOT LOADABLE: good records may follow the damage; restore the file "
                         "from a backup")
        return "\n".join(lines)


def check_aof(path: str | os.PathLike[str], strict: bool = False, *,
              max_record_size: int = _rec.DEFAULT_MAX_RECORD_SIZE) -> AofReport:
    """Scan ``path`` and report on it; never raises because of damage or a bad header.

    ``report.damage is None`` exactly when the file is clean.

    Raises:
        PersistenceError: the file cannot be read (missing, permissions): there is nothing to
            report on.
    """
    path = Path(path)
    try:
        result = scan(path, max_record_size=max_record_size, keep_records=False)
    except AofFormatError as e:
        try:
            size = path.stat().st_size
        except OSError as stat_error:
            raise PersistenceError(f"cannot read {path}: {stat_error}") from stat_error
        return AofReport(path=path, file_size=size, format_version=None, record_count=0,
                         last_good_offset=0, damage=Damage(DamageKind.FORMAT, 0, str(e), size),
                         strict=strict)
    return AofReport(path=path, file_size=result.file_size,
                     format_version=result.format_version, record_count=result.record_count,
                     last_good_offset=result.last_good_offset, damage=result.damage,
                     strict=strict)


def fix_aof(path: str | os.PathLike[str], *,
            max_record_size: int = _rec.DEFAULT_MAX_RECORD_SIZE,
            now: Callable[[], float] = time.time,
            fsync: _rw.FsyncFn = os.fsync) -> Path | None:
    """Truncate a torn tail of ``path`` after copying the file to a backup beside it.

    The backup is ``<name>.bak-<YYYYmmdd-HHMMSS>`` (UTC; ``-2``, ``-3``... appended if that
    name exists), fsynced with its directory before the original is touched.

    Returns:
        The backup's path, or None when the file has no damage (nothing is written).

    Raises:
        AofCorruptError: the damage is mid-file; nothing is changed. Truncating would throw away
            the good records after it: restore the file from a backup instead.
        AofFormatError: the file is not an append-only file this release reads.
        PersistenceError: the file cannot be read, copied or truncated.
    """
    report = check_aof(path, max_record_size=max_record_size)
    damage = report.damage
    if damage is None:
        return None
    if damage.kind is DamageKind.FORMAT:
        raise AofFormatError(f"refusing to fix {report.path}: {damage.reason}")
    if damage.kind is DamageKind.CORRUPT:
        raise AofCorruptError(
            f"refusing to fix {report.path}: it is corrupt at byte offset {damage.offset} "
            f"({damage.reason}) with {damage.dropped_bytes} bytes after it, which may hold good "
            f"records; truncating would lose them. Restore the file from a backup")
    try:
        backup = _backup(report.path, now(), fsync)
        _rw.truncate_tail(report.path, report.last_good_offset, fsync)
    except OSError as e:
        raise PersistenceError(f"cannot fix {report.path}: {e}") from e
    return backup


def _backup(path: Path, timestamp: float, fsync: _rw.FsyncFn) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(timestamp))
    base = path.with_name(f"{path.name}.bak-{stamp}")
    backup, n = base, 1
    while True:
        try:
            # O_EXCL: never overwrite an earlier backup.
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            break
        except FileExistsError:
            n += 1
            backup = base.with_name(f"{base.name}-{n}")
    with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
        shutil.copyfileobj(src, out, 1024 * 1024)
        out.flush()
        fsync(out.fileno())
    _rw.fsync_directory(path.parent, fsync)
    return backup
