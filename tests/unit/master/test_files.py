"""The master's file store: chunked uploads, names over content-addressed blobs, restarts."""

from __future__ import annotations

import hashlib

import pytest

from titan_actors.errors import UsageError
from titan_actors.master.files import FileStore
from titan_actors.wire.messages.files import FileArea

U = FileArea.UPLOADS


def _store(store: FileStore, name: str, *chunks: bytes, area: FileArea = U, upload="u1"):
    offset = 0
    for chunk in chunks:
        store.write_chunk(area, name, upload, offset, chunk)
        offset += len(chunk)
    return store.finish(upload)


def test_chunks_make_one_file_with_its_digest(tmp_path):
    store = FileStore(tmp_path / "files", clock=lambda: 1000.0)
    info = _store(store, "a.bin", b"abc", b"def")
    assert (info.name, info.size, info.stored_at) == ("a.bin", 6, 1000.0)
    assert info.digest == hashlib.sha256(b"abcdef").hexdigest()
    assert store.read(U, "a.bin", 2, 3) == (info, b"cde")
    assert store.list(FileArea.SCRIPTS) == []


def test_out_of_order_chunks_and_oversize_uploads_are_refused(tmp_path):
    store = FileStore(tmp_path / "files", max_size=10)
    store.write_chunk(U, "a", "u1", 0, b"1234")
    with pytest.raises(UsageError, match="chunk at offset 9, expected 4"):
        store.write_chunk(U, "a", "u1", 9, b"x")
    with pytest.raises(UsageError, match="larger than the 10 bytes"):
        store.write_chunk(U, "a", "u1", 4, b"1234567")
    with pytest.raises(UsageError, match="not known here"):
        store.write_chunk(U, "a", "u1", 11, b"")  # the oversize upload was dropped
    assert list((tmp_path / "files" / "tmp").iterdir()) == []


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "x\n", "é" * 200])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(UsageError, match="not a plain file name"):
        FileStore(tmp_path / "files").write_chunk(U, name, "u1", 0, b"")


def test_names_survive_a_restart_and_unreferenced_blobs_are_collected(tmp_path):
    store = FileStore(tmp_path / "files")
    old = _store(store, "proj.zip", b"version 1")
    _store(store, "proj.zip", b"version 2", upload="u2")
    store.write_chunk(U, "half.bin", "u3", 0, b"half")  # in progress at the "crash"

    again = FileStore(tmp_path / "files")
    assert again.read(U, "proj.zip", 0, 100)[1] == b"version 2"
    assert list((tmp_path / "files" / "tmp").iterdir()) == []
    assert again.collect(keep={old.digest}) == []  # a submitted job still runs version 1
    assert again.read_blob(old.digest, 0, 100) == b"version 1"
    assert again.collect() == [old.digest]
    with pytest.raises(UsageError, match="no stored file has the digest"):
        again.read_blob(old.digest, 0, 1)


def test_delete_and_unknown_names(tmp_path):
    store = FileStore(tmp_path / "files")
    _store(store, "s.py", b"print(1)", area=FileArea.SCRIPTS)
    with pytest.raises(UsageError, match="'t.py' is not in the script library \\(there: s.py\\)"):
        store.info(FileArea.SCRIPTS, "t.py")
    store.delete(FileArea.SCRIPTS, "s.py")
    assert store.list(FileArea.SCRIPTS) == []


def test_a_damaged_index_is_named(tmp_path):
    FileStore(tmp_path / "files")
    (tmp_path / "files" / "index.json").write_text("{not json")
    with pytest.raises(UsageError, match="index.json is damaged"):
        FileStore(tmp_path / "files")
