"""Workspaces of jobs that run as another user (the worker is root): who owns what, with which
mode, and what the worker refuses (workspace.py, "Jobs that run as another user")."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from titan_actors.errors import ConfigError, UsageError
from titan_actors.execution import workspace
from titan_actors.execution.job_user import JobUser

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")

_NOBODY = pwd.getpwnam("nobody")
NOBODY = JobUser("nobody", _NOBODY.pw_uid, _NOBODY.pw_gid)


@pytest.fixture
def data_dir():
    """A data directory under /tmp (pytest's own tmp_path is under a 0700 folder)."""
    root = Path(tempfile.mkdtemp(prefix="titan-owner-"))  # mode 0700
    yield root
    shutil.rmtree(root)


def _mode(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def test_open_to_lets_the_job_group_pass_to_the_runs_and_no_further(data_dir):
    worker = data_dir / "worker-w"
    worker.mkdir(mode=0o700)
    (worker / "reports").write_text("secret")
    workspace.open_to(worker, NOBODY)
    gid = NOBODY.gid
    assert _mode(data_dir) == (0o710, 0, gid)  # it gave its group nothing: the job group passes
    assert _mode(worker) == (0o710, 0, gid)
    assert _mode(worker / "runs") == (0o710, 0, gid)


def test_open_to_leaves_a_data_dir_others_may_pass_as_it_is(data_dir):
    os.chmod(data_dir, 0o755)
    worker = data_dir / "worker-w"
    worker.mkdir(mode=0o700)
    workspace.open_to(worker, NOBODY)
    assert _mode(data_dir) == (0o755, 0, 0)


def test_open_to_refuses_a_data_dir_behind_a_closed_directory(data_dir):
    os.chmod(data_dir, 0o755)
    closed = data_dir / "home"
    closed.mkdir(mode=0o700)
    worker = closed / "state" / "worker-w"
    worker.mkdir(parents=True, mode=0o700)
    os.chmod(closed / "state", 0o700)  # would be opened to the job's group, were the way open
    os.chmod(closed, 0o750)  # its group (root) may pass, nobody may not
    with pytest.raises(ConfigError) as error:
        workspace.open_to(worker, NOBODY)
    message = str(error.value)
    assert f"{closed} (mode 0750" in message and "nobody" in message
    assert "--data-dir" in message and "--job-user" in message
    assert _mode(closed / "state") == (0o700, 0, 0)  # a refusal changes nothing
    assert not (worker / "runs").exists()


def test_a_run_is_the_workers_the_job_group_writes_in_it_and_the_script_is_the_jobs(data_dir):
    worker = data_dir / "worker-w"
    worker.mkdir(mode=0o700)
    workspace.open_to(worker, NOBODY)
    run = workspace.prepare_run(worker, "r1", NOBODY)
    assert _mode(run) == (0o1770, 0, NOBODY.gid)
    assert _mode(run / ".titan") == (0o710, 0, NOBODY.gid)  # there before any job runs
    script = workspace.write_script(worker, "r1", "j", 1, "a.sh", b"echo hi\n", NOBODY)
    for folder in (run / ".titan" / "scripts", script.parent.parent, script.parent):
        assert _mode(folder) == (0o710, 0, NOBODY.gid)
    assert _mode(script) == (0o700, NOBODY.uid, NOBODY.gid)
    assert script.read_bytes() == b"echo hi\n"


def test_the_worker_never_writes_through_a_link_in_a_run(data_dir):
    worker = data_dir / "worker-w"
    worker.mkdir(mode=0o700)
    run = workspace.prepare_run(worker, "r1", NOBODY)
    outside = data_dir / "outside"
    outside.mkdir()
    scripts = run / ".titan" / "scripts"
    scripts.symlink_to(outside)  # what a job could plant were .titan its own
    with pytest.raises(OSError, match="not a directory of the worker"):
        workspace.write_script(worker, "r1", "j", 1, "a.sh", b"x", NOBODY)
    assert list(outside.iterdir()) == []


def test_a_job_cannot_replace_the_workers_titan_folder(data_dir):
    worker = data_dir / "worker-w"
    worker.mkdir(mode=0o700)
    workspace.open_to(worker, NOBODY)
    run = workspace.prepare_run(worker, "r1", NOBODY)
    pid = os.fork()
    if pid == 0:  # as the job user: rename .titan away (sticky: refused), write a file (allowed)
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY.gid)
            os.setuid(NOBODY.uid)
            try:
                os.rename(run / ".titan", run / "moved")
            except PermissionError:
                (run / "out.txt").write_text("mine")
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (run / ".titan").is_dir() and not (run / "moved").exists()
    assert _mode(run / "out.txt")[1:] == (NOBODY.uid, NOBODY.gid)
    assert (run / "out.txt").read_text() == "mine"  # the worker (root) reads what jobs write
    assert workspace.remove_run(worker, "r1") and not run.exists()


def test_hand_over_gives_a_tree_to_the_job_user_without_following_links(data_dir):
    project = data_dir / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "m.py").write_text("x = 1\n")
    target = data_dir / "target"
    target.write_text("the worker's")
    (project / "link").symlink_to(target)
    workspace.hand_over(project, NOBODY)
    for path in (project, project / "pkg", project / "pkg" / "m.py", project / "link"):
        assert _mode(path)[1:] == (NOBODY.uid, NOBODY.gid)
    assert _mode(target)[1:] == (0, 0)


def test_make_executable_refuses_a_link(data_dir):
    script = data_dir / "run.bin"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o600)
    workspace.make_executable(script)
    assert _mode(script)[0] == 0o700
    link = data_dir / "link"
    link.symlink_to(script)
    with pytest.raises(OSError):
        workspace.make_executable(link)
    fifo = data_dir / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        workspace.make_executable(fifo)
