"""Who jobs run as: the ``job_user`` setting, its resolution on a host, the job's variables."""

from __future__ import annotations

import os
import pwd

import pytest

from titan_actors.config import SETTINGS
from titan_actors.errors import ConfigError
from titan_actors.execution.job_user import (
    JobUser,
    closed_to,
    parse_job_user,
    resolve,
    user_env,
)

NOBODY = pwd.getpwnam("nobody")


def test_the_setting_is_declared_with_auto_by_default():
    setting = SETTINGS["job_user"]
    assert (setting.env, setting.flag, setting.default) == ("TITAN_JOB_USER", "--job-user",
                                                             "auto")


@pytest.mark.parametrize("text, value", [("auto", "auto"), (" nobody ", "nobody"),
                                         ("0", "0"), ("007", "7"), ("svc.titan-1", "svc.titan-1"),
                                         ("machine$", "machine$")])
def test_parse_accepts_auto_names_and_uids(text, value):
    assert parse_job_user(text) == value


@pytest.mark.parametrize("text", ["", "a b", "x:y", "/etc", "-rf", "4294967295"])
def test_parse_refuses_what_names_no_user_and_says_what_would_do(text):
    with pytest.raises(ConfigError) as error:
        parse_job_user(text)
    assert "uid" in str(error.value)


def test_auto_is_nobody_for_root_and_the_worker_itself_otherwise():
    assert resolve("auto", euid=0) == JobUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid, "")
    assert resolve("auto", euid=1000) is None


def test_the_worker_own_user_needs_no_switch():
    assert resolve("root", euid=0) is None
    assert resolve("0", euid=0) is None
    assert resolve(str(NOBODY.pw_uid), euid=NOBODY.pw_uid) is None
    assert resolve("nobody", euid=NOBODY.pw_uid) is None


def test_a_uid_with_an_entry_is_that_user_with_its_group_and_a_home_only_when_it_exists():
    nobody = resolve(str(NOBODY.pw_uid), euid=0)
    assert (nobody.name, nobody.uid, nobody.gid) == ("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert nobody.home == (NOBODY.pw_dir if os.path.isdir(NOBODY.pw_dir) else "")


def test_a_bare_uid_without_an_entry_gets_the_group_of_its_number():
    free = next(uid for uid in range(54321, 60000) if not _exists(uid))
    assert resolve(str(free), euid=0) == JobUser(str(free), free, free, "")


def test_an_unknown_name_is_refused_with_what_to_do():
    with pytest.raises(ConfigError) as error:
        resolve("no-such-titan-user", euid=0)
    message = str(error.value)
    assert "no-such-titan-user" in message and "no such user" in message
    assert "useradd" in message and "auto" in message


@pytest.mark.parametrize("setting", ["nobody", "root"])
def test_only_root_may_run_jobs_as_someone_else(setting):
    with pytest.raises(ConfigError) as error:
        resolve(setting, euid=1000)
    assert "only when the worker runs as root" in str(error.value)
    assert "uid 1000" in str(error.value)


def test_user_env_names_the_job_user_and_its_home_or_leaves_home_to_the_launcher():
    base = {"PATH": "/usr/bin", "HOME": "/root", "USER": "root", "LOGNAME": "root"}
    assert user_env(base, None) == base
    homeless = user_env(base, JobUser("nobody", 65534, 65534, ""))
    assert homeless == {"PATH": "/usr/bin", "USER": "nobody", "LOGNAME": "nobody"}
    housed = user_env(base, JobUser("svc", 999, 999, "/srv/svc"))
    assert housed["HOME"] == "/srv/svc" and housed["USER"] == "svc"
    assert base["USER"] == "root"  # the base is left as it was


def test_closed_to_names_what_keeps_a_user_from_a_program(tmp_path):
    nobody = JobUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert closed_to("/bin/sh", nobody) == ""
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "tool"
    program.write_text("#!/bin/sh\n")
    for path in (*reversed(tmp_path.parents), tmp_path):  # the first closed one, from /
        if path.stat().st_mode & 0o001 == 0:  # pytest's 0700 folder, say
            assert closed_to(str(program), nobody) == str(path)
            break
    own = JobUser("me", os.geteuid(), os.getegid())
    program.chmod(0o644)
    assert closed_to(str(program), own) == str(program)  # not executable, even by its owner
    program.chmod(0o700)
    assert closed_to(str(program), own) == ""
    link = tmp_path / "link"
    link.symlink_to(program)
    assert closed_to(str(link), own) == ""  # the link's target is what runs
    assert closed_to(str(tmp_path / "missing"), own) == str(tmp_path / "missing")


def _exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
