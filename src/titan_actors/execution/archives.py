"""Project archives: packing a folder into a zip (client side) and unpacking an uploaded archive
safely (worker side).

Unpacking trusts nothing in the archive. It refuses absolute paths, ``..`` or empty components,
backslashes, links (symbolic or hard), devices, FIFOs and other special files, more than
``max_entries`` entries, and more than ``max_bytes`` of content, counted on the bytes actually
written (a zip's declared sizes can lie). It unpacks into a fresh temporary folder next to the
destination and renames it into place, so a failed or concurrent unpack never leaves a half
project behind. Files are created owner-only (0600, or 0700 when the archive marks them
executable); folders 0700.

Both ``.zip`` and tar (plain, gzip, bzip2, xz) are read; the format is found from the content.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "SKIPPED_DIRS",
    "ArchiveError",
    "PackResult",
    "check_entry",
    "pack_folder",
    "unpack",
]

DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_ENTRIES = 20_000
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv",
                          "node_modules", ".titan", ".mypy_cache", ".pytest_cache",
                          ".ruff_cache"})
_COPY = 1 << 16


class ArchiveError(UsageError):
    """An archive was refused: the message names the entry and the rule it breaks."""


@dataclass(frozen=True, slots=True)
class PackResult:
    """What :func:`pack_folder` put in the archive, and what it left out (and why)."""

    files: int
    bytes: int
    skipped: tuple[str, ...] = field(default_factory=tuple)


def check_entry(name: str) -> str:
    """Return the entry's path (``/``-separated, relative) or raise ArchiveError saying why it
    cannot be unpacked safely."""
    clean = name[:-1] if name.endswith("/") else name
    if not clean:
        raise ArchiveError(f"entry {name!r}: an empty name")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise ArchiveError(f"entry {name!r}: an absolute path; entries must be relative")
    if "\\" in clean or "\0" in clean:
        raise ArchiveError(f"entry {name!r}: backslashes and NUL are not allowed in names")
    parts = clean.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ArchiveError(f"entry {name!r}: '.', '..' and empty components are not allowed")
    return clean


def unpack(archive: str | os.PathLike[str], dest: str | os.PathLike[str], *,
           max_bytes: int = DEFAULT_MAX_BYTES,
           max_entries: int = DEFAULT_MAX_ENTRIES) -> int:
    """Unpack ``archive`` into the new folder ``dest`` (which must not exist); return the
    number of files written. Raises ArchiveError (nothing is left behind) or OSError."""
    dest = Path(dest)
    if dest.exists():
        raise ArchiveError(f"{dest} exists already; unpack into a new folder")
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        count = _unpack_into(Path(archive), work, max_bytes, max_entries)
        os.replace(work, dest)
        return count
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _unpack_into(archive: Path, work: Path, max_bytes: int, max_entries: int) -> int:
    budget = [max_bytes]
    count = 0
    for number, (name, kind, executable, source) in enumerate(_entries(archive), 1):
        if number > max_entries:
            raise ArchiveError(f"{archive.name} has more than {max_entries} entries")
        path = work / check_entry(name)
        if kind == "dir":
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            continue
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists():
            raise ArchiveError(f"entry {name!r} appears twice in {archive.name}")
        with source() as src:
            _copy(src, path, 0o700 if executable else 0o600, budget, name, max_bytes)
        count += 1
    return count


def _copy(src: BinaryIO, path: Path, mode: int, budget: list[int], name: str,
          max_bytes: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_COPY):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ArchiveError(f"the archive unpacks to more than {max_bytes} bytes "
                                   f"(reached at entry {name!r})")
            out.write(chunk)


def _entries(archive: Path) -> Iterator[tuple[str, str, bool, object]]:
    """(name, "file"|"dir", executable, opener) for each entry; refuses special entries."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode) or (stat.S_IFMT(mode) not in (0, stat.S_IFREG,
                                                                     stat.S_IFDIR)):
                    raise ArchiveError(f"entry {info.filename!r} is a link or a special file; "
                                       "only regular files and folders are unpacked")
                if info.flag_bits & 0x1:
                    raise ArchiveError(f"entry {info.filename!r} is encrypted")
                kind = "dir" if info.is_dir() else "file"
                yield info.filename, kind, bool(mode & 0o100), \
                    (lambda info=info: zf.open(info))
        return
    try:
        tf = tarfile.open(archive, "r:*")
    except tarfile.TarError:
        raise ArchiveError(f"{archive.name} is neither a zip nor a tar archive") from None
    with tf:
        for member in tf:
            if member.isdir():
                yield member.name, "dir", False, None
            elif member.isreg():
                yield member.name, "file", bool(member.mode & 0o100), \
                    (lambda member=member: tf.extractfile(member))
            else:
                raise ArchiveError(f"entry {member.name!r} is a link or a special file; only "
                                   "regular files and folders are unpacked")


def pack_folder(folder: str | os.PathLike[str], out: BinaryIO, *,
                max_bytes: int = DEFAULT_MAX_BYTES,
                max_entries: int = DEFAULT_MAX_ENTRIES) -> PackResult:
    """Write ``folder`` as a zip to ``out``: regular files and folders, paths relative to
    ``folder``. Links and special files are skipped (and listed), and so are the folders in
    :data:`SKIPPED_DIRS`. Raises UsageError for a missing folder, or when the folder holds more
    than an archive may (the same caps :func:`unpack` applies)."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder" if root.exists()
                         else f"{root} does not exist")
    files = size = 0
    skipped: list[str] = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            for name in sorted(dirnames):
                if name in SKIPPED_DIRS or (here / name).is_symlink():
                    dirnames.remove(name)
                    skipped.append(str((here / name).relative_to(root)))
            dirnames.sort()
            for name in sorted(filenames):
                path = here / name
                relative = path.relative_to(root).as_posix()
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    skipped.append(relative)
                    continue
                files += 1
                size += info.st_size
                if files > max_entries or size > max_bytes:
                    raise UsageError(f"{root} holds more than an archive may ({max_entries} "
                                     f"files, {max_bytes} bytes); is it the project folder?")
                zf.write(path, relative)
    return PackResult(files, size, tuple(skipped))
