"""What the scaler reads from the scheduler: the queued demand per lane and the slots taken.

Read-only: nothing here changes the scheduler. A lane is a routing class (``routing.lane_of``):
``("tag", T)`` for the jobs any worker tagged ``T`` can take, ``("pin", W)`` for the jobs pinned
to worker ``W``, which only that worker can take (so they count for it alone).
"""

from __future__ import annotations

from .engine import Scheduler
from .routing import Lane

__all__ = ["queued_demand", "slots_taken"]


def queued_demand(scheduler: Scheduler) -> dict[Lane, int]:
    """How many QUEUED jobs wait in each lane (gates never queue: they hold no slot)."""
    return dict(scheduler._state.ready.counts())


def slots_taken(scheduler: Scheduler, worker: str) -> int:
    """The slots ``worker`` has taken as the scheduler counts them (running attempts and
    services): the same count routing compares with the worker's slots."""
    return scheduler._state.load(worker)
