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
from titan_actors.errors import LocalFileError, SubmissionError, UsageError
from titan_actors.pipeline import load_pipeline
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


def test_a_damaged_archive_fails_its_job_and_the_worker_goes_on(cluster):
    cluster.add_worker("w1")
    good = _zip({"main.py": "print('ok ' * 100)"})
    damaged = bytearray(good)
    damaged[good.index(b"print")] ^= 0xFF  # stored, not compressed: the CRC no longer matches
    cluster.client.blocking(lambda c: transfer.upload_bytes(c, bytes(damaged), "bad.zip"))

    accepted = cluster.client.submit(run_spec(
        "damaged", JobSpec("bad", archive="bad.zip", script_name="main.py", retries=0),
        job("after", "echo still-here", parents=()),))
    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["bad"].state is JobState.DEAD
    assert "bad.zip" in jobs["bad"].reason and "could not start" in jobs["bad"].reason
    assert jobs["after"].state is JobState.COMPLETED
    assert [w.name for w in cluster.client.workers() if w.connected] == ["w1"]


def test_a_submission_too_big_for_one_record_is_refused_and_the_master_goes_on(cluster):
    cluster.add_worker("w1")
    big = b"#" * (5_550_000)  # three of them fit in a 16 MiB frame, not in one AOF record
    with pytest.raises(SubmissionError, match="more than the .* bytes one submission may hold"):
        cluster.client.submit(run_spec("huge", *(JobSpec(f"j{i}", script_name="x.py",
                                                         script=big) for i in range(3))))
    accepted = cluster.client.submit(run_spec("small", job("ok")))
    assert cluster.client.wait_run(accepted.run_id)["ok"].state is JobState.COMPLETED


def test_a_job_cannot_replace_what_a_client_stored(make_cluster):
    cluster = make_cluster(keys=KeyRing(os.urandom(32)))
    cluster.start_master()
    cluster.add_worker("w1")
    cluster.client.blocking(lambda c: transfer.upload_bytes(c, b"by a person", "proj.zip"))
    script = ("from titan_actors.client import MasterClient\n"
              "from titan_actors import transfer\n"
              "with MasterClient.from_environment() as c:\n"
              "    transfer.upload_bytes(c, b'first', 'shared.txt')\n"
              "    transfer.upload_bytes(c, b'second', 'shared.txt')\n"
              "    for action in (lambda: transfer.upload_bytes(c, b'evil', 'proj.zip'),\n"
              "                   lambda: transfer.delete_file(c, 'proj.zip')):\n"
              "        try:\n"
              "            action()\n"
              "        except Exception as e:\n"
              "            print('refused:', e)\n")
    accepted = cluster.client.submit(run_spec(
        "swap", JobSpec("swap", script_name="swap.py", script=script.encode(), retries=0)))
    cluster.client.wait_run(accepted.run_id)

    out = cluster.client.log_text(f"{accepted.run_id}/swap")
    assert out.count(b"refused: a job cannot") == 2, out
    assert b"cannot replace 'proj.zip': a client stored it" in out
    assert cluster.client.blocking(lambda c: transfer.read_file(c, "proj.zip")) == b"by a person"
    assert cluster.client.blocking(lambda c: transfer.read_file(c, "shared.txt")) == b"second"


def test_workspace_reads_do_not_follow_links(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("links", job(
        "mk", "mkdir -p d && echo inside > d/real.txt && ln -s /etc d/etc && "
              "ln -s d/real.txt alias.txt && mkfifo pipe")))
    cluster.client.wait_run(accepted.run_id)

    names = {e.path for e in cluster.client.blocking(
        lambda c: transfer.list_workspace(c, accepted.run_id)).entries}
    assert names == {"d/real.txt"}
    assert cluster.client.blocking(lambda c: transfer.read_workspace_file(
        c, accepted.run_id, "d/real.txt")) == ("w1", b"inside\n")
    for path in ("d/etc/hostname", "alias.txt", "pipe", ".titan/scripts"):
        with pytest.raises(UsageError, match="no connected worker has"):
            cluster.client.blocking(
                lambda c, p=path: transfer.read_workspace_file(c, accepted.run_id, p))


def test_a_local_file_error_leaves_the_connection_usable(cluster, tmp_path):
    cluster.client.blocking(lambda c: transfer.upload_bytes(c, b"hello", "a.txt"))
    dest = tmp_path / "missing" / "dir" / "out.txt"

    def save_then_read(client):
        with pytest.raises(LocalFileError) as caught:
            transfer.download(client, "a.txt", dest)
        return str(caught.value), transfer.read_file(client, "a.txt")  # the same connection

    message, content = cluster.client.blocking(save_then_read)
    assert message == f"cannot save to {dest}: the folder {dest.parent} does not exist"
    assert content == b"hello"
    assert not (tmp_path / "missing").exists()


def test_a_project_pipeline_runs_what_it_uploaded_even_if_the_name_is_replaced(cluster,
                                                                              tmp_path):
    cluster.add_worker("w1")
    (tmp_path / "main.py").write_text("print('the uploaded project')\n")
    (tmp_path / "pipeline.yaml").write_text(
        "name: pinned\nproject: true\njobs:\n  - {id: main, file: main.py, retries: 0}\n")
    spec = load_pipeline(tmp_path / "pipeline.yaml")
    replaced = _zip({"main.py": "print('a later upload')\n"})

    class RacingUpload:
        """Uploads another pinned.zip between the pipeline's upload and its submission."""

        def __init__(self, client):
            self.client = client

        def ask(self, message):
            return self.client.ask(message)

        def submit(self, spec, from_run="", from_job=""):
            transfer.upload_bytes(self.client, replaced, "pinned.zip")
            return self.client.submit(spec, from_run, from_job)

    accepted = cluster.client.blocking(
        lambda c: transfer.submit_pipeline(RacingUpload(c), spec))
    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["main"].state is JobState.COMPLETED, jobs["main"].reason
    assert cluster.client.log_text(f"{accepted.run_id}/main") == b"the uploaded project\n"
