"""Who jobs run as, end to end as a user runs it, as root: a ``titanctl master`` with a cluster key
and a ``titanctl worker`` started by root with the default ``job_user`` (no TITAN_JOB_USER: the
suite's conftest sets one, these tests take it away), real processes over real sockets.

A job of that worker runs as ``nobody``: it cannot read the cluster key (the worker can: it
authenticated with it), its environment holds no key material but its run-scoped token, and
what it writes in its workspace the worker reads back. An unknown ``--job-user`` is refused at
start; ``titanctl up`` run by root gives its workers root (the invoking user) instead.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from support.local_cluster import LocalCluster, write_pipeline
from support.processes import TITANCTL, stop_and_check, titanctl, wait_for_file
from titan_actors.client import MasterClient
from titan_actors.keys import load_keyring

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="jobs switch users only under root")

NOBODY = pwd.getpwnam("nobody")
FAST = {"TITAN_HEARTBEAT_INTERVAL": "0.2", "TITAN_LEASE": "2", "TITAN_DRAIN_TIMEOUT": "2",
        "TITAN_BURST_MAX_PER_HOST": "0", "TITAN_LOG_LEVEL": "info"}


def _env(**more: str) -> dict[str, str]:
    """This environment without the suite's TITAN_JOB_USER (the worker's default applies)."""
    env = {k: v for k, v in os.environ.items() if k != "TITAN_JOB_USER"}
    return {**env, **FAST, **more}


class RootCluster:
    """A master with a key and one worker, both started by root, over a data directory under
    /tmp (pytest's tmp_path is below a 0700 folder no job user could pass)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="titan-job-user-"))  # mode 0700, as made
        self.key = self.root / "cluster.key"
        assert titanctl("key", "generate", str(self.key)).returncode == 0
        self.client_key = self.root / "client.key"  # what clients use: the key as it was
        shutil.copy(self.key, self.client_key)
        self.env = _env(TITAN_DATA_DIR=str(self.root), TITAN_KEY_FILE=str(self.key))
        self.processes: list[subprocess.Popen] = []
        master = self._start(["master", "--port", "0", "--ready-file",
                              str(self.root / "master.ready")], "master.log")
        self.port = json.loads(wait_for_file(self.root / "master.ready", master))["port"]
        self.address = f"127.0.0.1:{self.port}"
        worker = self._start(["worker", "--master", self.address, "--name", "w1", "--slots",
                              "4", "--ready-file", str(self.root / "w1.ready")], "w1.log")
        wait_for_file(self.root / "w1.ready", worker)
        self.worker = psutil.Process(worker.pid)
        self.client = MasterClient("127.0.0.1", self.port, keys=load_keyring(self.client_key),
                                   timeout=10, identity="test")

    def _start(self, args: list[str], log: str) -> subprocess.Popen:
        with open(self.root / log, "ab") as out:
            process = subprocess.Popen([TITANCTL, *args], stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=self.env)
        self.processes.append(process)
        return process

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return titanctl(*args, "--master", self.address, "--key-file", str(self.client_key),
                        env=self.env)

    def run(self, name: str, jobs: list[dict]) -> tuple[int, str]:
        """Submit and wait; return ``titanctl submit``'s exit code and the run id."""
        pipeline = write_pipeline(self.root / f"{name}.yaml", name, jobs)
        result = self.ctl("submit", str(pipeline), "--wait", "--json")
        assert result.stdout, result.stderr
        return result.returncode, json.loads(result.stdout)["run"]["run_id"]  # (the detail)

    def logs(self, run_id: str, job_id: str) -> str:
        return self.client.logs(f"{run_id}/{job_id}").data.decode()

    def stop(self) -> None:
        self.client.close()
        for process in reversed(self.processes):
            stop_and_check(process)
        shutil.rmtree(self.root)


@pytest.fixture(scope="module")
def cluster():
    cluster = RootCluster()
    yield cluster
    cluster.stop()


def _reachable_by_nobody(path: str) -> bool:
    """Whether nobody may execute ``path``: asked of a process running as nobody."""
    probe = subprocess.run(["/usr/bin/test", "-x", path], user=NOBODY.pw_uid,
                           group=NOBODY.pw_gid, extra_groups=[], cwd="/", check=False)
    return probe.returncode == 0


def test_a_root_workers_jobs_run_as_nobody_in_a_workspace_the_worker_reads(cluster):
    assert cluster.worker.uids().effective == 0
    (cluster.root / "who.sh").write_text('id -u\necho "home=$HOME"\npwd\n'
                                         'echo from-job > out.txt\n')
    (cluster.root / "who.py").write_text("import os\nprint(os.getuid())\n")
    reachable = _reachable_by_nobody(sys.executable)
    python = ({"id": "python", "file": "who.py"} if reachable else
              {"id": "python", "command": ["/bin/sh", "-c", "/usr/bin/id -u"]})  # (see below)
    log = (cluster.root / "w1.log").read_text()
    assert "jobs run as nobody (uid" in log
    assert ("Python jobs will fail: nobody cannot execute" in log) is not reachable
    code, run = cluster.run("as-nobody", [
        {"id": "id", "command": ["/usr/bin/id", "-u"]},
        {"id": "script", "file": "who.sh"},
        python,
        {"id": "env", "command": ["/usr/bin/env"]},
    ])
    assert code == 0, cluster.logs(run, "script")
    uid = str(NOBODY.pw_uid)
    assert cluster.logs(run, "id") == f"{uid}\n"
    assert cluster.logs(run, "python") == f"{uid}\n"  # the venv's python under /root here:
    # nobody cannot execute it, so a command job stands in for it (a Python job as nobody:
    # tests/security/test_launcher_user.py, with the system's python3)
    lines = cluster.logs(run, "script").splitlines()
    workspace = str(cluster.root / "worker-w1" / "runs" / run)
    assert lines == [uid, f"home={workspace}", workspace]  # nobody's home does not exist
    files = cluster.ctl("workspace", run, "out.txt")
    assert files.returncode == 0 and files.stdout == "from-job\n", files.stderr


def test_the_key_and_the_state_stay_closed_and_only_the_way_to_the_runs_opens(cluster):
    def mode(path: Path) -> tuple[str, int]:
        info = path.stat()
        return oct(stat.S_IMODE(info.st_mode)), info.st_gid

    nogroup = NOBODY.pw_gid
    assert mode(cluster.key) == ("0o600", 0)
    assert mode(cluster.root / "master") == ("0o700", 0)
    assert mode(cluster.root) == ("0o710", nogroup)  # it was 0700: its group may now pass
    assert mode(cluster.root / "worker-w1") == ("0o710", nogroup)
    assert mode(cluster.root / "worker-w1" / "runs") == ("0o710", nogroup)


def test_a_project_is_unpacked_for_nobody_who_works_in_it(cluster):
    project = cluster.root / "proj"
    (project / "jobs").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "data" / "in.txt").write_text("input\n")
    (project / "jobs" / "run.sh").write_text("id -u\ncat data/in.txt\necho made > made.txt\n")
    (project / "jobs" / "tool").write_text("#!/bin/sh\nid -un\ncat made.txt\n")  # run as is
    (project / "pipeline.yaml").write_text(json.dumps({
        "name": "proj", "version": "1.0", "project": True, "jobs": [
            {"id": "run", "file": "jobs/run.sh"},
            {"id": "tool", "file": "jobs/tool", "depends_on": ["run"]}]}))
    result = cluster.ctl("submit", str(project / "pipeline.yaml"), "--wait", "--json")
    run = json.loads(result.stdout)["run"]["run_id"]
    assert result.returncode == 0, cluster.logs(run, "run") + cluster.logs(run, "tool")
    assert cluster.logs(run, "run") == f"{NOBODY.pw_uid}\ninput\n"
    assert cluster.logs(run, "tool") == "nobody\nmade\n"


