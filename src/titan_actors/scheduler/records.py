"""The scheduler's persisted events: every change of its state is one of these records.

The scheduler's decision methods compute records, apply them and return them; the master appends
them to its AOF and publishes them; on restart it applies every replayed record to a fresh
:class:`~titan_actors.scheduler.Scheduler` and gets the same state. So a record carries every
value that was decided (a retry's not-before time with its jitter, a dispatch's attempt, lease
epoch and worker), never something that applying it would have to recompute.

Field types are the wire codec's (str, int, float, bool, tuples, dicts, enums, nested frozen
dataclasses, ``T | None``), so the master can carry records inside its own messages. Times are
wall-clock epoch seconds; ``0.0`` and ``""`` mean "none".
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import JobSpec, JobState, RunSpec

__all__ = [
    "JobReset",
    "JobTransition",
    "JobsAdded",
    "Record",
    "RunSubmitted",
    "RunsForgotten",
]


@dataclass(frozen=True, slots=True)
class RunSubmitted:
    """A run was accepted: its jobs exist, all PENDING until the transitions that follow.

    ``parents`` maps every parent id that is not a job of this run to the run it resolved to.
    ``from_run`` is the run of the job that submitted it ("" when submitted from outside).
    """

    run_id: str
    spec: RunSpec
    at: float
    parents: dict[str, str]
    from_run: str = ""


@dataclass(frozen=True, slots=True)
class JobsAdded:
    """Jobs were added to an existing run (dynamic DAGs); ``parents`` as in RunSubmitted."""

    run_id: str
    jobs: tuple[JobSpec, ...]
    at: float
    parents: dict[str, str]
    from_run: str = ""


@dataclass(frozen=True, slots=True)
class JobTransition:
    """A job moved from ``prior`` to ``state`` at ``at``.

    ``attempt`` and ``epoch`` are the job's current attempt number and lease epoch after the
    move (a dispatch to RUNNING carries the new ones); ``worker`` the worker of its latest
    attempt ("" when it never ran). ``not_before`` is set for a delayed PENDING job and for a
    FAILED job waiting out its backoff. A transition out of RUNNING into a state that is not
    COMPLETED/FAILED/DEAD (a cancel, a hand-back) tells the master which process to stop.
    """

    run_id: str
    job_id: str
    state: JobState
    prior: JobState
    at: float
    attempt: int
    epoch: int
    worker: str = ""
    not_before: float = 0.0
    exit_code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class JobReset:
    """A manual retry put a finished job back to PENDING with fresh attempts (its attempt
    numbers keep counting up, so reports about its old attempts stay stale)."""

    run_id: str
    job_id: str
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunsForgotten:
    """Retention dropped these finished runs and all their jobs."""

    run_ids: tuple[str, ...]
    at: float = 0.0


Record = RunSubmitted | JobsAdded | JobTransition | JobReset | RunsForgotten
