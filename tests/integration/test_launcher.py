"""Real processes through a real launcher: spawn, output, env, cwd, kill trees, crashes, orphans.

The test process is not monkey-patched: the client uses gevent's modules explicitly. Nothing
sleeps to wait: results come from AsyncResults, events, and ``wait_until`` on psutil.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap

import gevent
import psutil
import pytest
from gevent.event import Event

from support import wait_until
from titan_actors.errors import LauncherBrokenError, LauncherClosedError, LaunchError
from titan_actors.execution import orphans, workspace
from titan_actors.execution.command import TitanEnv, build_command
from titan_actors.execution.launcher_client import Launcher
from titan_actors.execution.output import TRUNCATION_MARKER, OutputCapture, Stream, finish
from titan_actors.scheduler.model import JobSpec
from titan_actors.wire import codec
from titan_actors.wire.frame import FrameReader
from titan_actors.wire.messages.launcher import LauncherReady, LaunchSpawn, SpawnSucceeded

PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}


@pytest.fixture
def launcher():
    launcher = Launcher.start()
    yield launcher
    launcher.close(grace=1, timeout=5)


class Job:
    """A launched process with its output collected."""

    def __init__(self, launcher: Launcher, key: str, argv, *, env=None, cwd="/tmp",
                 on_line: bytes | None = None, **capture_options):
        self.batches: list[tuple[Stream, bytes]] = []
        self.seen = Event()
        self._on_line = on_line
        self.proc = launcher.launch(key, list(argv), ENV if env is None else env, cwd)
        self.capture = OutputCapture(self.proc.stdout_fd, self.proc.stderr_fd, self._batch,
                                     **capture_options).start()

    def _batch(self, stream: Stream, data: bytes) -> None:
        self.batches.append((stream, data))
        if self._on_line is not None and self._on_line in self.stdout:
            self.seen.set()

    @property
    def stdout(self) -> bytes:
        return b"".join(d for s, d in self.batches if s is Stream.STDOUT)

    @property
    def stderr(self) -> bytes:
        return b"".join(d for s, d in self.batches if s is Stream.STDERR)

    def finish(self, timeout: float = 10):
        result = finish(self.proc, self.capture, timeout=timeout, drain_timeout=5)
        assert result is not None, f"{self.proc} still running after {timeout} s"
        return result


def _python(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def _gone(*pids: int) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def _wait_gone(*pids: int, timeout: float = 5.0) -> None:
    wait_until(lambda: _gone(*pids), timeout=timeout, what=f"processes {pids} to go")


# -- spawning and output -----------------------------------------------------------------------

def test_output_and_exit_code(launcher):
    job = Job(launcher, "a", _python("""
        import sys
        print("hello")
        sys.stderr.write("oops")
        sys.exit(7)"""))
    result = job.finish()
    assert (result.code, job.stdout, job.stderr) == (7, b"hello\n", b"oops")
    assert result.output_complete and not result.truncated
    assert job.proc.pid > 0 and launcher.running == {}


def test_a_signal_is_reported_as_a_negative_code(launcher):
    job = Job(launcher, "sig", _python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"))
    assert job.finish().code == -signal.SIGTERM


def test_missing_executable_and_permission_denied(launcher, tmp_path):
    with pytest.raises(LaunchError, match="no such file") as info:
        launcher.launch("m", [str(tmp_path / "nope")], ENV, "/tmp")
    assert info.value.errno == errno.ENOENT
    plain = tmp_path / "plain.sh"
    plain.write_text("echo hi\n")
    with pytest.raises(LaunchError, match="permission denied"):
        launcher.launch("p", [str(plain)], ENV, "/tmp")
    with pytest.raises(LaunchError, match="working directory"):
        launcher.launch("c", ["/bin/true"], ENV, str(tmp_path / "missing"))
    with pytest.raises(LaunchError, match="no such file"):
        launcher.launch("bare", ["surely-not-a-command-xyz"], ENV, "/tmp")
    # the failed launches left nothing behind: the same keys start fine
    assert Job(launcher, "m", ["/bin/true"]).finish().code == 0


def test_env_is_the_allowlist_plus_the_job_and_never_a_secret(launcher, tmp_path):
    base = {"PATH": ENV["PATH"], "LC_ALL": "C.UTF-8", "HOME": "/home/x", "FOO": "not allowed",
            "TITAN_KEY_FILE": "/secret/key", "AWS_SECRET_ACCESS_KEY": "s", "GITHUB_TOKEN": "t",
            "TITAN_TOKEN": "the worker's own"}
    spec = JobSpec(id="envjob", command=(PY, "-c", "import os, json; "
                                         "print(json.dumps(dict(os.environ)))"),
                   env={"MINE": "1", "TITAN_JOB_ID": "spoofed"})
    titan = TitanEnv("master.example", 7777, "job-token", "envjob", "run-1", 2)
    cmd = build_command(spec, titan, base_env=base)
    job = Job(launcher, "env", cmd.argv, env=cmd.env)
    assert job.finish().code == 0
    seen = json.loads(job.stdout)
    seen.pop("LC_CTYPE", None)  # Python may set it for itself
    # the launcher's own: unique per launch, to find what the job leaves running
    assert seen.pop("TITAN_ATTEMPT_MARKER") == job.proc.marker
    assert job.proc.marker.startswith("env/") and len(job.proc.marker) == len("env/") + 16
    assert seen == {"PATH": ENV["PATH"], "LC_ALL": "C.UTF-8", "HOME": "/home/x", "MINE": "1",
                    "TITAN_HOST": "master.example", "TITAN_PORT": "7777",
                    "TITAN_TOKEN": "job-token", "TITAN_JOB_ID": "envjob",
                    "TITAN_RUN_ID": "run-1", "TITAN_ATTEMPT": "2"}


def test_cwd_is_the_runs_workspace_and_scripts_run_from_it(launcher, tmp_path):
    run = workspace.prepare_run(tmp_path, "run-1")
    script = workspace.write_script(tmp_path, "run-1", "j1", 1, "job.py",
                                    b"import os\nopen('made-by-j1', 'w').write('x')\n"
                                    b"print(os.getcwd())\n")
    spec = JobSpec(id="j1", script_name="job.py", script=b"...")
    cmd = build_command(spec, TitanEnv("h", 1, "t", "j1", "run-1", 1), str(script),
                        base_env=ENV)
    job = Job(launcher, "cwd", cmd.argv, env=cmd.env, cwd=str(run))
    assert job.finish().code == 0
    assert job.stdout.decode().strip() == str(run)
    assert (run / "made-by-j1").read_text() == "x"


def test_large_output_arrives_whole_in_order_in_bounded_batches(launcher):
    job = Job(launcher, "big", _python("""
        import sys
        out = sys.stdout.buffer
        for i in range(100_000):
            out.write(b"%07d:" % i + b"x" * 41 + b"\\n")
        sys.stderr.buffer.write(b"e" * 300_000)"""))
    result = job.finish()
    expected = b"".join(b"%07d:" % i + b"x" * 41 + b"\n" for i in range(100_000))
    assert len(expected) == 5_000_000
    assert job.stdout == expected and job.stderr == b"e" * 300_000
    assert all(len(d) <= 64 * 1024 for _, d in job.batches)
    assert result.captured_bytes == 5_300_000 and result.output_complete


def test_output_over_the_cap_is_cut_with_one_marker(launcher):
    job = Job(launcher, "cap", _python("""
        import sys
        sys.stdout.buffer.write(b"y" * 1_000_000)"""), cap_bytes=100_000)
    result = job.finish()
    assert job.stdout == b"y" * 100_000 + TRUNCATION_MARKER
    assert result.truncated and result.dropped_bytes == 900_000 and result.code == 0


def test_invalid_utf8_survives_as_bytes(launcher):
    raw = b"\xff\xfe\x00ok\x80\xc3(\n"
    job = Job(launcher, "bytes", _python(f"import sys; sys.stdout.buffer.write({raw!r})"))
    job.finish()
    assert job.stdout == raw


def test_concurrent_launches(launcher):
    def one(i: int) -> tuple[int, bytes]:
        job = Job(launcher, f"c{i}", _python(f"print({i}); raise SystemExit({i % 5})"))
        return job.finish().code, job.stdout

    greenlets = [gevent.spawn(one, i) for i in range(12)]
    gevent.joinall(greenlets, timeout=20, raise_error=True)
    assert [g.value for g in greenlets] == [(i % 5, b"%d\n" % i) for i in range(12)]


def test_duplicate_key_and_rlimits(launcher):
    job = Job(launcher, "dup", _python("import sys; sys.stdin.read()"))  # stdin: /dev/null
    assert job.finish().code == 0
    proc = launcher.launch("lim", _python("""
        import resource
        print(resource.getrlimit(resource.RLIMIT_NOFILE))"""), ENV, "/tmp",
        rlimits={resource.RLIMIT_NOFILE: 64})
    capture = OutputCapture(proc.stdout_fd, proc.stderr_fd, lambda s, d: out.append(d)).start()
    out: list[bytes] = []
    with pytest.raises(LaunchError, match="already running"):
        launcher.launch("lim", ["/bin/true"], ENV, "/tmp")
    assert finish(proc, capture, timeout=10).code == 0
    assert b"".join(out) == b"(64, 64)\n"


# -- killing ------------------------------------------------------------------------------------

_TREE = """
    import subprocess, sys, signal
    {ignore}
    child = subprocess.Popen(["sleep", "60"])
    print(child.pid, flush=True)
    child.wait()