def test_a_job_cannot_read_the_key_and_its_environment_holds_only_its_token(cluster):
    code, run = cluster.run("read-key", [
        {"id": "env", "command": ["/usr/bin/env"]},
        {"id": "cat", "command": ["/bin/cat", str(cluster.key)], "retries": 0,
         "depends_on": ["env"]},
    ])
    assert code == 1  # the cat failed
    assert "Permission denied" in cluster.logs(run, "cat")
    assert cluster.key.read_text()  # the worker's user reads it, and authenticated with it
    env = dict(line.split("=", 1) for line in cluster.logs(run, "env").splitlines()
               if "=" in line)
    assert env["TITAN_TOKEN"].startswith("tjt1.") and env["TITAN_RUN_ID"] == run
    assert env["USER"] == env["LOGNAME"] == "nobody"
    assert not any("KEY" in name for name in env), sorted(env)  # TITAN_KEY_FILE is not passed
    for key in (cluster.key, cluster.client_key):  # (the first is replaced by the next test)
        key_hex = key.read_text().strip()
        assert not any(key_hex[:16] in value for value in env.values())


def test_a_running_master_and_worker_keep_the_key_they_read_at_start(cluster):
    """The key file is read once when a process starts: a new key in the file changes nothing
    for them (a restart picks it up), so a client with the original key still gets jobs run,
    and one with the new key is refused."""
    assert titanctl("key", "generate", str(cluster.key), "--force").returncode == 0
    code, run = cluster.run("old-key", [{"id": "id", "command": ["/usr/bin/id", "-u"]}])
    assert code == 0 and cluster.logs(run, "id") == f"{NOBODY.pw_uid}\n"
    refused = titanctl("ping", "--master", cluster.address, "--key-file", str(cluster.key),
                       env=cluster.env)
    assert refused.returncode == 2 and "keys differ" in refused.stderr


def test_an_unknown_job_user_is_refused_at_start_with_what_to_do(tmp_path):
    result = titanctl("worker", "--master", "127.0.0.1:9", "--data-dir", str(tmp_path),
                      "--name", "w", "--job-user", "no-such-titan-user", env=_env(),
                      timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "job_user 'no-such-titan-user': there is no such user" in result.stderr
    assert "useradd" in result.stderr and "Traceback" not in result.stderr


def test_titanctl_up_by_root_runs_jobs_as_root(tmp_path, monkeypatch):
    monkeypatch.delenv("TITAN_JOB_USER")  # the invoking user, root, not nobody
    cluster = LocalCluster(tmp_path / "up")
    cluster.up(1, 1)
    try:
        pipeline = write_pipeline(tmp_path / "id.yaml", "id",
                                  [{"id": "id", "command": ["/usr/bin/id", "-un"]}])
        result = cluster.ctl("submit", str(pipeline), "--wait")
        assert result.returncode == 0, result.stdout + result.stderr
        assert cluster.ctl("logs", "id").stdout == "root\n"
        for component in ("master", "worker-worker-1"):  # no other user: closed as ever
            assert stat.S_IMODE((tmp_path / "up" / component).stat().st_mode) == 0o700
    finally:
        cluster.down_and_check()
