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

from dataclasses import dataclass, field

from .model import JobSpec, JobState, RunSpec

__all__ = [
    "Counters",
    "GateDecided",
    "JobReset",
    "JobRestored",
    "JobTransition",
    "JobsAdded",
    "JobsRestored",
    "Record",
    "RunRestored",
    "RunSubmitted",
    "RunsForgotten",
]


@dataclass(frozen=True, slots=True)
class RunSubmitted:
    """A run was accepted: its jobs exist, all PENDING until the transitions that follow.

    ``parents`` maps every parent id that is not a job of this run to the run it resolved to.
    ``from_run`` is the run the submitter named for parent resolution (its own, inside a job;
    "" when submitted from outside) and ``from_job`` the job of ``from_run`` that submitted it
    ("" unless a job did).
    """

    run_id: str
    spec: RunSpec
    at: float
    parents: dict[str, str]
    from_run: str = ""
    from_job: str = ""


@dataclass(frozen=True, slots=True)
class JobsAdded:
    """Jobs were added to an existing run (dynamic DAGs); ``parents`` as in RunSubmitted.

    ``from_job`` is the job of ``from_run`` that added them ("" when added from outside): each
    added job records it as its ``added_by``.
    """

    run_id: str
    jobs: tuple[JobSpec, ...]
    at: float
    parents: dict[str, str]
    from_run: str = ""
    from_job: str = ""


@dataclass(frozen=True, slots=True)
class JobTransition:
    """A job moved from ``prior`` to ``state`` at ``at``.

    ``attempt`` and ``epoch`` are the job's current attempt number and lease epoch after the
    move (a dispatch to RUNNING carries the new ones); ``worker`` the worker of its latest
    attempt ("" when it never ran); ``port`` and ``restarts`` a service's port and restart
    count as its worker reported them (0 for other jobs). ``not_before`` is set for a delayed
    PENDING job, a FAILED job waiting out its backoff and a WAITING gate (its deadline). A
    transition out of a state that holds a worker slot (RUNNING, or a service's) into one that
    is neither another such state nor COMPLETED/FAILED/DEAD (a cancel, a stop, a hand-back)
    tells the master which process to stop.
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
    port: int = 0
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class GateDecided:
    """Who decided a waiting gate, when, and with what comment (the JobTransition to APPROVED
    or REJECTED follows it). ``by`` names the person (their connection's identity and role)."""

    run_id: str
    job_id: str
    approved: bool
    by: str
    comment: str
    at: float


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


# -- snapshots (AOF compaction, see ``snapshot.py``) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Counters:
    """The counters that must never move backwards, even once the runs that set them are gone.

    ``last_run_id``: the newest run id ever issued ("" when none), so new run ids stay unique
    and sorted; ``epoch``: the highest lease epoch handed out; ``run_seq`` and ``job_seq``: the
    submission numbers the next run and the next job get. Applying it raises each counter to the
    record's value (a counter already past it stays where it is).
    """

    last_run_id: str
    epoch: int
    run_seq: int
    job_seq: int


@dataclass(frozen=True, slots=True)
class JobRestored:
    """One job exactly as it stands, inside RunRestored / JobsRestored (not a record alone).

    ``parents`` maps each parent id whose job is in another run to that run (the others are
    jobs of this run); ``forgotten`` lists the parents whose run was forgotten since (they are
    no longer linked to this job). ``seq`` is its global submission number, ``floor`` the
    attempts before its last manual retry, ``unmet`` how many parents hold it back and
    ``blocked`` a forgotten parent that never satisfied it; ``added_by`` the job that added it
    to its run ("" for the jobs of the submission, and for jobs added from outside); the other
    fields are those of JobTransition and of the job's view.
    """

    spec: JobSpec
    seq: int
    state: JobState
    attempt: int = 0
    floor: int = 0
    epoch: int = 0
    worker: str = ""
    not_before: float = 0.0
    exit_code: int | None = None
    reason: str = ""
    parents: dict[str, str] = field(default_factory=dict)
    forgotten: tuple[str, ...] = ()
    unmet: int = 0
    blocked: str = ""
    submitted_at: float = 0.0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    added_by: str = ""
    port: int = 0
    restarts: int = 0
    decided_by: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True)
class RunRestored:
    """A run exactly as it stands, with its first jobs (JobsRestored carries the rest of a big
    one). ``seq`` is its submission number: runs are restored in that order; ``from_run`` and
    ``from_job`` as in RunSubmitted."""

    run_id: str
    name: str
    seq: int
    submitted_at: float
    changed_at: float
    jobs: tuple[JobRestored, ...]
    agent_run_id: str = ""
    source: str = ""
    from_run: str = ""
    from_job: str = ""


@dataclass(frozen=True, slots=True)
class JobsRestored:
    """More jobs of a run that RunRestored restored, in their submission order."""

    run_id: str
    jobs: tuple[JobRestored, ...]


Record = (RunSubmitted | JobsAdded | JobTransition | JobReset | RunsForgotten | Counters
          | RunRestored | JobsRestored | GateDecided)
