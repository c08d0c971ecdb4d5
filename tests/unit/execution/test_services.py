"""Services on a worker, the pure parts and the helpers: the restart policy (plain numbers, no
time), the port, readiness by connection and by health command (a fake launcher)."""

from __future__ import annotations

import random
import signal
import socket

import pytest

from titan_actors.errors import LaunchError, UsageError
from titan_actors.execution.services import (
    PortInUseError,
    Restart,
    RestartPolicy,
    RestartTracker,
    check_health,
    choose_port,
    describe_exit,
    free_port,
    port_accepts,
    port_in_use,
    seconds,
)

POLICY = RestartPolicy(base=1.0, cap=30.0, jitter=0.0, healthy_after=60.0)


def test_the_backoff_starts_at_base_doubles_and_is_capped():
    tracker = RestartTracker(POLICY, -1, random.Random(1))
    delays = [tracker.exited(ran_for=0.5).delay for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert tracker.restarts == 8 and tracker.exits == 8


def test_a_healthy_run_resets_the_backoff_but_not_the_count():
    tracker = RestartTracker(POLICY, -1, random.Random(1))
    assert [tracker.exited(1.0) for _ in range(3)] == [Restart(1, 1.0), Restart(2, 2.0),
                                                       Restart(3, 4.0)]
    assert tracker.exited(ran_for=60.0) == Restart(4, 1.0)  # it ran long enough: healthy
    assert tracker.exited(ran_for=59.9) == Restart(5, 2.0)


def test_jitter_takes_at_most_its_share_off_and_comes_from_the_injected_random():
    policy = RestartPolicy(base=1.0, cap=8.0, jitter=0.2)
    first = [RestartTracker(policy, -1, random.Random(7)).exited(0).delay for _ in range(3)]
    assert len(set(first)) == 1  # the same seed, the same delays
    tracker = RestartTracker(policy, -1, random.Random(3))
    for streak in range(6):
        delay = tracker.exited(0).delay
        full = min(8.0, 2.0 ** streak)
        assert 0.8 * full <= delay <= full


def test_max_restarts_ends_the_service_at_the_next_exit():
    tracker = RestartTracker(POLICY, 2, random.Random())
    assert tracker.exited(0) == Restart(1, 1.0)
    assert tracker.exited(0) == Restart(2, 2.0)
    assert tracker.exited(0) is None
    assert tracker.gave_up("exit code 1") == \
        "exit code 1; exited 3 times; max_restarts 2 reached"
    never = RestartTracker(POLICY, 0, random.Random())
    assert never.exited(100.0) is None and never.restarts == 0
    assert never.gave_up("killed by SIGKILL") == \
        "killed by SIGKILL; exited once; max_restarts 0 reached"


def test_a_policy_refuses_nonsense():
    for bad in (dict(base=0), dict(base=2, cap=1), dict(jitter=1.0), dict(healthy_after=-1)):
        with pytest.raises(UsageError):
            RestartPolicy(**bad)


def test_exits_and_delays_read_well():
    assert describe_exit(0) == "exit code 0" and describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGTERM) == "killed by SIGTERM"
    assert describe_exit(-99) == "killed by signal 99"
    assert [seconds(d) for d in (0.05, 0.1, 0.125, 1.0, 2.0, 12.5)] == \
        ["0.05", "0.1", "0.12", "1.0", "2.0", "12.5"]


# -- the port ------------------------------------------------------------------------------------

def test_a_requested_port_is_used_when_free_and_refused_when_taken():
    port = free_port()
    assert not port_in_use(port)
    assert choose_port(port, "w1") == port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert port_in_use(port)
        with pytest.raises(PortInUseError, match=f"port {port} is already in use on w1"):
            choose_port(port, "w1")
    assert not port_in_use(port)


def test_no_port_requested_picks_a_free_one():
    port = choose_port(0, "w1")
    assert 0 < port < 65536 and not port_in_use(port)


def test_a_port_that_cannot_be_bound_says_so():
    with pytest.raises(UsageError, match="port 70000 cannot be used on w1"):
        choose_port(70000, "w1")


# -- readiness -----------------------------------------------------------------------------------

def test_readiness_by_connection():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_accepts(port, timeout=1.0)
    assert not port_accepts(port, timeout=1.0)


class FakeProcess:
    def __init__(self, code: int | None) -> None:
        self.code = code
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None) -> int | None:
        self.timeouts.append(timeout)
        return self.code


class FakeLauncher:
    """Launch's and kill's signatures of ``Launcher``; the process ends with ``code`` (None:
    still running when waited for), or the launch fails with ``error``."""

    def __init__(self, code: int | None = 0, error: Exception | None = None) -> None:
        self.code, self.error = code, error
        self.launched: list[tuple] = []
        self.killed: list[tuple] = []
        self.process: FakeProcess | None = None

    def launch(self, key, argv, env, cwd, *, capture=True, **_options):
        if self.error is not None:
            raise self.error
        self.launched.append((key, list(argv), dict(env), cwd, capture))
        self.process = FakeProcess(self.code)
        return self.process

    def kill(self, key, grace=5.0, sig=signal.SIGTERM):
        self.killed.append((key, grace, sig))


def test_a_health_command_that_exits_0_means_ready():
    launcher = FakeLauncher(0)
    env = {"PATH": "/usr/bin:/bin", "PORT": "8123"}
    assert check_health(launcher, "r/api/1/1/health/1", ("sh", "-c", "true"), env, "/tmp", 2.0)
    [(key, argv, seen_env, cwd, capture)] = launcher.launched
    assert key == "r/api/1/1/health/1" and argv[0].endswith("/sh") and argv[1:] == ["-c", "true"]
    assert seen_env == env and cwd == "/tmp" and capture is False
    assert launcher.process.timeouts == [2.0] and not launcher.killed


def test_a_failing_or_hanging_or_missing_health_command_is_not_ready():
    assert not check_health(FakeLauncher(1), "k", ("/bin/false",), {}, "/", 1.0)
    hanging = FakeLauncher(None)
    assert not check_health(hanging, "k", ("/bin/sleep", "9"), {}, "/", 0.5)
    assert hanging.killed == [("k", 0.0, signal.SIGKILL)]  # not left running
    missing = FakeLauncher(error=LaunchError("no such file: /nowhere", 2))
    assert not check_health(missing, "k", ("/nowhere",), {}, "/", 1.0)