"""


def _tree(launcher, key: str, ignore_term: bool = False) -> tuple[Job, int]:
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_term else ""
    job = Job(launcher, key, _python(_TREE.format(ignore=ignore)), on_line=b"\n")
    assert job.seen.wait(10), "the tree did not start"
    return job, int(job.stdout.split()[0])


def test_kill_takes_the_whole_tree(launcher):
    job, grandchild = _tree(launcher, "tree")
    launcher.kill("tree", grace=5)
    assert job.finish().code == -signal.SIGTERM
    _wait_gone(job.proc.pid, grandchild)
    # the grandchild was told with its group: not something the job left running
    assert job.proc.left_running == 0 and job.proc.leftover_note() == b""


def test_kill_escalates_to_sigkill_after_the_grace(launcher):
    job, grandchild = _tree(launcher, "stubborn", ignore_term=True)
    launcher.kill("stubborn", grace=0.2)
    assert job.finish().code == -signal.SIGKILL
    _wait_gone(job.proc.pid, grandchild)


def test_leftovers_of_an_exited_job_are_killed_so_output_completes(launcher):
    job = Job(launcher, "bg", ["/bin/sh", "-c", "sleep 60 & echo $!"])
    result = job.finish(timeout=10)
    assert result.code == 0 and result.output_complete
    _wait_gone(int(job.stdout))
    [left] = job.proc.left_names  # "PID (sleep)", or "PID (sh)" when caught before its exec
    assert job.proc.left_running == 1 and left.startswith(f"{int(job.stdout)} (")


# -- the launcher going away ---------------------------------------------------------------------

def test_close_terminates_running_jobs(launcher):
    job, grandchild = _tree(launcher, "running")
    launcher.close(grace=2)
    assert job.proc.wait(5) == -signal.SIGTERM
    _wait_gone(job.proc.pid, grandchild, launcher.pid)
    with pytest.raises(LauncherClosedError):
        launcher.launch("after", ["/bin/true"], ENV, "/tmp")


def test_a_dead_launcher_fails_waits_and_its_jobs_are_killed(launcher):
    job, grandchild = _tree(launcher, "orphaned")
    os.kill(launcher.pid, signal.SIGKILL)
    with pytest.raises(LauncherBrokenError):
        job.proc.wait(10)
    _wait_gone(job.proc.pid, grandchild)
    with pytest.raises(LauncherBrokenError):
        launcher.launch("after", ["/bin/true"], ENV, "/tmp")


_WORKER = """
    import sys
    from titan_actors.execution.launcher_client import Launcher
    launcher = Launcher.start()
    proc = launcher.launch("job", [sys.executable, "-c", "import signal; signal.pause()"],
                           {}, "/", capture=False)
    print(launcher.pid, proc.pid, flush=True)
    sys.stdin.read()  # until the test kills us
