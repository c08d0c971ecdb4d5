"""A root launcher whose jobs run as another user (``nobody``): the switch itself, what the job
sees, and that the launcher still kills, limits and cleans up after them.

Root only. The test process is not monkey-patched: the launcher client uses gevent's modules.
Nothing sleeps: exits arrive through the launcher, disappearances through psutil waits.
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import signal
import tempfile

import psutil
import pytest

from titan_actors.errors import LaunchError
from titan_actors.execution.launcher_client import Launcher
from titan_actors.execution.output import OutputCapture, Stream, finish

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")

NOBODY = pwd.getpwnam("nobody")
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@pytest.fixture
def cwd():
    """A working directory nobody may use (pytest's tmp_path is under a 0700 folder)."""
    path = tempfile.mkdtemp(prefix="titan-as-nobody-")
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def launcher():
    launcher = Launcher.start(user=(NOBODY.pw_uid, NOBODY.pw_gid),
                              warm_preload=("json",))  # asked for, and off for another user
    yield launcher
    launcher.close(grace=1, timeout=5)


def run(launcher: Launcher, key: str, argv: list[str], cwd: str, env=None,
        **options) -> tuple[int, bytes, bytes]:
    batches: list[tuple[Stream, bytes]] = []
    proc = launcher.launch(key, argv, ENV if env is None else env, cwd, **options)
    capture = OutputCapture(proc.stdout_fd, proc.stderr_fd,
                            lambda s, d: batches.append((s, d))).start()
    result = finish(proc, capture, timeout=10, drain_timeout=5)
    assert result is not None, f"{key} still running"
    out = b"".join(d for s, d in batches if s is Stream.STDOUT)
    err = b"".join(d for s, d in batches if s is Stream.STDERR)
    return result.code, out, err


def test_a_job_runs_as_nobody_with_no_other_group_and_its_cwd_as_home(launcher, cwd):
    code, out, err = run(launcher, "who", ["/bin/sh", "-c",
                         'id -u; id -g; grep "^Groups:" /proc/self/status; echo "$HOME"; pwd; '
                         'echo written > out.txt'], cwd)
    assert code == 0, err
    uid, gid, groups, home, here = out.decode().splitlines()
    assert (int(uid), int(gid)) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert groups.split(":")[1].strip() == ""  # root's supplementary groups are gone
    assert home == cwd == here
    with open(os.path.join(cwd, "out.txt")) as f:  # the launcher's user reads what it wrote
        assert f.read() == "written\n"


def test_a_job_given_a_home_keeps_it_and_the_signals_are_its_own(launcher, cwd):
    code, out, _ = run(launcher, "home", ["/bin/sh", "-c", 'echo "$HOME"; kill -INT $$'], cwd,
                       env={**ENV, "HOME": "/tmp"})
    assert out == b"/tmp\n" and code == -signal.SIGINT  # SIGINT: not ignored as in the launcher


def test_what_nobody_cannot_do_is_refused_as_a_spawn_error(launcher, cwd):
    with pytest.raises(LaunchError, match="cannot enter the working directory '/root': "
                                          "permission denied"):
        launcher.launch("home", ["/usr/bin/id"], ENV, "/root")
    secret = os.path.join(cwd, "..", os.path.basename(cwd) + "-tool")
    shutil.copy("/usr/bin/id", secret)
    os.chmod(secret, 0o700)  # root's own program
    try:
        with pytest.raises(LaunchError, match="permission denied"):
            launcher.launch("tool", [secret], ENV, cwd)
    finally:
        os.unlink(secret)
    with pytest.raises(LaunchError, match="no such file or directory"):
        launcher.launch("missing", ["/no/such/program"], ENV, cwd)
    code, out, _ = run(launcher, "after", ["id", "-u"], cwd)  # bare name: the launcher's PATH
    assert code == 0 and int(out) == NOBODY.pw_uid


def test_a_python_job_asked_warm_is_spawned_as_nobody(launcher, cwd):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 for nobody to run (the venv's is under /root here)")
    code, out, err = run(launcher, "py", [python, "-u", "-c", "import os; print(os.getuid())"],
                         cwd, warm=True)
    assert code == 0, err
    assert int(out) == NOBODY.pw_uid


def test_kills_limits_and_cleanup_reach_nobodys_processes(launcher, cwd):
    proc = launcher.launch("stay", ["/bin/sh", "-c", "exec tail -f /dev/null"], ENV, cwd,
                           rlimits={resource.RLIMIT_NOFILE: 64})
    assert psutil.Process(proc.pid).uids().real == NOBODY.pw_uid
    with open(f"/proc/{proc.pid}/limits") as f:  # (prlimit needs CAP_SYS_RESOURCE: not here)
        files = next(line for line in f if line.startswith("Max open files"))
    assert files.split()[3:5] == ["64", "64"]
    launcher.kill("stay", grace=0, sig=signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    code, out, _ = run(launcher, "leaves", ["/bin/sh", "-c",
                       "tail -f /dev/null </dev/null >/dev/null 2>&1 & echo $!"], cwd)
    assert code == 0
    try:  # left running by the job: the launcher terminates it
        left = [psutil.Process(int(out))]
    except psutil.NoSuchProcess:
        left = []
    _, alive = psutil.wait_procs(left, timeout=10)
    assert not alive
