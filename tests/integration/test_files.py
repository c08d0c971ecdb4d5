"""Layer 3: files through the master, archive jobs and a run's workspace, over real sockets.

The clients run the blocking ``transfer`` functions in the threadpool while the hub serves the
master and the workers (``cluster.client.blocking``).
"""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from support.cluster import job, run_spec
from titan_actors import transfer
from titan_actors.errors import SubmissionError, UsageError
from titan_actors.scheduler import JobSpec, JobState
from titan_actors.wire.auth import KeyRing
from titan_actors.wire.messages.files import CHUNK, FileArea


def _zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            zf.writestr(info, content)
    return buffer.getvalue()


def test_upload_list_download_and_replace(cluster, tmp_path):
    big = bytes(range(256)) * (CHUNK // 256 * 2 + 7)  # more than two chunks
    source = tmp_path / "data.bin"
    source.write_bytes(big)

    info = cluster.client.blocking(lambda c: transfer.upload(c, source))
    assert (info.name, info.size) == ("data.bin", len(big))

    names = cluster.client.blocking(lambda c: [f.name for f in transfer.list_files(c)])
    assert names == ["data.bin"]
    out = cluster.client.blocking(lambda c: transfer.download(c, "data.bin", tmp_path / "o.bin"))
    assert out.read_bytes() == big

    cluster.client.blocking(lambda c: transfer.upload_bytes(c, b"v2", "data.bin"))
    assert cluster.client.blocking(lambda c: transfer.read_file(c, "data.bin")) == b"v2"
    with pytest.raises(UsageError, match="'nope' is not in the uploaded files"):
        cluster.client.blocking(lambda c: transfer.read_file(c, "nope"))
    with pytest.raises(UsageError, match="not a plain file name"):
        cluster.client.blocking(lambda c: transfer.upload_bytes(c, b"x", "../escape"))


def test_library_script_runs_by_name_and_is_pinned_at_submission(cluster):
    cluster.add_worker("w1")
    cluster.client.blocking(lambda c: transfer.upload_bytes(
        c, b"import sys; print('library says', sys.argv[1])", "greet.py", FileArea.SCRIPTS))

    accepted = cluster.client.submit(run_spec(
        "lib", JobSpec("hello", library="greet.py", args=("hi",), retries=0)))
    # a later deploy does not change the submitted job
    cluster.client.blocking(lambda c: transfer.upload_bytes(c, b"print('v2')", "greet.py",
                                                            FileArea.SCRIPTS))
    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["hello"].state is JobState.COMPLETED
    assert cluster.client.log_text(f"{accepted.run_id}/hello") == b"library says hi\n"


def test_missing_library_script_or_archive_refuses_the_whole_submission(cluster):
    with pytest.raises(SubmissionError) as refused:
        cluster.client.submit(run_spec(
            "bad", JobSpec("a", library="nothere.py"),
            JobSpec("b", archive="proj.zip", script_name="main.py")))
    text = str(refused.value)
    assert "job 'a': 'nothere.py' is not in the script library" in text
    assert "job 'b': 'proj.zip' is not in the uploaded files" in text
    assert cluster.client.runs() == ()


def test_archive_jobs_run_inside_their_unpacked_project(cluster):
    cluster.add_worker("w1")
    project = _zip({
        "proj/main.py": "import helper, os; print(helper.VALUE, os.path.basename(os.getcwd()))\n"
                        "open('out.txt', 'w').write('written by main')\n",
        "proj/helper.py": "VALUE = 'helper-ok'\n",
        "proj/tool": "#!/bin/sh\necho tool-ran\n",
    })
    cluster.client.blocking(lambda c: transfer.upload_bytes(c, project, "demo.zip"))

    accepted = cluster.client.submit(run_spec(
        "archive",
        JobSpec("main", archive="demo.zip", script_name="proj/main.py", retries=0),
        JobSpec("tool", archive="demo.zip", script_name="proj/tool", retries=0,
                parents=("main",)),
        JobSpec("missing", archive="demo.zip", script_name="proj/absent.py", retries=0)))
    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["main"].state is JobState.COMPLETED, jobs["main"].reason
    assert cluster.client.log_text(f"{accepted.run_id}/main") == b"helper-ok demo\n"
    assert cluster.client.log_text(f"{accepted.run_id}/tool") == b"tool-ran\n"
    assert jobs["missing"].state is JobState.DEAD
    assert "proj/absent.py" in jobs["missing"].reason

    listing = cluster.client.blocking(lambda c: transfer.list_workspace(c, accepted.run_id))
    paths = {e.path: e.worker for e in listing.entries}
    assert paths["demo/out.txt"] == "w1" and "demo/proj/main.py" in paths
    assert not any(p.startswith(".titan") for p in paths)
    worker, content = cluster.client.blocking(
        lambda c: transfer.read_workspace_file(c, accepted.run_id, "demo/out.txt"))
    assert (worker, content) == ("w1", b"written by main")
    with pytest.raises(UsageError, match="no connected worker has"):
        cluster.client.blocking(
            lambda c: transfer.read_workspace_file(c, accepted.run_id, "../../etc/passwd"))


def test_a_hostile_archive_fails_the_job_and_writes_nothing_outside(cluster, tmp_path):
    cluster.add_worker("w1")
    evil = _zip({"../escape.py": "print('escaped')"})
    link = _zip({"proj/link": "/etc/passwd"}, modes={"proj/link": 0o120777})
    cluster.client.blocking(lambda c: transfer.upload_bytes(c, evil, "evil.zip"))
    cluster.client.blocking(lambda c: transfer.upload_bytes(c, link, "link.zip"))

    accepted = cluster.client.submit(run_spec(
        "hostile",
        JobSpec("evil", archive="evil.zip", script_name="x.py", retries=0),
        JobSpec("link", archive="link.zip", script_name="proj/link", retries=0)))
    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["evil"].state is JobState.DEAD
    assert "'..'" in jobs["evil"].reason
    assert jobs["link"].state is JobState.DEAD
    assert "link or a special file" in jobs["link"].reason
    assert not list(cluster.root.rglob("escape.py"))


def test_jobs_upload_artifacts_but_not_library_scripts(make_cluster):
    cluster = make_cluster(keys=KeyRing(os.urandom(32)))  # with a key, jobs carry tokens
    cluster.start_master()
    cluster.add_worker("w1")
    script = ("from titan_actors.client import MasterClient\n"
               "from titan_actors import transfer\n"
               "from titan_actors.wire.messages.files import FileArea\n"
               "with MasterClient.from_environment() as c:\n"
               "    transfer.upload_bytes(c, b'result', 'artifact.txt')\n"
               "    try:\n"
               "        transfer.upload_bytes(c, b'x', 'sneaky.py', FileArea.SCRIPTS)\n"
               "    except Exception as e:\n"
               "        print('refused:', e)\n")
    accepted = cluster.client.submit(run_spec(
        "artifacts", JobSpec("up", script_name="up.py", script=script.encode(), retries=0)))
    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["up"].state is JobState.COMPLETED, cluster.client.log_text(
        f"{accepted.run_id}/up")
    assert cluster.client.blocking(lambda c: transfer.read_file(c, "artifact.txt")) == b"result"
    assert b"refused: a job cannot change the master's script library" in \
        cluster.client.log_text(f"{accepted.run_id}/up")
    assert cluster.client.blocking(lambda c: transfer.list_files(c, FileArea.SCRIPTS)) == ()


def test_unknown_run_workspace_is_an_error(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("one", job("a")))
    cluster.client.wait_run(accepted.run_id)
    with pytest.raises(UsageError, match="no run 'r-nope'"):
        cluster.client.blocking(lambda c: transfer.list_workspace(c, "r-nope"))
