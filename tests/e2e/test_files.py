"""Layer 4: files through a real ``titanctl up`` cluster with two workers.

The SDK's file calls (upload, project folders, archive jobs, the script library, artifacts), a
YAML pipeline in project mode, ``script:`` from the library, and the ``titanctl`` file commands
(upload, deploy, files, download, workspace), as users run them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support import closed_port
from support.local_cluster import module_cluster, point_environment_at, write_pipeline
from titan_actors.scheduler.model import JobSpec
from titan_sdk import TitanClient, TitanJob


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("files") / "cluster", 2, 2)


@pytest.fixture
def sdk(cluster, monkeypatch):
    point_environment_at(cluster, monkeypatch)
    with TitanClient() as client:
        yield client


def _project(folder: Path) -> Path:
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "__init__.py").write_text("")
    (folder / "lib" / "shout.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    (folder / "data.txt").write_text("from the project folder\n")
    (folder / "main.py").write_text(
        "import sys\nfrom lib.shout import shout\n"
        "print(shout(open('data.txt').read().strip()), *sys.argv[1:])\n")
    return folder


def test_upload_project_folder_then_archive_jobs_run_inside_it(sdk, cluster, tmp_path):
    project = _project(tmp_path / "proj")
    assert sdk.upload_project_folder(str(project), "demo") == "UPLOAD_SUCCESS"

    reply = sdk.submit_dag("archived", [
        TitanJob("arch-main", "demo.zip/main.py", is_archive=True, args="--twice"),
        TitanJob("arch-again", "demo.zip/main.py", is_archive=True, parents=["arch-main"])])
    assert reply == "DAG_ACCEPTED", reply
    run_id = cluster.client.job("arch-again").job.run_id
    cluster.client.follow_run(run_id, 30)

    assert sdk.get_job_status("arch-again") == "COMPLETED"
    assert sdk.fetch_logs("arch-main") == "FROM THE PROJECT FOLDER! --twice\n"


def test_a_yaml_pipeline_in_project_mode(sdk, cluster, tmp_path):
    project = _project(tmp_path / "nightly")
    (project / "jobs").mkdir()
    (project / "jobs" / "report.py").write_text(
        "from lib.shout import shout\n"
        "print(shout('report'), open('data.txt').read().strip())\n")
    pipeline = project / "pipeline.yaml"
    pipeline.write_text("name: nightly-project\nproject: true\njobs:\n"
                        "  - id: proj-report\n    file: jobs/report.py\n")

    assert sdk.submit_yaml(str(pipeline), wait=True, timeout=60) == "DAG_ACCEPTED"

    assert sdk.get_job_status("proj-report") == "COMPLETED", sdk.fetch_logs("proj-report")
    assert sdk.fetch_logs("proj-report") == "REPORT! from the project folder\n"
    listed = cluster.json("files")
    assert "nightly-project.zip" in {f["name"] for f in listed}


def test_artifacts_hand_a_file_from_one_worker_to_another(sdk, cluster, tmp_path):
    make = ("from titan_sdk import TitanClient\n"
            "open('model.bin', 'wb').write(bytes(range(256)) * 5000)\n"
            "assert TitanClient().publish_artifact('model-of-the-day', 'model.bin') is True\n")
    use = ("import os, tempfile\nfrom titan_sdk import TitanClient\n"
           "target = os.path.join(os.getcwd(), 'got.bin')\n"
           "assert TitanClient().get_artifact('model-of-the-day', target) is True\n"
           "data = open(target, 'rb').read()\n"
           "print(len(data), data == bytes(range(256)) * 5000)\n")
    reply = sdk.submit_dag("artifacts", [
        JobSpec("art-make", script_name="make.py", script=make.encode(), worker="worker-1",
                retries=0),
        JobSpec("art-use", script_name="use.py", script=use.encode(), worker="worker-2",
                parents=("art-make",), retries=0)])
    assert reply == "DAG_ACCEPTED", reply
    run_id = cluster.client.job("art-use").job.run_id
    cluster.client.follow_run(run_id, 30)

    assert sdk.fetch_logs("art-use") == "1280000 True\n", sdk.fetch_logs("art-make")
    assert {cluster.client.job(j).job.worker for j in ("art-make", "art-use")} == \
        {"worker-1", "worker-2"}
    assert sdk.store_get("model-of-the-day") == "model.bin"
    saved = tmp_path / "here.bin"
    assert sdk.get_artifact("model-of-the-day", str(saved)) is True
    assert saved.read_bytes() == bytes(range(256)) * 5000
    assert sdk.fetch_artifact("model.bin", str(tmp_path)) is True
    assert (tmp_path / "model.bin").read_bytes() == saved.read_bytes()
    assert sdk.get_artifact("no-such-key").startswith("ERROR: no artifact is recorded")
    assert sdk.fetch_artifact("no-such-file.bin").startswith("ERROR: 'no-such-file.bin' is not")


def test_local_file_errors_are_refusals_and_keep_the_connection(sdk, tmp_path):
    (tmp_path / "local.txt").write_text("kept\n")
    assert sdk.upload_file(str(tmp_path / "local.txt")) == "UPLOAD_SUCCESS"
    dest = tmp_path / "missing" / "dir" / "out.txt"

    assert sdk.fetch_artifact("local.txt", str(dest)) == \
        f"ERROR: cannot save to {dest}: the folder {dest.parent} does not exist"
    assert sdk._client is not None  # a local refusal does not close the connection
    assert sdk.fetch_artifact("local.txt", "bad\0name").startswith("ERROR: ValueError: ")
    assert sdk.fetch_artifact("local.txt", str(tmp_path / "out.txt")) is True
    assert (tmp_path / "out.txt").read_text() == "kept\n"


def test_upload_file_refusals_make_no_call(tmp_path):
    with TitanClient(port=closed_port(), timeout=5) as client:
        assert client.upload_file(str(tmp_path / "absent.txt")) == \
            f"ERROR: {tmp_path / 'absent.txt'} does not exist"
        (tmp_path / "here.txt").write_text("x")
        assert client.upload_file(str(tmp_path / "here.txt")).startswith("CONNECTION_ERROR: ")


def test_cli_deploy_library_script_upload_download_and_workspace(cluster, tmp_path):
    script = tmp_path / "greet.py"
    script.write_text("import sys\nprint('hello', *sys.argv[1:])\n"
                      "open('greeting.txt', 'w').write('kept in the workspace')\n")
    deployed = cluster.ctl("deploy", str(script))
    assert deployed.returncode == 0, deployed.stderr
    assert "script: greet.py" in deployed.stdout
    assert [f["name"] for f in cluster.json("files", "--scripts")] == ["greet.py"]

    pipeline = write_pipeline(tmp_path / "lib.yaml", "from-library", [
        {"id": "lib-greet", "script": "greet.py", "args": "library world", "worker": "worker-2"}])
    run_id = cluster.submit(pipeline)
    cluster.wait_run(run_id)
    assert cluster.ctl("logs", "lib-greet").stdout == "hello library world\n"

    listing = cluster.json("workspace", run_id)
    assert [(e["worker"], e["path"]) for e in listing["entries"]] == \
        [("worker-2", "greeting.txt")]
    shown = cluster.ctl("workspace", run_id, "greeting.txt")
    assert shown.returncode == 0 and shown.stdout == "kept in the workspace"
    missing = cluster.ctl("workspace", run_id, "../../../etc/passwd")
    assert missing.returncode == 2 and "no connected worker has" in missing.stderr

    data = tmp_path / "table.csv"
    data.write_text("a,b\n1,2\n")
    assert cluster.ctl("upload", str(data)).returncode == 0
    assert cluster.ctl("download", "table.csv").stdout == "a,b\n1,2\n"
    saved = cluster.ctl("download", "table.csv", "-o", str(tmp_path / "copy.csv"))
    assert saved.returncode == 0 and (tmp_path / "copy.csv").read_text() == "a,b\n1,2\n"
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 10_000)  # more than two chunks of 1 MiB
    assert cluster.ctl("upload", str(big)).returncode == 0
    streamed = cluster.ctl_bytes("download", "big.bin")
    assert streamed.returncode == 0 and streamed.stdout == big.read_bytes()
    missing_folder = tmp_path / "absent" / "copy.csv"
    refused_save = cluster.ctl("download", "table.csv", "-o", str(missing_folder))
    assert refused_save.returncode == 2
    assert f"cannot save to {missing_folder}: the folder {missing_folder.parent} does not " \
        "exist" in refused_save.stderr
    unknown = cluster.ctl("download", "nope.csv")
    assert unknown.returncode == 2 and "'nope.csv' is not in the uploaded files" in unknown.stderr
    refused = cluster.ctl("submit", str(write_pipeline(tmp_path / "bad.yaml", "bad", [
        {"id": "bad-lib", "script": "not-deployed.py"}])))
    assert refused.returncode == 2
    assert "job 'bad-lib': 'not-deployed.py' is not in the script library" in refused.stderr
    assert json.loads(cluster.ctl("files", "--json").stdout)


def test_the_project_mode_example_runs_as_shipped(cluster):
    example = Path(__file__).resolve().parents[2] / "pipelines" / "project_mode" / "pipeline.yaml"
    done = cluster.ctl("submit", str(example), "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cluster.ctl("logs", "report").stdout == \
        "3 regions, 305 in all; best: north (150)\n"


def test_native_sdk_files_and_a_run_s_workspace(cluster, monkeypatch, tmp_path):
    from titan_sdk import Job, Pipeline, RequestRefused, Titan
    point_environment_at(cluster, monkeypatch)
    project = _project(tmp_path / "native")
    with Titan() as titan:
        info = titan.upload(project)
        assert info.name == "native.zip"
        titan.deploy_script(name="count.py", content="print(len(open('data.txt').read()))")
        assert "count.py" in {f.name for f in titan.files(scripts=True)}
        run = titan.submit(Pipeline("native-files", [
            Job("nat-main", archive="native.zip", file="main.py", worker="worker-1"),
            Job("nat-note", command=["sh", "-c", "echo noted > note.txt"], worker="worker-1")]))
        run.wait(30)
        assert run.logs("nat-main") == "FROM THE PROJECT FOLDER!\n"
        paths = {(e.worker, e.path) for e in run.files()}
        assert {("worker-1", "note.txt"), ("worker-1", "native/main.py")} <= paths
        assert run.read_file("note.txt") == b"noted\n"
        with pytest.raises(RequestRefused, match="no connected worker has"):
            run.read_file("absent.txt")
        saved = titan.download("native.zip", tmp_path / "back.zip")
        assert saved.stat().st_size == info.size
        dest = tmp_path / "missing" / "back.zip"
        with pytest.raises(RequestRefused, match=re.escape(f"cannot save to {dest}: the folder ")):
            titan.download("native.zip", dest)
        assert titan.read_file("native.zip") == saved.read_bytes()  # still connected
        with pytest.raises(FileNotFoundError):
            titan.upload(tmp_path / "absent.bin")
