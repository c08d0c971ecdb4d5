"""The client side of file transfer against a fake master: streaming in chunks, a workspace file
that keeps growing, local file errors named as such, and project pipelines pinned to what they
uploaded. (Over real sockets: tests/integration/test_files.py.)"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field

import pytest

from titan_actors import transfer
from titan_actors.errors import LocalFileError, UsageError
from titan_actors.pipeline import load_pipeline
from titan_actors.scheduler.model import RunSpec
from titan_actors.wire.messages import files as f
from titan_actors.wire.messages.master import RunAccepted


def _info(name: str, data: bytes) -> f.FileInfo:
    return f.FileInfo(f.FileArea.UPLOADS, name, len(data), hashlib.sha256(data).hexdigest(), 0.0)


@dataclass
class FakeMaster:
    """Answers the file messages as the master does (``ask``) and records submissions
    (``submit``): what :mod:`titan_actors.transfer` uses of a MasterClient."""

    stored: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    workspace: bytearray = field(default_factory=bytearray)
    grow_by: bytes = b""  # appended to the workspace file after each read of it
    replace_after_first_chunk: bytes | None = None
    asked: list[object] = field(default_factory=list)
    submitted: list[RunSpec] = field(default_factory=list)

    def ask(self, message: object) -> object:
        self.asked.append(message)
        if isinstance(message, f.PutFile):
            buffer = self.uploads.setdefault(message.upload_id, bytearray())
            buffer += message.data
            if not message.final:
                return f.FileStored(len(buffer))
            self.stored[message.name] = bytes(self.uploads.pop(message.upload_id))
            return f.FileStored(len(buffer), _info(message.name, self.stored[message.name]))
        if isinstance(message, f.GetFile):
            if message.name not in self.stored:
                raise UsageError(f"{message.name!r} is not in the uploaded files")
            data = self.stored[message.name]
            piece = data[message.offset:message.offset + message.limit]
            if self.replace_after_first_chunk is not None:
                self.stored[message.name] = self.replace_after_first_chunk
                self.replace_after_first_chunk = None
            return f.FileData(_info(message.name, data), message.offset, piece,
                              message.offset + len(piece) >= len(data))
        if isinstance(message, f.GetWorkspaceFile):
            size = len(self.workspace)
            piece = bytes(self.workspace[message.offset:message.offset + message.limit])
            self.workspace += self.grow_by
            return f.WorkspaceFileData("w1", message.path, size, message.offset, piece,
                                       message.offset + len(piece) >= size)
        raise AssertionError(f"unexpected {message!r}")

    def submit(self, spec: RunSpec, from_run: str = "", from_job: str = "") -> RunAccepted:
        self.submitted.append(spec)
        return RunAccepted("r-1", spec.name, tuple(job.id for job in spec.jobs))


def test_a_stored_file_streams_in_chunks_and_reads_whole():
    data = bytes(range(256)) * (f.CHUNK // 256 * 2 + 3)  # two chunks and a bit
    master = FakeMaster(stored={"big.bin": data})

    chunks = list(transfer.iter_file(master, "big.bin"))

    assert [len(c) for c in chunks] == [f.CHUNK, f.CHUNK, len(data) - 2 * f.CHUNK]
    assert transfer.read_file(master, "big.bin") == data


def test_a_file_replaced_while_streamed_is_an_error_not_a_mix():
    data = b"a" * (f.CHUNK + 10)
    master = FakeMaster(stored={"x.bin": data}, replace_after_first_chunk=b"b" * (f.CHUNK + 10))
    with pytest.raises(UsageError, match="'x.bin' changed on the master while it was"):
        list(transfer.iter_file(master, "x.bin"))


def test_a_growing_workspace_file_stops_at_the_size_first_reported():
    first = b"line\n" * (f.CHUNK // 5 + 100)  # more than one chunk
    master = FakeMaster(workspace=bytearray(first), grow_by=b"more\n" * 1000)

    chunks = list(transfer.iter_workspace_file(master, "r-1", "log.txt"))

    assert b"".join(chunks) == first
    assert all(len(c) <= f.CHUNK for c in chunks)
    later = [m for m in master.asked if isinstance(m, f.GetWorkspaceFile)][1:]
    assert later and all(m.worker == "w1" for m in later)  # the same worker to the end
    master.workspace = bytearray(b"short")
    assert transfer.read_workspace_file(master, "r-1", "log.txt") == ("w1", b"short")
    master.workspace = bytearray()
    assert transfer.read_workspace_file(master, "r-1", "empty.txt") == ("w1", b"")


def test_saving_to_a_missing_folder_names_the_path_not_a_temp_file(tmp_path):
    master = FakeMaster(stored={"a.txt": b"hello"})
    dest = tmp_path / "missing" / "dir" / "out.txt"

    with pytest.raises(LocalFileError) as caught:
        transfer.download(master, "a.txt", dest)

    assert str(caught.value) == (f"cannot save to {dest}: the folder {dest.parent} does not "
                                 "exist")
    assert isinstance(caught.value, UsageError)
    (tmp_path / "plain").write_text("")
    with pytest.raises(LocalFileError, match=re.escape(f"{tmp_path / 'plain'} is not a folder")):
        transfer.download(master, "a.txt", tmp_path / "plain" / "out.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]
    assert transfer.download(master, "a.txt", tmp_path).read_bytes() == b"hello"


def test_a_local_file_that_cannot_be_read_is_a_local_file_error(tmp_path):
    master = FakeMaster()
    missing = tmp_path / "nope.txt"
    with pytest.raises(LocalFileError, match=re.escape(f"cannot read {missing}: it does not "
                                                       "exist")):
        transfer.upload(master, tmp_path / "nope.txt")
    with pytest.raises(LocalFileError, match="it is not a regular file"):
        transfer.upload(master, tmp_path)
    assert master.asked == []


def test_a_project_pipeline_pins_its_archive_jobs_to_the_uploaded_digest(tmp_path):
    (tmp_path / "main.py").write_text("print('v1')\n")
    (tmp_path / "pipeline.yaml").write_text(
        "name: pinned\nproject: true\njobs:\n  - {id: main, file: main.py}\n"
        "  - {id: other, command: [true]}\n")
    master = FakeMaster()

    transfer.submit_pipeline(master, load_pipeline(tmp_path / "pipeline.yaml"))

    uploaded = master.stored["pinned.zip"]
    with zipfile.ZipFile(io.BytesIO(uploaded)) as zf:
        assert zf.read("main.py") == b"print('v1')\n"
    main, other = master.submitted[0].jobs
    assert (main.archive, main.file_digest) == ("pinned.zip",
                                                hashlib.sha256(uploaded).hexdigest())
    assert (other.archive, other.file_digest) == ("", "")
