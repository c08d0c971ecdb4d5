"""Project archives: packing a folder into a zip (client side) and unpacking an uploaded archive
safely (worker side).

Unpacking trusts nothing in the archive. It refuses absolute paths, ``..`` or empty components,
backslashes, links (symbolic or hard), devices, FIFOs and other special files, more than
``max_entries`` entries, more than ``max_bytes`` of content and compression bombs (more than
``max_ratio`` bytes out per byte in). All of that is checked on every entry before anything is
written; the content is counted again on the bytes actually written (a zip's declared sizes can
lie). It unpacks into a fresh temporary folder next to the destination and renames it into
place, so a failed or concurrent unpack never leaves a half project behind. Files are created
owner-only (0600, or 0700 when the archive marks them executable); folders 0700.

Both ``.zip`` and tar (plain, gzip, bzip2, xz) are read; the format is found from the content.
Entries written as ``./path`` (``tar -czf p.tgz -C proj .``) are read as ``path``. A damaged or
unsupported archive (a bad CRC, a truncated stream, an unknown compression) is an ArchiveError
naming the archive and, when known, the entry.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_RATIO",
    "SKIPPED_DIRS",
    "ArchiveError",
    "PackResult",
    "check_entry",
    "not_packed",
    "pack_folder",
    "unpack",
]

DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_ENTRIES = 20_000
# A compression bomb: more than this many bytes out per byte in. Deflate (zip, gzip) tops out
# near 1032:1, so it meets only the size cap; bzip2 and xz reach 10^4..10^6 on repeated bytes.
DEFAULT_MAX_RATIO = 2000
_RATIO_FLOOR = 32 << 20  # what expands to less than this is never refused for its ratio
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv",
                          "node_modules", ".titan", ".mypy_cache", ".pytest_cache",
                          ".ruff_cache"})
_COPY = 1 << 16
# what reading a damaged or unsupported archive raises (zipfile, tarfile and the decompressors);
# an OSError only counts when it has no errno (gzip's BadGzipFile, bz2's "Invalid data stream"):
# one with an errno is the disk's, not the archive's
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
            RuntimeError, UnicodeDecodeError, OSError)


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


def _relative(name: str) -> str | None:
    """``name`` without leading ``./`` components, or None for an entry that is only the
    archive's top folder (``./`` or ``.``). ``..`` is left for :func:`check_entry` to refuse."""
    while name.startswith("./"):
        name = name[2:]
    return None if name in ("", ".") else name


def unpack(archive: str | os.PathLike[str], dest: str | os.PathLike[str], *,
           max_bytes: int = DEFAULT_MAX_BYTES,
           max_entries: int = DEFAULT_MAX_ENTRIES,
           max_ratio: int = DEFAULT_MAX_RATIO) -> int:
    """Unpack ``archive`` into the new folder ``dest`` (which must not exist); return the
    number of files written.

    Every entry is checked first (names, kinds, count, duplicates, the sizes the archive
    declares and, for a zip, each entry's compression ratio); an archive that breaks a rule is
    refused before anything is created, not even a temporary folder. Content is then counted
    again as it is written, since a zip's declared sizes can lie.

    Raises ArchiveError for an unsafe, oversized, damaged or unsupported archive (the message
    names the archive, and the entry when known), OSError when the destination cannot be
    written. Nothing is left behind when it raises."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise ArchiveError(f"{dest} exists already; unpack into a new folder")
    with _reading(archive) as opened:
        entries = _plan(archive, opened, max_bytes, max_entries, max_ratio)
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            count = _write(archive, entries, work, max_bytes)
            os.replace(work, dest)
            return count
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str            # as the archive names it (for messages)
    path: str            # checked, relative, ``/``-separated
    is_dir: bool
    executable: bool
    open: Callable[[], BinaryIO] | None


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[zipfile.ZipFile | tarfile.TarFile]:
    """The open archive; a damaged or unsupported one is an ArchiveError."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as opened:
                yield opened
            return
        try:
            opened = tarfile.open(archive, "r:*")
        except tarfile.TarError:
            raise ArchiveError(f"{archive.name} is neither a zip nor a tar archive") from None
        with opened:
            yield opened
    except _DAMAGED as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise
        raise _damaged(archive, None, error) from error


def _damaged(archive: Path, entry: str | None, error: BaseException) -> ArchiveError:
    where = f" (entry {entry!r})" if entry else ""
    return ArchiveError(f"{archive.name} is damaged or uses a form that cannot be "
                        f"read{where}: {type(error).__name__}: {error}")


def _plan(archive: Path, opened: zipfile.ZipFile | tarfile.TarFile, max_bytes: int,
          max_entries: int, max_ratio: int) -> list[_Entry]:
    """Every entry, checked; raises ArchiveError at the first that breaks a rule. Reading
    stops as soon as the declared sizes pass ``max_bytes`` (or, for a compressed tar, pass
    ``max_ratio`` times the archive's own size): a bomb is never decompressed to the end."""
    entries: list[_Entry] = []
    files: set[str] = set()
    dirs: set[str] = set()
    declared = 0
    size = max(archive.stat().st_size, 1)
    for number, (name, is_dir, executable, length, packed, opener) in \
            enumerate(_members(opened), 1):
        if number > max_entries:
            raise ArchiveError(f"{archive.name} has more than {max_entries} entries")
        relative = _relative(name)
        if relative is None:
            continue
        path = check_entry(relative)
        declared += length
        if declared > max_bytes:
            raise ArchiveError(f"the archive unpacks to more than {max_bytes} bytes (its "
                               f"declared sizes pass that at entry {name!r})")
        # a zip says how small each entry is packed; a tar is judged as a whole, by its file
        expanded, packed = (length, packed) if packed is not None else (declared, size)
        if expanded > _RATIO_FLOOR and expanded > max_ratio * max(packed, 1):
            raise ArchiveError(f"{archive.name} looks like a compression bomb: at entry "
                               f"{name!r} it expands {expanded // max(packed, 1)} times "
                               f"(at most {max_ratio} is unpacked)")
        if path in files or (not is_dir and path in dirs):
            raise ArchiveError(f"entry {name!r} appears twice in {archive.name}")
        parents = path.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            parent = "/".join(parents[:depth])
            if parent in files:
                raise ArchiveError(f"entry {name!r} is inside {parent!r}, which the archive "
                                   "also has as a file")
            dirs.add(parent)
        (dirs if is_dir else files).add(path)
        entries.append(_Entry(name, path, is_dir, executable, opener))
    return entries


