"""The scheduler: pure logic, no I/O. DAG validation, the job state machine, the ready queue and
routing, driven by the master and event-sourced through records (see ``engine.py``)."""

from .backoff import Backoff
from .dag import Plan, check_jobs
from .engine import Assignment, Scheduler
from .model import (
    DEFAULT_REQUIREMENT,
    SATISFYING_STATES,
    TERMINAL_STATES,
    JobKind,
    JobSpec,
    JobState,
    RunSpec,
    RunState,
)
from .records import (
    Counters,
    JobReset,
    JobRestored,
    JobsAdded,
    JobsRestored,
    JobTransition,
    Record,
    RunRestored,
    RunsForgotten,
    RunSubmitted,
)
from .routing import WorkerInfo
from .views import CompatStatus, JobView, RunView, compat_status

__all__ = [
    "DEFAULT_REQUIREMENT",
    "SATISFYING_STATES",
    "TERMINAL_STATES",
    "Assignment",
    "Backoff",
    "CompatStatus",
    "Counters",
    "JobKind",
    "JobReset",
    "JobRestored",
    "JobSpec",
    "JobState",
    "JobTransition",
    "JobView",
    "JobsAdded",
    "JobsRestored",
    "Plan",
    "Record",
    "RunRestored",
    "RunSpec",
    "RunState",
    "RunSubmitted",
    "RunView",
    "RunsForgotten",
    "Scheduler",
    "WorkerInfo",
    "check_jobs",
    "compat_status",
]