"""


def test_the_launcher_kills_its_jobs_and_exits_when_the_worker_dies():
    worker = subprocess.Popen(_python(_WORKER), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        launcher_pid, job_pid = map(int, worker.stdout.readline().split())
        assert not _gone(launcher_pid, job_pid)
        worker.kill()
        worker.wait(10)
        _wait_gone(launcher_pid, job_pid)
    finally:
        worker.kill()
        worker.wait(10)
        worker.stdin.close()
        worker.stdout.close()


# -- orphans of a previous life --------------------------------------------------------------------

def test_kill_orphans_after_a_simulated_crash(tmp_path):
    tree = subprocess.Popen(_python(_TREE.format(ignore="")), stdout=subprocess.PIPE,
                            start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        grandchild = int(tree.stdout.readline())
        registry = orphans.ChildRegistry(tmp_path)
        registry.add(tree.pid, key="tree")
        registry.add(other.pid, key="other")
        del registry  # the worker "crashes": its registry is forgotten, the file stays
        # a record whose pid now belongs to another process (another start time) is left alone
        first, second = orphans.read_records(tmp_path)
        second = dataclasses.replace(second, create_time=second.create_time - 100)
        (tmp_path / orphans.FILE_NAME).write_text(first.to_line() + second.to_line())
        killed = orphans.kill_orphans(tmp_path)
        assert [r.key for r in killed] == ["tree"]
        assert tree.wait(10) == -signal.SIGKILL
        _wait_gone(grandchild)
        assert other.poll() is None
        assert orphans.read_records(tmp_path) == []
    finally:
        for p in (tree, other):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        tree.stdout.close()


def test_kill_orphans_finds_a_group_whose_leader_is_gone(tmp_path):
    leader = subprocess.Popen(["/bin/sh", "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE,
                              start_new_session=True)
    registry = orphans.ChildRegistry(tmp_path)
    registry.add(leader.pid, key="leader")
    grandchild = int(leader.stdout.readline())
    leader.stdout.close()
    assert leader.wait(10) == 0
    assert [r.key for r in orphans.kill_orphans(tmp_path)] == ["leader"]
    _wait_gone(grandchild)


def test_garbage_from_the_worker_makes_the_launcher_kill_its_jobs_and_exit():
    ours, theirs = socket.socketpair()
    launcher = subprocess.Popen([PY, "-m", "titan_actors.execution.launcher",
                                 str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                                stderr=subprocess.PIPE)
    theirs.close()
    try:
        ours.settimeout(10)
        reader = FrameReader()

        def receive():
            while True:
                frames = reader.feed(ours.recv(65536))
                if frames:
                    return [codec.decode_frame_message(f) for f in frames]

        assert isinstance(receive()[0], LauncherReady)
        ours.sendall(codec.encode_frame(LaunchSpawn("s", ["sleep", "60"], {}, "/", {}, 0)))
        [spawned] = receive()
        assert isinstance(spawned, SpawnSucceeded)
        ours.sendall(b"not a frame at all")
        assert launcher.wait(10) == 0
        assert b"not speaking the Titan protocol" in launcher.stderr.read()
        _wait_gone(spawned.pid)
    finally:
        launcher.kill()
        launcher.wait(10)
        launcher.stderr.close()
        ours.close()


def test_leftovers_kept_on_request_are_killed_at_close(launcher, tmp_path):
    proc = launcher.launch("keep", ["/bin/sh", "-c", "sleep 60 & echo $! > bg.pid"], ENV,
                           str(tmp_path), capture=False, kill_group_on_exit=False)
    assert proc.wait(10) == 0
    background = int((tmp_path / "bg.pid").read_text())
    assert not _gone(background)
    launcher.close(grace=1)
    _wait_gone(background)


def test_a_job_outside_its_own_session_is_signalled_alone(launcher):
    proc = launcher.launch("same", ["sleep", "60"], ENV, "/tmp", capture=False,
                           new_session=False)
    assert os.getpgid(proc.pid) == os.getpgid(launcher.pid)
    launcher.kill("same", grace=0)
    assert proc.wait(10) == -signal.SIGTERM and not _gone(launcher.pid)


_PATCHED_WORKER = """
    from gevent import monkey
    monkey.patch_all()
    import sys
    from titan_actors.execution.launcher_client import Launcher
    from titan_actors.execution.output import OutputCapture, finish
    launcher = Launcher.start()
    out = []
    for i in range(20):
        proc = launcher.launch(f"k{i}", [sys.executable, "-c", f"print({i})"], {}, "/")
        capture = OutputCapture(proc.stdout_fd, proc.stderr_fd,
                                lambda s, d: out.append(d)).start()
        assert finish(proc, capture, timeout=20).code == 0
    launcher.close()
    print(b"".join(out).split() == [b"%d" % i for i in range(20)])
"""


def test_a_monkey_patched_worker_spawns_through_the_launcher():
    run = subprocess.run(_python(_PATCHED_WORKER), capture_output=True, timeout=60)
    assert run.stdout == b"True\n", run.stderr.decode()


def test_a_launch_interrupted_mid_send_leaves_the_stream_whole(launcher):
    big_env = {f"V{i}": "x" * 100_000 for i in range(40)}  # 4 MB: more than a socket buffer
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.0005):
        launcher.launch("torn", ["/bin/true"], big_env, "/tmp")
    assert Job(launcher, "after", _python("print('fine')")).finish().code == 0
    assert launcher.running == {}
