"""What a job leaves running is killed when its main process exits; the registry's records.

Real processes through a real launcher (with a registry, as a worker runs it). A job that
double-forks a daemon (``support/daemons.py``) leaves it in a session of its own, re-parented to
the launcher; the launcher finds it by its marker. Nothing sleeps: waits are on results, on
AsyncResults and on ``wait_until`` over /proc, each with a timeout.
"""

from __future__ import annotations

import os
import re
import signal

import psutil
import pytest

from support import wait_until
from support.daemons import Daemon, daemon_argv
from titan_actors.errors import LauncherBrokenError
from titan_actors.execution import orphans
from titan_actors.execution.launcher_client import Launcher
from titan_actors.execution.output import OutputCapture, finish

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
GRACE = 0.3


@pytest.fixture
def registry(tmp_path):
    return orphans.ChildRegistry(tmp_path)


@pytest.fixture
def launcher(registry):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    launcher = Launcher.start(registry=registry)
    yield launcher
    ours = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    launcher.close(grace=1, timeout=5)
    _, alive = psutil.wait_procs(ours, timeout=5)
    assert not alive, f"left running: {alive}"


class Job:
    def __init__(self, launcher: Launcher, key: str, argv: list[str]) -> None:
        self.out: list[bytes] = []
        self.proc = launcher.launch(key, argv, ENV, "/tmp", cleanup_grace=GRACE)
        self.capture = OutputCapture(self.proc.stdout_fd, self.proc.stderr_fd,
                                     lambda _stream, data: self.out.append(data)).start()

    @property
    def output(self) -> bytes:
        return b"".join(self.out)

    def daemon(self) -> Daemon:
        return wait_until(lambda: Daemon.find(self.output), timeout=10,
                          what="the job to name its daemon")

    def finish(self):
        result = finish(self.proc, self.capture, timeout=10, drain_timeout=5)
        assert result is not None and result.output_complete, self.output
        return result


def _wait_dead(*daemons: Daemon) -> None:
    wait_until(lambda: not any(d.alive() for d in daemons), timeout=10,
               what=f"{daemons} to be killed")


def _wait_forgotten(registry: orphans.ChildRegistry, tmp_path) -> None:
    wait_until(lambda: not registry.records, timeout=10, what="the records to be forgotten")
    assert orphans.read_records(tmp_path) == []


def test_a_double_forked_daemon_is_killed_when_the_job_exits(launcher, registry, tmp_path):
    job = Job(launcher, "dbl", daemon_argv())
    daemon = job.daemon()
    assert job.finish().code == 0
    _wait_dead(daemon)
    assert job.proc.left_running == 1
    assert re.fullmatch(rb"\n\[titan: killed 1 process the job left running: %d \(python"
                        rb"[^)]*\)\]\n" % daemon.pid, job.proc.leftover_note())
    _wait_forgotten(registry, tmp_path)


def test_a_daemon_ignoring_sigterm_and_holding_the_pipe_is_killed_after_the_grace(
        launcher, registry, tmp_path):
    job = Job(launcher, "stubborn", daemon_argv(ignore_term=True, detach=False))
    daemon = job.daemon()
    assert job.finish().code == 0  # output ends once the SIGKILL closed the daemon's copy
    _wait_dead(daemon)  # its pipe closes a moment before it is gone
    assert job.proc.left_running == 1
    _wait_forgotten(registry, tmp_path)  # after CleanupDone


def test_what_a_running_job_started_is_left_alone_until_its_own_exit(launcher, registry):
    # a service's helpers live as long as the service: cleanup follows its main process
    service = Job(launcher, "service", daemon_argv(then="signal.pause()"))
    helper = service.daemon()
    other = Job(launcher, "other", daemon_argv())
    other_daemon = other.daemon()
    assert other.finish().code == 0
    _wait_dead(other_daemon)
    assert helper.alive()
    wait_until(lambda: len(registry.records) == 1, timeout=10, what="other's CleanupDone")
    [record] = registry.records
    assert (record.key, record.pid, record.marker) == ("service", service.proc.pid,
                                                      service.proc.marker)
    launcher.kill("service", grace=0)
    assert service.finish().code == -signal.SIGTERM
    _wait_dead(helper)
    assert service.proc.left_running == 1


def test_a_launcher_that_dies_alone_has_its_jobs_daemons_killed_by_the_worker_side(
        launcher, registry, tmp_path):
    job = Job(launcher, "orphaned", daemon_argv(then="signal.pause()"))
    daemon = job.daemon()
    os.kill(launcher.pid, signal.SIGKILL)
    with pytest.raises(LauncherBrokenError):
        job.proc.wait(10)
    _wait_dead(daemon)  # by its marker: it had left the job's group
    _wait_forgotten(registry, tmp_path)
    job.capture.close()
