"""Services on a worker: the restart policy, the port, and readiness (DESIGN.md, "Processes,
workspaces, services, scaling").

Pure where it can be: :class:`RestartPolicy` and :class:`RestartTracker` work on plain numbers
(the caller says how long the process ran; the random source is injected), so the backoff is
tested without time. The port helpers bind real sockets; the readiness checks wait on gevent
(``gevent.socket``, a launcher process), so they never block the event loop, patched or not.

The policy: after an exit the service is started again after a delay that starts at ``base``
seconds and doubles with each exit in a row, up to ``cap``; ``jitter`` takes up to that share
off each delay at random (so that services which crashed together do not restart in step). A
process that ran at least ``healthy_after`` seconds was healthy: the next delay starts at
``base`` again. The restarts of one attempt are counted; once ``max_restarts`` of them were
done (-1: no limit), the next exit is the end.
"""

from __future__ import annotations

import errno
import logging
import random
import shutil
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gevent import socket as gsocket

from titan_actors.errors import TitanError, UsageError

__all__ = [
    "PortInUseError",
    "Restart",
    "RestartPolicy",
    "RestartTracker",
    "check_health",
    "choose_port",
    "describe_exit",
    "free_port",
    "port_accepts",
    "port_in_use",
    "seconds",
]

_log = logging.getLogger("titan.worker")
_MAX_DOUBLINGS = 64  # 2 ** 64 * base is past any cap: stop doubling, never overflow


class PortInUseError(UsageError):
    """The port a service asked for (``JobSpec.port``) is taken on the worker it was sent to."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a service is restarted (see the module docstring). Times are seconds."""

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.1         # the share of a delay that may be taken off at random
    healthy_after: float = 60.0  # a process that ran this long resets the backoff

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base and 0 <= self.jitter < 1
                and self.healthy_after >= 0):
            raise UsageError(f"a service restart policy needs base > 0, cap >= base, "
                             f"0 <= jitter < 1 and healthy_after >= 0; got {self}")

    def delay(self, streak: int, rng: random.Random) -> float:
        """The delay before a restart after ``streak`` earlier exits in a row (0: the first)."""
        raw = min(self.cap, self.base * 2.0 ** min(streak, _MAX_DOUBLINGS))
        return raw * (1.0 - self.jitter * rng.random()) if self.jitter else raw


@dataclass(frozen=True, slots=True)
class Restart:
    """A decision to restart: it will be restart number ``number`` of the attempt, after
    ``delay`` seconds."""

    number: int
    delay: float


class RestartTracker:
    """The restarts of one attempt of one service.

    Args:
        policy: the backoff.
        max_restarts: restarts allowed (-1: no limit; 0: the first exit is the end).
        rng: the random source of the jitter.
    """

    def __init__(self, policy: RestartPolicy, max_restarts: int, rng: random.Random) -> None:
        self.policy = policy
        self.max_restarts = max_restarts
        self._rng = rng
        self.restarts = 0   # restarts decided so far
        self.exits = 0      # exits seen so far
        self._streak = 0    # exits in a row without a healthy run between them

    @property
    def limited(self) -> bool:
        return self.max_restarts >= 0

    def exited(self, ran_for: float) -> Restart | None:
        """The process exited after running ``ran_for`` seconds: the next restart, or None
        when ``max_restarts`` restarts were done already (the service ends)."""
        self.exits += 1
        if ran_for >= self.policy.healthy_after:
            self._streak = 0
        if self.limited and self.restarts >= self.max_restarts:
            return None
        delay = self.policy.delay(self._streak, self._rng)
        self._streak += 1
        self.restarts += 1
        return Restart(self.restarts, delay)

    def gave_up(self, last_exit: str) -> str:
        """Why the service ended, once :meth:`exited` said None."""
        times = "once" if self.exits == 1 else f"{self.exits} times"
        return f"{last_exit}; exited {times}; max_restarts {self.max_restarts} reached"


def describe_exit(code: int) -> str:
    """``exit code 1``, or ``killed by SIGKILL`` for a negative (signal) code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def seconds(value: float) -> str:
    """A delay for people: ``2.0``, ``12.5``, ``0.05``."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


# -- the port ------------------------------------------------------------------------------------

def port_in_use(port: int, host: str = "") -> bool:
    """Whether binding ``port`` on ``host`` ("": every IPv4 interface) fails because it is in
    use. SO_REUSEADDR is set, as servers do, so a port whose last connections linger in
    TIME_WAIT counts as free. Other bind errors (no permission for a port below 1024) raise
    OSError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def free_port(host: str = "") -> int:
    """A port that is free now on ``host`` ("": every IPv4 interface), picked by the OS. Nothing
    holds it once this returns: another process may take it first (rare; the service then
    fails to bind and is restarted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def choose_port(requested: int, where: str) -> int:
    """``requested`` when it is free on this host, else (for 0) a free port picked by the OS.

    Raises PortInUseError ("port 8123 is already in use on <where>") when ``requested`` is
    taken, UsageError when it cannot be bound for another reason (out of range, no permission).
    """
    if not requested:
        return free_port()
    try:
        taken = port_in_use(requested)
    except (OSError, OverflowError) as error:
        raise UsageError(f"port {requested} cannot be used on {where}: {error}") from error
    if taken:
        raise PortInUseError(f"port {requested} is already in use on {where}")
    return requested


# -- readiness -----------------------------------------------------------------------------------

def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds (the
    connection is closed at once). Waits on gevent, never blocks the loop."""
    try:
        conn = gsocket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False
    conn.close()
    return True


def check_health(launcher, key: str, argv: Sequence[str], env: Mapping[str, str], cwd: str,
                 timeout: float) -> bool:
    """Run the health command ``argv`` through ``launcher`` (a ``Launcher``) as ``key``, with
    the service's ``env`` and ``cwd`` and no output; True when it exits 0 within ``timeout``
    seconds. A command still running then is killed (its whole group) and counts as a failure,
    as does one that cannot be started (the reason is logged). Call it from a greenlet: it
    waits for the command."""
    program = argv[0]
    if "/" not in program:  # the service's PATH decides, as for the service itself
        program = shutil.which(program, path=env.get("PATH")) or program
    try:
        process = launcher.launch(key, [program, *argv[1:]], env, cwd, capture=False)
    except TitanError as error:
        _log.warning("the health command of %s could not start: %s", key, error)
        return False
    try:
        code = process.wait(timeout)
    except TitanError:  # the launcher went away: the worker notices it elsewhere
        return False
    if code is None:
        try:
            launcher.kill(key, 0.0, signal.SIGKILL)
        except TitanError:
            pass
        return False
    return code == 0
