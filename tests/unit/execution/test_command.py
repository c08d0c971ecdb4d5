"""A JobSpec's argv and environment."""

from __future__ import annotations

import os
import sys

import pytest

from titan_actors.errors import UsageError
from titan_actors.execution.command import (
    TitanEnv,
    build_command,
    build_env,
    is_secret_name,
    job_argv,
)
from titan_actors.scheduler.model import JobSpec

TITAN = TitanEnv("10.0.0.1", 7000, "tok", "job-1", "run-1", 3)


def test_python_scripts_run_unbuffered_with_this_interpreter(tmp_path):
    spec = JobSpec(id="j", script_name="train.py", args=("--lr", "0.1"))
    argv = job_argv(spec, "rel/train.py")
    assert argv == (os.path.abspath(sys.executable), "-u", os.path.abspath("rel/train.py"),
                    "--lr", "0.1")
    assert job_argv(spec, "/x/train.py", python="/opt/py")[0] == "/opt/py"


def test_shell_scripts_run_with_bash_by_absolute_path():
    argv = job_argv(JobSpec(id="j", script_name="go.sh", args=("a b",)), "/w/go.sh")
    assert os.path.isabs(argv[0]) and os.path.basename(argv[0]) == "bash"
    assert argv[1:] == ("/w/go.sh", "a b")


def test_other_scripts_run_directly():
    assert job_argv(JobSpec(id="j", script_name="run", args=("1",)), "/w/run") == ("/w/run", "1")


def test_commands_resolve_a_bare_name_on_the_given_path(tmp_path):
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    spec = JobSpec(id="j", command=("mytool", "-v"), args=("x",))
    assert job_argv(spec, path=str(tmp_path)) == (str(tool), "-v", "x")
    # not found: left as is, so the launcher reports "no such file" naming it
    assert job_argv(spec, path="/nonexistent")[0] == "mytool"
    assert job_argv(JobSpec(id="j", command=("./rel", "y")))[0] == "./rel"


def test_a_job_needs_a_script_or_a_command():
    with pytest.raises(UsageError, match="'j' has neither"):
        job_argv(JobSpec(id="j"))
    with pytest.raises(UsageError, match="was not written"):
        job_argv(JobSpec(id="j", script_name="a.py"))


def test_env_allowlist_secrets_and_precedence():
    base = {"PATH": "/bin", "HOME": "/h", "LANG": "C", "LC_TIME": "fr", "TZ": "UTC",
            "PYTHONPATH": "/src", "FOO": "x", "TITAN_KEY_FILE": "/k", "LC_API_KEY": "s",
            "http_proxy": "http://u:p@proxy", "LD_PRELOAD": "evil.so", "TITAN_TOKEN": "worker"}
    env = build_env(TITAN, {"MINE": "1", "API_KEY": "user-chosen", "TITAN_TOKEN": "spoof",
                            "PATH": "/job/bin"}, base=base)
    assert env == {"PATH": "/job/bin", "HOME": "/h", "LANG": "C", "LC_TIME": "fr", "TZ": "UTC",
                   "PYTHONPATH": "/src", "MINE": "1", "API_KEY": "user-chosen",
                   "TITAN_HOST": "10.0.0.1", "TITAN_PORT": "7000", "TITAN_TOKEN": "tok",
                   "TITAN_JOB_ID": "job-1", "TITAN_RUN_ID": "run-1", "TITAN_ATTEMPT": "3"}


def test_env_defaults_path_and_drops_unencodable_worker_values():
    env = build_env(TITAN, base={"HOME": "/h\udcff", "LANG": "C"})
    assert env["PATH"] and "HOME" not in env and env["LANG"] == "C"


@pytest.mark.parametrize("name,value", [("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "x\0")])
def test_invalid_job_env_is_refused_naming_the_job(name, value):
    with pytest.raises(UsageError, match="job 'job-1': env variable"):
        build_env(TITAN, {name: value}, base={})


@pytest.mark.parametrize("name,secret", [("TITAN_KEY_FILE", True), ("aws_secret", True),
                                         ("GH_TOKEN", True), ("DB_PASSWORD", True),
                                         ("PATH", False), ("KEYBOARD", True), ("HOME", False)])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_build_command_resolves_on_the_jobs_path(tmp_path):
    tool = tmp_path / "t"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    cmd = build_command(JobSpec(id="j", command=("t",), env={"PATH": str(tmp_path)}), TITAN,
                        base_env={"PATH": "/usr/bin"})
    assert cmd.argv == (str(tool),) and cmd.env["PATH"] == str(tmp_path)
