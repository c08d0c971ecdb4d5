"""Hostile project archives, zip and tar alike, are refused before anything is written.

Each archive starts with a harmless file and then breaks one rule: a path out of the project
(``..``, absolute, ``./..``, a drive letter), a link (symbolic or hard), a device, a FIFO or a
socket, a file under a path the archive also has as a file, a compression bomb (by declared
size, and by ratio: bzip2 and xz expand 10^4..10^6 times), too many entries. The destination's
parent is given an old timestamp first: after the refusal it is unchanged and empty, so nothing
was created in it, not even for a moment (a temporary folder would have moved its timestamp).

(Already covered, in tests/unit/execution/test_archives.py: the entry-name rules
(test_unsafe_entry_names_are_refused), tar links, devices, FIFOs and ``..``
(test_hostile_tar_archives_are_refused_and_leave_nothing), zip links (test_zip_links_are_refused),
a zip bomb by size (test_size_is_capped_on_the_bytes_written_not_the_header), entry count and
duplicates, damaged archives; through a real worker, tests/integration/test_files.py::
test_a_hostile_archive_fails_the_job_and_writes_nothing_outside.)
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

from titan_actors.execution.archives import ArchiveError, unpack

OLD = 10**9 * 1_000_000_000  # 2001-09-09, in ns: any entry made in the folder moves it
HARMLESS = ("ok.py", b"print('fine')\n")
BIG = 40 << 20  # 40 MiB of zeros: past the ratio floor, cheap to compress


def _zip(path: Path, entries: list[tuple[str, bytes, int]],
         method: int = zipfile.ZIP_DEFLATED) -> Path:
    """``entries``: (name, content, st_mode); a harmless file goes first."""
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, content, mode in [(*HARMLESS, 0o100644), *entries]:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            info.external_attr = mode << 16
            zf.writestr(info, content)
    return path


def _tar(path: Path, members: list[tuple[str, bytes, dict]], mode: str = "w:gz") -> Path:
    """``members``: (name, content, TarInfo fields); a harmless file goes first."""
    with tarfile.open(path, mode, **({"preset": 0} if mode == "w:xz" else {})) as tf:
        for name, content, fields in [(*HARMLESS, {}), *members]:
            info = tarfile.TarInfo(name)
            for key, value in fields.items():
                setattr(info, key, value)
            info.size = len(content) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return path


def _refused(archive: Path, why: str, **limits: int) -> None:
    parent = Path(tempfile.mkdtemp(prefix="workspace", dir=archive.parent))
    os.utime(parent, ns=(OLD, OLD))
    with pytest.raises(ArchiveError, match=why):
        unpack(archive, parent / "project", **limits)
    assert list(parent.iterdir()) == []
    assert parent.stat().st_mtime_ns == OLD, "something was created, then removed"


_REG = stat.S_IFREG | 0o644
PATHS = [("../escape.py", "'..'"), ("a/../../escape.py", "'..'"), ("./../escape.py", "'..'"),
         ("/etc/cron.d/evil", "an absolute path"), ("C:/evil.py", "an absolute path"),
         ("a\\..\\..\\evil.py", "backslashes")]


@pytest.mark.parametrize("name, why", PATHS, ids=[p for p, _ in PATHS])
def test_zip_paths_out_of_the_project(tmp_path, name, why):
    _refused(_zip(tmp_path / "p.zip", [(name, b"x", _REG)]), why)


@pytest.mark.parametrize("name, why", PATHS, ids=[p for p, _ in PATHS])
def test_tar_paths_out_of_the_project(tmp_path, name, why):
    _refused(_tar(tmp_path / "p.tgz", [(name, b"x", {})]), why)


@pytest.mark.parametrize("mode", [stat.S_IFLNK | 0o777, stat.S_IFCHR | 0o600,
                                  stat.S_IFBLK | 0o600, stat.S_IFIFO | 0o600,
                                  stat.S_IFSOCK | 0o600],
                         ids=["symlink", "char-device", "block-device", "fifo", "socket"])
def test_zip_links_and_special_files(tmp_path, mode):
    archive = _zip(tmp_path / "p.zip", [("special", b"/etc/passwd", mode)])
    _refused(archive, "a link or a special file")


@pytest.mark.parametrize("fields", [
    {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
    {"type": tarfile.SYMTYPE, "linkname": "../../outside"},
    {"type": tarfile.LNKTYPE, "linkname": "ok.py"},
    {"type": tarfile.LNKTYPE, "linkname": "/etc/shadow"},
    {"type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0},
], ids=["symlink-absolute", "symlink-relative", "hardlink", "hardlink-absolute",
        "block-device"])
def test_tar_links_and_special_files(tmp_path, fields):
    _refused(_tar(tmp_path / "p.tgz", [("special", b"", fields)]), "a link or a special file")


def test_a_file_where_the_archive_also_has_a_folder_or_twice(tmp_path):
    _refused(_zip(tmp_path / "p.zip", [("ok.py/inner.py", b"x", _REG)]),
             "which the archive also has as a file")
    _refused(_tar(tmp_path / "p.tgz", [("ok.py", b"again", {})]), "appears twice")


def test_bombs_by_declared_size_are_refused_before_decompressing(tmp_path):
    zipped = _zip(tmp_path / "p.zip", [("zeros", bytes(5 << 20), _REG)])
    _refused(zipped, "more than 1048576 bytes", max_bytes=1 << 20)
    tarred = _tar(tmp_path / "p.tgz", [("zeros", bytes(5 << 20), {})])
    _refused(tarred, "more than 1048576 bytes", max_bytes=1 << 20)


@pytest.mark.parametrize("kind", ["zip-bzip2", "tar-bz2", "tar-xz"])
def test_bombs_by_ratio_are_refused_within_the_size_cap(tmp_path, kind):
    if kind.startswith("zip"):
        method = zipfile.ZIP_BZIP2 if kind.endswith("bzip2") else zipfile.ZIP_LZMA
        archive = _zip(tmp_path / "p.zip", [("zeros", bytes(BIG), _REG)], method)
    else:
        archive = _tar(tmp_path / "p.tar", [("zeros", bytes(BIG), {})],
                       "w:bz2" if kind.endswith("bz2") else "w:xz")
    assert archive.stat().st_size * 2000 < BIG  # under 1/2000 of what it unpacks to
    _refused(archive, "looks like a compression bomb")  # the default size cap is 1 GiB


def test_too_many_entries_are_refused_before_the_first_is_written(tmp_path):
    many = [(f"f{n}", b"", _REG) for n in range(20)]
    _refused(_zip(tmp_path / "p.zip", many), "more than 10 entries", max_entries=10)


def test_a_zip_that_lies_about_its_sizes_leaves_nothing(tmp_path):
    archive = _zip(tmp_path / "p.zip", [("zeros", bytes(1 << 20), _REG)])
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("zeros")
    central = data.rindex(b"PK\x01\x02")  # the last entry's central record: declare 10 bytes
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    local = info.header_offset
    data[local + 22:local + 26] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    parent = tmp_path / "workspace"
    parent.mkdir()
    with pytest.raises(ArchiveError, match="damaged"):
        unpack(archive, parent / "project")
    assert list(parent.iterdir()) == []
