"""Messages clients send to the master, and its answers (type ids 100-199).

Clients are the CLI, the SDK, the console and MCP (role client or admin) and jobs (role job,
scoped to their run). Every read returns plain data for display or ``--json``; waiting follows
the master's event stream with a long-poll (``WaitEvents``) instead of polling.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ...scheduler.model import JobKind, JobSpec, JobState, RunSpec, RunState
from ..registry import Message, message
from ..roles import Capability

_Q = Capability.QUERY
_S = Capability.SUBMIT


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job of one run, as shown to users. ``added_by``: the job of this run that added it
    while running ("" for the jobs of the submission and for jobs added from outside)."""

    run_id: str
    job_id: str
    state: JobState
    status: str                # the Titan vocabulary: PENDING, RUNNING, COMPLETED, DEAD, CANCELLED
    attempt: int
    max_attempts: int
    worker: str
    priority: int
    requirement: str
    parents: tuple[str, ...]
    reason: str                # why it waits, or why it failed
    exit_code: int | None
    created_at: float
    started_at: float
    finished_at: float
    added_by: str = ""
    kind: JobKind = JobKind.RUN
    port: int = 0              # a service's port (0 until its worker reports one)
    restarts: int = 0          # a service's restarts in its current attempt
    message: str = ""          # a gate's question
    deadline: float = 0.0      # a waiting gate's deadline (epoch seconds)
    decided_by: str = ""       # a decided gate: who decided, and their comment
    comment: str = ""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run: its name, state and job counts by state. ``from_run`` / ``from_job``: the job
    that submitted it ("" when it was submitted from outside; ``from_run`` alone when a client
    named a run for parent resolution)."""

    run_id: str
    name: str
    state: RunState
    agent_run_id: str
    created_at: float
    finished_at: float
    counts: dict[str, int] = field(default_factory=dict)
    from_run: str = ""
    from_job: str = ""


@dataclass(frozen=True, slots=True)
class AgentRunSummary:
    """The runs that share one agent run id (an agent's session), oldest first.

    ``state``: ACTIVE while any run is; else FAILED if any run failed, CANCELLED if any was
    cancelled, COMPLETED otherwise. ``finished_at``: when the last run finished (0 while
    active). ``counts``: the jobs of all its runs by state.
    """

    agent_run_id: str
    runs: tuple[str, ...]
    names: tuple[str, ...]
    state: RunState
    created_at: float
    finished_at: float
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker the master knows."""

    name: str
    tags: tuple[str, ...]
    slots: int
    running: int
    host: str
    pid: int
    connected: bool
    seen_ago: float
    ephemeral: bool
    draining: bool
    burst_of: str = ""         # a burst worker: the worker that started it
    idle_for: float = 0.0      # seconds without a job, as the scaler saw it (0: busy)
    scaling: str = ""          # the scaler's latest decision about this worker


class EventKind(enum.IntEnum):
    JOB = 1
    RUN = 2
    WORKER = 3
    LOG = 4


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the master's event stream; ``seq`` grows by one per event."""

    seq: int
    at: float
    kind: EventKind
    run_id: str = ""
    job_id: str = ""
    job_state: JobState | None = None
    run_state: RunState | None = None
    attempt: int = 0
    worker: str = ""
    detail: str = ""


@message(100, requires=_S)
class SubmitRun(Message):
    """Submit a DAG as a new run. ``from_run``: the submitting job's run (parent resolution);
    ``from_job``: the submitting job, recorded on the run (a job's token overrides both; a
    client in a cluster without a key can only claim them)."""

    RUN_SCOPE = "from_run"
    spec: RunSpec
    from_run: str = ""
    from_job: str = ""


@message(101)
class RunAccepted(Message):
    """A submission was kept; its events follow ``last_seq`` in the event stream."""

    run_id: str
    name: str
    job_ids: tuple[str, ...]
    last_seq: int = 0


@message(102, requires=Capability.EXTEND_OWN_RUN)
class AddJobs(Message):
    """Add jobs to an existing run (a job may extend only its own run). ``from_job``: the
    adding job of that run, recorded as the new jobs' ``added_by`` (as in SubmitRun)."""

    RUN_SCOPE = "run_id"
    run_id: str
    jobs: tuple[JobSpec, ...]
    from_job: str = ""


@message(103, requires=_Q)
class GetRun(Message):
    """A run by id (or "latest"), with its jobs (``jobs=False``: without them, for a caller that
    needs only the run's state: a 100,000-job run's jobs take more than a frame)."""

    run_ref: str
    jobs: bool = True


@message(104)
class RunDetail(Message):
    """A run and its jobs, as of event ``last_seq`` (follow the stream from there)."""

    run: RunSummary
    jobs: tuple[JobInfo, ...]
    last_seq: int


@message(105, requires=_Q)
class ListRuns(Message):
    """The newest ``limit`` runs, newest first; ``agent_run_id``: only that agent run's."""

    limit: int = 50
    agent_run_id: str = ""


@message(106)
class RunList(Message):
    runs: tuple[RunSummary, ...]


@message(107, requires=_Q)
class GetJob(Message):
    """A job by reference: "RUN/JOB", "JOB" or "DAG-JOB" (a bare id means its latest run)."""

    job_ref: str


@message(108)
class JobDetail(Message):
    job: JobInfo
    command: tuple[str, ...]
    script_name: str
    args: tuple[str, ...]
    history: tuple[Event, ...]


@message(109, requires=_Q)
class GetLogs(Message):
    """A job's output from byte ``offset``, at most ``limit`` bytes."""

    job_ref: str
    offset: int = 0
    limit: int = 1 << 20


@message(110)
class LogChunk(Message):
    run_id: str
    job_id: str
    data: bytes
    offset: int
    next_offset: int
    finished: bool      # the job is terminal: no more output will come
    truncated: bool     # the log reached its cap; the rest was dropped
    last_seq: int       # the event stream's position when this was read


@message(111, requires=_Q)
class WaitEvents(Message):
    """Return the events after ``after_seq`` as soon as there is one, or empty after ``timeout``.

    ``run_id`` filters to one run. A client that fell behind the retained window gets
    ``reset=True`` and should re-read the state it shows.
    """

    after_seq: int
    timeout: float
    run_id: str = ""


@message(112)
class EventBatch(Message):
    events: tuple[Event, ...]
    last_seq: int
    reset: bool = False


@message(113, requires=_S)
class Cancel(Message):
    """Cancel a job (its descendants too) or, given a run id, the whole run."""

    ref: str


@message(114, requires=_S)
class Retry(Message):
    """Run a dead, cancelled or skipped job again (its skipped descendants too)."""

    ref: str


@message(115, requires=_Q)
class ListWorkers(Message):
    pass


@message(116)
class WorkerList(Message):
    workers: tuple[WorkerInfo, ...]


@message(117, requires=Capability.CLUSTER_CONTROL)
class Prune(Message):
    """Drop finished runs older than ``older_than`` seconds, keeping the newest ``keep``."""

    older_than: float
    keep: int


@message(118)
class Done(Message):
    """A plain acknowledgement with a sentence for the user."""

    text: str


@message(119, requires=_Q)
class ListAgentRuns(Message):
    """The newest ``limit`` agent runs (runs grouped by agent run id), newest first.

    A job sees only the agent run of its own run."""

    limit: int = 50


@message(120)
class AgentRunList(Message):
    agent_runs: tuple[AgentRunSummary, ...]


@message(126, requires=_Q)
class GetRunSpec(Message):
    """The spec to submit a run again (a re-run), by run id (or "latest"): its name, agent run
    id and jobs as submitted, without the gates ``hitl_message`` made and the jobs its jobs
    added while running (submitting it makes those again). A job sees only its own run."""

    run_ref: str


@message(127)
class RunSpecReply(Message):
    """``run_id``: the run the spec is from (what "latest" named)."""

    run_id: str
    spec: RunSpec
