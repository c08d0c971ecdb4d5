"""Per-run workspaces, scripts and retention."""

from __future__ import annotations

import os
import stat

import pytest

from titan_actors.errors import UsageError
from titan_actors.execution import workspace


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_layout_and_modes(tmp_path):
    run = workspace.prepare_run(tmp_path, "r1")
    assert run == tmp_path / "runs" / "r1" and _mode(run) == 0o700
    script = workspace.write_script(tmp_path, "r1", "job-a", 2, "main.py", b"print(1)\n")
    assert script == run / ".titan" / "scripts" / "job-a" / "2" / "main.py"
    assert script.read_bytes() == b"print(1)\n" and _mode(script) == 0o700
    assert workspace.script_path(tmp_path, "r1", "job-a", 2, "main.py") == script


def test_a_script_is_replaced_whole_and_no_temp_file_stays(tmp_path):
    workspace.write_script(tmp_path, "r1", "j", 1, "s.sh", b"old")
    path = workspace.write_script(tmp_path, "r1", "j", 1, "s.sh", b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(path.parent) == ["s.sh"]


@pytest.mark.parametrize("field,args", [
    ("run id", ("..", "j", 1, "s")), ("run id", ("a/b", "j", 1, "s")),
    ("job id", ("r", "", 1, "s")), ("job id", ("r", ".", 1, "s")),
    ("script name", ("r", "j", 1, "../../x")), ("script name", ("r", "j", 1, "a\0b")),
    ("attempt", ("r", "j", -1, "s")),
])
def test_ids_must_be_plain_names(tmp_path, field, args):
    with pytest.raises(UsageError, match=field):
        workspace.write_script(tmp_path, *args, b"")
    assert not (tmp_path / "x").exists()


def test_remove_run_even_with_read_only_directories(tmp_path):
    run = workspace.prepare_run(tmp_path, "r1")
    (run / "cache" / "pkg").mkdir(parents=True)
    (run / "cache" / "pkg" / "f").write_text("x")
    (run / "cache" / "pkg").chmod(0o555)
    (run / "cache").chmod(0o555)
    assert workspace.remove_run(tmp_path, "r1") is True
    assert not run.exists()
    assert workspace.remove_run(tmp_path, "r1") is False


def test_prune_removes_unused_runs_except_kept_ones(tmp_path):
    for name, used in (("old", 1000.0), ("kept", 1000.0), ("new", 5000.0)):
        os.utime(workspace.prepare_run(tmp_path, name), (used, used))
    assert [w.run_id for w in workspace.list_runs(tmp_path)][-1] == "new"
    removed = workspace.prune_runs(tmp_path, 3600, keep={"kept"}, now=5100.0)
    assert removed == ["old"]
    assert sorted(w.run_id for w in workspace.list_runs(tmp_path)) == ["kept", "new"]
    assert workspace.list_runs(tmp_path / "nothing") == []


def test_make_executable_refuses_a_file_that_is_not_the_job_users(tmp_path):
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o600)
    with pytest.raises(UsageError, match="not the job user's file"):
        workspace.make_executable(script, os.geteuid() + 1)
    assert not script.stat().st_mode & stat.S_IXUSR
    workspace.make_executable(script, os.geteuid())
    assert script.stat().st_mode & stat.S_IXUSR
