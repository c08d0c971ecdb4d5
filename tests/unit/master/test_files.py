"""The master's file store: chunked uploads, names over content-addressed blobs, restarts."""

from __future__ import annotations

import hashlib

import pytest

from titan_actors.errors import UsageError
from titan_actors.master.files import FileStore
from titan_actors.wire.messages.files import FileArea

U = FileArea.UPLOADS


def _store(store: FileStore, name: str, *chunks: bytes, area: FileArea = U, upload="u1",
           owner_run=""):
    offset = 0
    for chunk in chunks:
        store.write_chunk(area, name, upload, offset, chunk, owner_run=owner_run)
        offset += len(chunk)
    return store.finish(store.take(upload))


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


def test_the_run_that_stored_a_file_is_kept(tmp_path):
    store = FileStore(tmp_path / "files")
    assert _store(store, "a.txt", b"1", owner_run="r1").owner_run == "r1"
    assert FileStore(tmp_path / "files").info(U, "a.txt").owner_run == "r1"


def test_uploads_in_progress_are_bounded_and_dropped_with_their_connection(tmp_path):
    store = FileStore(tmp_path / "files", max_uploads=3, max_uploads_per_owner=2)
    store.write_chunk(U, "a", "a1", 0, b"x", owner="conn-1")
    store.write_chunk(U, "b", "b1", 0, b"x", owner="conn-1")
    with pytest.raises(UsageError, match="this connection has 2 uploads in progress"):
        store.write_chunk(U, "c", "c1", 0, b"x", owner="conn-1")
    store.write_chunk(U, "c", "c2", 0, b"x", owner="conn-2")
    with pytest.raises(UsageError, match="3 uploads in progress, the most it takes at once"):
        store.write_chunk(U, "d", "d1", 0, b"x", owner="conn-3")
    with pytest.raises(UsageError, match="is another upload"):
        store.write_chunk(U, "c", "c2", 1, b"x", owner="conn-1")  # not its upload
    assert store.abort_owner("conn-1") == 2
    assert sorted(p.name for p in (tmp_path / "files" / "tmp").iterdir()) == ["c2"]


def test_idle_uploads_are_dropped(tmp_path):
    store = FileStore(tmp_path / "files", idle_timeout=0.0)
    store.write_chunk(U, "a", "a1", 0, b"x")
    assert store.drop_idle() == 1
    assert list((tmp_path / "files" / "tmp").iterdir()) == []


def test_a_nearly_full_disk_refuses_the_chunk(tmp_path):
    store = FileStore(tmp_path / "files", reserve=1 << 62)  # more than any disk has free
    with pytest.raises(UsageError, match="disk is nearly full"):
        store.write_chunk(U, "a", "a1", 0, b"x")
    assert list((tmp_path / "files" / "tmp").iterdir()) == []


def test_collect_never_removes_a_blob_being_named(tmp_path, monkeypatch):
    """finish() places the blob and names it under the lock collect() takes: a collect that
    runs in between (here: during the directory fsync after naming) keeps it."""
    import titan_actors.master.files as files_module
    store = FileStore(tmp_path / "files")
    real = files_module._fsync_dir
    seen = []

    def fsync_then_collect(path):
        seen.append(store.collect())
        real(path)
    monkeypatch.setattr(files_module, "_fsync_dir", fsync_then_collect)
    info = _store(store, "a.txt", b"acknowledged")
    assert seen and seen[0] == []
    assert store.read_blob(info.digest, 0, 100) == b"acknowledged"
