"""Messages between a worker and the master (type ids 200-279).

A worker dials the master, registers (reporting what it still runs and what finished while the
master was away), heartbeats, streams job output on the bulk lane, and reports each exit with an
ask that the master answers only once the completion is durable. The master dispatches and kills
attempts down the same connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...scheduler.model import JobSpec, JobState
from ..registry import Lane, Message, message
from ..roles import Capability

_W = Capability.REGISTER_WORKER
_D = Capability.DISPATCH


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """One attempt of one job: the unit of dispatch, of output and of completion."""

    run_id: str
    job_id: str
    attempt: int
    epoch: int


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How an attempt ended: exit code (negative: killed by that signal) and why.

    ``output_bytes`` counts the output the worker sent as JobOutput: the report travels on the
    control lane and may overtake the last output batches, so the master waits for that many
    bytes before it calls the log complete.
    """

    ref: AttemptRef
    exit_code: int
    reason: str
    finished_at: float
    output_bytes: int = 0


@message(200, requires=_W)
class RegisterWorker(Message):
    """A worker (re)connects. ``running`` and ``finished`` re-attach work across restarts."""

    name: str
    tags: tuple[str, ...]
    slots: int
    host: str
    pid: int
    running: tuple[AttemptRef, ...]
    finished: tuple[AttemptResult, ...]
    ephemeral: bool = False
    burst_of: str = ""  # a burst worker names the worker that started it
    # attempts a previous life of this worker started and never reported: they may have run
    lost: tuple[AttemptRef, ...] = ()


@message(201)
class Registered(Message):
    """The master's answer: the timing the worker must keep."""

    master: str
    heartbeat_interval: float
    lease: float


@message(202, requires=_W)
class Heartbeat(Message):
    """I am alive, and this is what I run."""

    running: tuple[AttemptRef, ...]
    draining: bool = False


@message(203, requires=_W)
class JobStarted(Message):
    """The attempt's process started."""

    ref: AttemptRef
    pid: int


@message(204, requires=_W, lane=Lane.BULK)
class JobOutput(Message):
    """A batch of an attempt's output (stream 1 = stdout, 2 = stderr)."""

    ref: AttemptRef
    stream: int
    data: bytes


@message(205, requires=_W)
class JobFinished(Message):
    """The attempt ended. Answered once recorded; the worker keeps it until then."""

    result: AttemptResult


@message(206, requires=_W)
class HandBack(Message):
    """A draining worker returns an attempt it did not finish (not a failed attempt)."""

    ref: AttemptRef


@message(210, requires=_D)
class Dispatch(Message):
    """Run this attempt. ``token`` authenticates the job's own calls to the master."""

    ref: AttemptRef
    spec: JobSpec
    token: str
    master_host: str
    master_port: int


@message(211, requires=_D)
class KillAttempt(Message):
    """Kill this attempt's whole process tree (cancel, timeout, or a service's stop: it is
    then not restarted)."""

    ref: AttemptRef
    reason: str


@message(220, requires=_W)
class ServiceState(Message):
    """A service's worker reports where it is: STARTING (its process started), READY (its
    port accepts connections, or its health command succeeded), RESTARTING (it exited and
    starts again after ``reason``'s backoff); with its port and how often it restarted in this
    attempt. Its end (stopped, or out of restarts) is a JobFinished like any attempt's."""

    ref: AttemptRef
    state: JobState
    port: int
    restarts: int
    reason: str = ""
