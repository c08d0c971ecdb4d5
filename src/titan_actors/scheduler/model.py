"""The domain model shared by the scheduler, the master, the worker, the pipeline loader and the
wire: what a job is, what a run is, and the states they go through. Pure data, no I/O.

These dataclasses travel on the wire inline inside messages (``wire/messages/master.py``), so
their field types are the codec's: str, int, float, bool, bytes, tuples, dicts, enums.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class JobKind(enum.StrEnum):
    """What a job is: a process to completion, a long-running service, or a human gate."""

    RUN = "run"
    SERVICE = "service"
    GATE = "gate"


class JobState(enum.StrEnum):
    """Every state a job can be in (DESIGN.md, "Jobs, DAGs and their states")."""

    PENDING = "pending"        # waiting on parents or a delay
    QUEUED = "queued"          # ready, waiting for a worker
    RUNNING = "running"        # dispatched (attempt n, lease epoch e)
    COMPLETED = "completed"
    FAILED = "failed"          # an attempt failed; queued again after backoff while attempts remain
    DEAD = "dead"              # no attempts left
    CANCELLED = "cancelled"
    SKIPPED = "skipped"        # an upstream job died, was skipped, or its gate said no
    WAITING = "waiting"        # gate: parents done, waiting for a decision
    APPROVED = "approved"      # gate: = completed
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    STARTING = "starting"      # service: started, not ready yet
    READY = "ready"            # service: ready (= satisfies children)
    RESTARTING = "restarting"
    STOPPED = "stopped"        # service: stopped on request


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED,
                             JobState.SKIPPED, JobState.APPROVED, JobState.REJECTED,
                             JobState.TIMED_OUT, JobState.STOPPED})
# states that let a child go ahead
SATISFYING_STATES = frozenset({JobState.COMPLETED, JobState.APPROVED, JobState.READY})
# states of a job that holds a worker slot: a dispatched attempt, a service's life
ON_WORKER_STATES = frozenset({JobState.RUNNING, JobState.STARTING, JobState.READY,
                              JobState.RESTARTING})
# the states a service's worker reports while it supervises the process
SERVICE_STATES = frozenset({JobState.STARTING, JobState.READY, JobState.RESTARTING})


class RunState(enum.StrEnum):
    """A run's state, derived from its jobs."""

    ACTIVE = "active"          # some job is not terminal
    COMPLETED = "completed"    # every job completed (or approved)
    FAILED = "failed"          # every job terminal, some dead, skipped, rejected or timed out
    CANCELLED = "cancelled"    # every job terminal, some cancelled, none failed
    SERVING = "serving"        # every job terminal but services that are ready (they run on)


DEFAULT_REQUIREMENT = "GENERAL"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job as submitted, already validated field by field.

    A job runs either a script (``script_name`` picks the interpreter by suffix: ``.py`` with the
    worker's Python, ``.sh`` with bash, anything else executed directly; ``script`` is its
    content, carried to whichever worker runs it) or a ``command`` argv. ``args`` are already
    split like a shell would, without a shell. Times are seconds; ``timeout`` 0 means none;
    ``retries`` are extra attempts after the first.

    A service (``kind`` SERVICE) runs until stopped: its worker gives it ``port`` (or a free
    one), calls it ready when the port accepts connections (or ``health`` exits 0), restarts
    it with backoff when it exits, at most ``max_restarts`` times. A gate (``kind`` GATE) runs
    nothing: it waits ``max_wait_seconds`` for a person's decision. ``hitl_message`` on a job
    puts a gate ``hitl-gate-<id>`` right after it (its children wait for the gate instead).

    An archive job (``archive``: the name of an uploaded project archive) runs the entry
    ``script_name`` (a relative path inside the archive) from inside the unpacked project. A
    library job (``library``: a script of the master's script library) runs that script. For
    both, the master pins the stored file's content with ``file_digest`` when it accepts the
    job, and the worker fetches it by that digest: a later upload of the same name never
    changes a submitted job, and the script's bytes are not copied into every job.
    """

    id: str
    kind: JobKind = JobKind.RUN
    script_name: str = ""
    script: bytes = b""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    priority: int = 1
    delay: float = 0.0
    requirement: str = DEFAULT_REQUIREMENT
    affinity: bool = False
    worker: str = ""
    retries: int = 3
    timeout: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0                      # services: the port (0: the worker picks a free one)
    message: str = ""                  # gates: the question asked
    max_wait_seconds: float = 172800.0  # gates: the decision deadline (48 h)
    archive: str = ""                  # an uploaded project archive the job runs inside
    file_digest: str = ""              # its (or the library script's) SHA-256, pinned at submit
    library: str = ""                  # a script of the master's script library
    hitl_message: str = ""             # a gate right after this job (hitl-gate-<id>)
    max_restarts: int = -1             # services: restarts before it is dead (-1: no limit)
    health: tuple[str, ...] = ()       # services: a command whose success means ready
    limits: dict[str, int] = field(default_factory=dict)  # execution/limits.py: name -> value


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A submission: a named DAG of jobs. ``source`` names where it came from (for errors)."""

    name: str
    jobs: tuple[JobSpec, ...]
    agent_run_id: str = ""
    source: str = ""
