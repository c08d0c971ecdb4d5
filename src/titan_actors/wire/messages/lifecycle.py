"""Clients and the master about gates and services (type ids 121-129).

Deciding a gate needs Capability.DECIDE_GATES (clients and admins: never a worker, never a
job). Stopping a service is a submitter's right (Capability.SUBMIT; a job only within its own
run).
"""

from __future__ import annotations

from ..registry import Message, message
from ..roles import Capability
from .master import JobInfo

__all__ = ["DecideGate", "JobList", "ListGates", "ListServices", "StopService"]


@message(121, requires=Capability.DECIDE_GATES)
class DecideGate(Message):
    """Approve or reject a waiting gate: ``ref`` is ``RUN/GATE``, ``GATE`` or ``DAG-GATE`` (a
    bare id: its latest run). Answered with the master's ``Done`` once the decision is
    durable; a gate that is not waiting is refused, saying why."""

    ref: str
    approve: bool
    comment: str = ""


@message(122, requires=Capability.QUERY)
class ListGates(Message):
    """The waiting gates, oldest first (``all``: decided and timed-out ones too)."""

    all: bool = False


@message(123)
class JobList(Message):
    jobs: tuple[JobInfo, ...]


@message(124, requires=Capability.SUBMIT)
class StopService(Message):
    """Stop a service (``RUN/JOB``, ``JOB`` or ``DAG-JOB``); it is not restarted."""

    ref: str


@message(125, requires=Capability.QUERY)
class ListServices(Message):
    """The services that have not finished (``all``: the finished ones too), newest first."""

    all: bool = False