def _members(opened: zipfile.ZipFile | tarfile.TarFile
             ) -> Iterator[tuple[str, bool, bool, int, int | None, Callable | None]]:
    """(name, is_dir, executable, declared size, compressed size (zip) or None, opener) of
    each entry; refuses links, special files and encrypted entries."""
    if isinstance(opened, zipfile.ZipFile):
        for info in opened.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode) or stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise ArchiveError(f"entry {info.filename!r} is a link or a special file; "
                                   "only regular files and folders are unpacked")
            if info.flag_bits & 0x1:
                raise ArchiveError(f"entry {info.filename!r} is encrypted")
            yield (info.filename, info.is_dir(), bool(mode & 0o100), info.file_size,
                   info.compress_size, lambda info=info: opened.open(info))
        return
    for member in opened:
        if member.isdir():
            yield member.name, True, False, 0, None, None
        elif member.isreg():
            yield (member.name, False, bool(member.mode & 0o100), member.size, None,
                   lambda member=member: opened.extractfile(member))
        else:
            raise ArchiveError(f"entry {member.name!r} is a link or a special file; only "
                               "regular files and folders are unpacked")


def _write(archive: Path, entries: list[_Entry], work: Path, max_bytes: int) -> int:
    budget = [max_bytes]
    count = 0
    for entry in entries:
        path = work / entry.path
        if entry.is_dir:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            continue
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _reading_entry(archive, entry.name), entry.open() as src:
            _copy(src, path, 0o700 if entry.executable else 0o600, budget, entry.name,
                  max_bytes)
        count += 1
    return count


@contextlib.contextmanager
def _reading_entry(archive: Path, entry: str) -> Iterator[None]:
    try:
        yield
    except _DAMAGED as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise
        raise _damaged(archive, entry, error) from error


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


def not_packed(root: str | os.PathLike[str], relative: str) -> str | None:
    """Why :func:`pack_folder` would leave the file ``root/relative`` out of the archive (a
    link on its path, a folder of :data:`SKIPPED_DIRS` above it), or None when it would pack
    it. Does not check that the file exists."""
    path = Path(root)
    parts = relative.split("/")
    for number, part in enumerate(parts, 1):
        path = path / part
        shown = "/".join(parts[:number])
        if number < len(parts) and part in SKIPPED_DIRS:
            return (f"it is inside {shown!r}, a folder that is never packed (the skipped "
                    f"folders: {', '.join(sorted(SKIPPED_DIRS))})")
        if path.is_symlink():
            if number == len(parts):
                return f"{shown!r} is a symbolic link, and links are not packed"
            return f"it goes through {shown!r}, a symbolic link, and links are not packed"
    return None


def _encodable(relative: str) -> bool:
    """Whether a zip can name this path: os.walk gives the bytes of a name that is not UTF-8
    as surrogate escapes, which no zip entry can carry."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(relative: str) -> str:
    """A path for messages, with the bytes that are not UTF-8 written as \\xNN."""
    return os.fsencode(relative).decode("utf-8", "backslashreplace")


def pack_folder(folder: str | os.PathLike[str], out: BinaryIO, *,
                max_bytes: int = DEFAULT_MAX_BYTES,
                max_entries: int = DEFAULT_MAX_ENTRIES) -> PackResult:
    """Write ``folder`` as a zip to ``out``: regular files and folders, paths relative to
    ``folder``. Links and special files are skipped (and listed), and so are the folders in
    :data:`SKIPPED_DIRS` and the files or folders whose names are not UTF-8 (a zip cannot name
    them). Timestamps before 1980 (which a zip cannot hold) are stored as 1980-01-01.

    Raises UsageError for a missing folder, or when the folder holds more than an archive may
    (the same caps :func:`unpack` applies); OSError when a file cannot be read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder" if root.exists()
                         else f"{root} does not exist")
    files = size = 0
    skipped: list[str] = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as zf:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            for name in sorted(dirnames):
                relative = (here / name).relative_to(root).as_posix()
                if name in SKIPPED_DIRS or (here / name).is_symlink() \
                        or not _encodable(relative):
                    dirnames.remove(name)
                    skipped.append(_shown(relative))
            dirnames.sort()
            for name in sorted(filenames):
                path = here / name
                relative = path.relative_to(root).as_posix()
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode) or not _encodable(relative):
                    skipped.append(_shown(relative))
                    continue
                files += 1
                size += info.st_size
                if files > max_entries or size > max_bytes:
                    raise UsageError(f"{root} holds more than an archive may ({max_entries} "
                                     f"files, {max_bytes} bytes); is it the project folder?")
                zf.write(path, relative)
    return PackResult(files, size, tuple(skipped))
