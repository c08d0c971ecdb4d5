"""Project archives: packing a folder, and unpacking only what is safe."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from titan_actors.errors import UsageError
from titan_actors.execution.archives import (
    ArchiveError,
    check_entry,
    not_packed,
    pack_folder,
    unpack,
)


def _zip(path: Path, files: dict[str, bytes], modes: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            zf.writestr(info, content)
    return path


def _tar(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, content in members:
            info.size = len(content) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_pack_then_unpack_round_trips_files_and_the_executable_bit(tmp_path):
    src = tmp_path / "proj"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "run.sh").chmod(0o755)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    (src / "link").symlink_to(src / "run.sh")
    packed = tmp_path / "proj.zip"
    with open(packed, "wb") as out:
        result = pack_folder(src, out)
    assert result.files == 2 and set(result.skipped) == {".git", "link"}

    count = unpack(packed, tmp_path / "out")

    assert count == 2
    assert (tmp_path / "out" / "pkg" / "mod.py").read_text() == "X = 1\n"
    assert os.stat(tmp_path / "out" / "run.sh").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "out" / "pkg" / "mod.py").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name, why", [
    ("/etc/passwd", "an absolute path"),
    ("../up.py", "'..'"),
    ("a/../../up.py", "'..'"),
    ("a//b.py", "empty components"),
    ("a\\b.py", "backslashes"),
    ("C:/x.py", "an absolute path"),
])
def test_unsafe_entry_names_are_refused(name, why):
    with pytest.raises(ArchiveError, match=why):
        check_entry(name)


@pytest.mark.parametrize("members, why", [
    ([(_member("ok.txt"), b"x"), (_member("evil", tarfile.SYMTYPE, linkname="/etc/passwd"),
                                  b"")], "link or a special file"),
    ([(_member("hard", tarfile.LNKTYPE, linkname="ok.txt"), b"")], "link or a special file"),
    ([(_member("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), b"")], "special file"),
    ([(_member("fifo", tarfile.FIFOTYPE), b"")], "special file"),
    ([(_member("../../escape.txt"), b"x")], "'..'"),
])
def test_hostile_tar_archives_are_refused_and_leave_nothing(tmp_path, members, why):
    archive = _tar(tmp_path / "t.tar.gz", *members)
    with pytest.raises(ArchiveError, match=why):
        unpack(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tar.gz"]


def test_zip_links_are_refused(tmp_path):
    archive = _zip(tmp_path / "z.zip", {"link": b"/etc/passwd"}, {"link": 0o120777})
    with pytest.raises(ArchiveError, match="link or a special file"):
        unpack(archive, tmp_path / "out")


def test_size_is_capped_on_the_bytes_written_not_the_header(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", {"zeros": b"\0" * 5_000_000})  # compresses to ~5 KB
    assert archive.stat().st_size < 100_000
    with pytest.raises(ArchiveError, match="more than 1000000 bytes"):
        unpack(archive, tmp_path / "out", max_bytes=1_000_000)
    assert not (tmp_path / "out").exists()


def test_entry_count_and_duplicates_are_capped(tmp_path):
    many = _zip(tmp_path / "many.zip", {f"f{i}": b"" for i in range(11)})
    with pytest.raises(ArchiveError, match="more than 10 entries"):
        unpack(many, tmp_path / "out", max_entries=10)
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as zf:
        zf.writestr("a.py", "1")
        with pytest.warns(UserWarning):
            zf.writestr("a.py", "2")
    with pytest.raises(ArchiveError, match="appears twice"):
        unpack(twice, tmp_path / "out2")


def test_not_an_archive_and_existing_destination(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(ArchiveError, match="neither a zip nor a tar"):
        unpack(junk, tmp_path / "out")
    good = _zip(tmp_path / "g.zip", {"a": b"1"})
    (tmp_path / "taken").mkdir()
    with pytest.raises(ArchiveError, match="exists already"):
        unpack(good, tmp_path / "taken")


def test_packing_a_missing_folder_says_so(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        pack_folder(tmp_path / "nope", io.BytesIO())


def _stored_zip(path: Path, name: str, content: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name, content)
    return path


def test_a_zip_with_a_bad_crc_is_an_archive_error_naming_the_entry(tmp_path):
    archive = _stored_zip(tmp_path / "crc.zip", "jobs/main.py", b"print('hello')\n" * 100)
    data = bytearray(archive.read_bytes())
    at = data.index(b"print('hello')")
    data[at + 5] ^= 0xFF  # the member's bytes change; its recorded CRC does not
    archive.write_bytes(bytes(data))

    with pytest.raises(ArchiveError, match=r"crc\.zip is damaged .*entry 'jobs/main\.py'"):
        unpack(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crc.zip"]


def test_a_zip_with_an_unknown_compression_method_is_an_archive_error(tmp_path):
    archive = _stored_zip(tmp_path / "odd.zip", "main.py", b"print(1)\n")
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local, central
        at = data.index(signature) + offset
        data[at:at + 2] = (99).to_bytes(2, "little")
    archive.write_bytes(bytes(data))

    with pytest.raises(ArchiveError, match=r"odd\.zip is damaged or uses a form that cannot "
                                           r"be read \(entry 'main\.py'\)"):
        unpack(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.zip"]


def test_a_truncated_tar_gz_is_an_archive_error_and_leaves_nothing(tmp_path):
    content = os.urandom(200_000)  # does not compress: the cut lands inside this member
    archive = _tar(tmp_path / "cut.tar.gz", (_member("ok.txt"), b"fine"),
                   (_member("big.bin"), content))
    whole = archive.read_bytes()
    archive.write_bytes(whole[:len(whole) // 2])

    with pytest.raises(ArchiveError, match=r"cut\.tar\.gz is damaged"):
        unpack(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar.gz"]


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs the tar command")
def test_a_tarball_made_with_tar_dash_c_dot_unpacks(tmp_path):
    project = tmp_path / "proj"
    (project / "jobs").mkdir(parents=True)
    (project / "jobs" / "main.py").write_text("print('hi')\n")
    (project / "data.txt").write_text("data\n")
    archive = tmp_path / "p.tgz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(project), "."], check=True)
    with tarfile.open(archive) as tf:
        assert "./jobs/main.py" in tf.getnames()

    assert unpack(archive, tmp_path / "out") == 2
    assert (tmp_path / "out" / "jobs" / "main.py").read_text() == "print('hi')\n"
    assert (tmp_path / "out" / "data.txt").read_text() == "data\n"


@pytest.mark.parametrize("name", ["./../escape.txt", "././a/../../escape.txt"])
def test_leading_dot_components_do_not_hide_a_parent_reference(tmp_path, name):
    archive = _tar(tmp_path / "t.tar.gz", (_member("./"), b""), (_member(name), b"x"))
    with pytest.raises(ArchiveError, match="'..'"):
        unpack(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tar.gz"]


def test_a_file_older_than_1980_is_packed(tmp_path):
    src = tmp_path / "proj"
    src.mkdir()
    (src / "old.py").write_text("print('old')\n")
    os.utime(src / "old.py", (0, 0))  # 1970: a zip's dates start in 1980
    buffer = io.BytesIO()

    assert pack_folder(src, buffer).files == 1

    with zipfile.ZipFile(buffer) as zf:
        assert zf.read("old.py") == b"print('old')\n"
        assert zf.getinfo("old.py").date_time[0] == 1980


def test_names_that_are_not_utf8_are_skipped_and_listed(tmp_path):
    src = tmp_path / "proj"
    src.mkdir()
    (src / "main.py").write_text("print(1)\n")
    root = os.fsencode(src)
    with open(os.path.join(root, b"bad\xff.txt"), "wb") as out:
        out.write(b"x")
    os.mkdir(os.path.join(root, b"dir\xfe"))
    with open(os.path.join(root, b"dir\xfe", b"inside.txt"), "wb") as out:
        out.write(b"y")
    buffer = io.BytesIO()

    result = pack_folder(src, buffer)

    assert result.files == 1
    assert set(result.skipped) == {"bad\\xff.txt", "dir\\xfe"}
    with zipfile.ZipFile(buffer) as zf:
        assert zf.namelist() == ["main.py"]


def test_not_packed_says_why_pack_folder_would_leave_a_file_out(tmp_path):
    src = tmp_path / "proj"
    (src / "node_modules" / "pkg").mkdir(parents=True)
    (src / "node_modules" / "pkg" / "index.py").write_text("")
    (src / "real").mkdir()
    (src / "real" / "main.py").write_text("")
    (src / "linked").symlink_to(src / "real")
    (src / "alias.py").symlink_to(src / "real" / "main.py")
    (src / "venv.py").write_text("")  # a file may be called like a skipped folder

    assert not_packed(src, "real/main.py") is None
    assert not_packed(src, "venv.py") is None
    assert "inside 'node_modules', a folder that is never packed" in \
        not_packed(src, "node_modules/pkg/index.py")
    assert "goes through 'linked', a symbolic link" in not_packed(src, "linked/main.py")
    assert "'alias.py' is a symbolic link" in not_packed(src, "alias.py")
    packed = io.BytesIO()
    pack_folder(src, packed)
    with zipfile.ZipFile(packed) as zf:
        assert set(zf.namelist()) == {"real/main.py", "venv.py"}
