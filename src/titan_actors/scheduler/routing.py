"""Routing: which live worker takes a ready job.

Rules, in order:

1. A job pinned to a worker (``JobSpec.worker``) goes only to the worker of that name; the pin
   is the more specific request, so the requirement tag is not checked against it.
2. Otherwise a worker can take a job when the job's requirement is one of its tags (exact
   match: a worker tagged only ``GPU`` takes no ``GENERAL`` job).
3. Among the capable workers with a free slot, a job with ``affinity`` goes to the worker that
   ran one of its parents (the first such parent, in the order the parents are listed).
4. Otherwise the least-loaded one (fewest running jobs), ties broken by name.

Workers are live state (the master tracks liveness), not persisted: a restarted master learns
them again as they re-register.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .model import JobSpec

__all__ = ["Lane", "WorkerInfo", "Workers", "choose", "has_free_slot", "lane_of"]

# ("tag", requirement) or ("pin", worker name): the jobs that the same workers can take
Lane = tuple[str, str]
Load = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker: its name, its capability tags and how many jobs it may run at once."""

    name: str
    tags: frozenset[str]
    slots: int


def lane_of(spec: JobSpec) -> Lane:
    """The lane of the ready queue that ``spec`` waits in."""
    return ("pin", spec.worker) if spec.worker else ("tag", spec.requirement)


class Workers:
    """The live workers, by name.

    The dispatcher asks for them, by name and by lane, after every change, while workers come
    and go rarely: the answers are kept until a worker is set or removed.
    """

    __slots__ = ("_by_name", "_capable", "_sorted")

    def __init__(self) -> None:
        self._by_name: dict[str, WorkerInfo] = {}
        self._sorted: tuple[WorkerInfo, ...] | None = None
        self._capable: dict[Lane, tuple[WorkerInfo, ...]] = {}

    def set(self, name: str, tags: Iterable[str], slots: int) -> WorkerInfo:
        """Add or update worker ``name``. Raises ValueError for an empty name or negative slots."""
        if not name:
            raise ValueError("a worker needs a name")
        if slots < 0:
            raise ValueError(f"worker {name!r}: slots must be 0 or more, got {slots}")
        info = WorkerInfo(name, frozenset(tags), slots)
        self._by_name[name] = info
        self._sorted, self._capable = None, {}
        return info

    def remove(self, name: str) -> None:
        """Forget worker ``name`` (nothing happens when it is unknown)."""
        if self._by_name.pop(name, None) is not None:
            self._sorted, self._capable = None, {}

    def get(self, name: str) -> WorkerInfo | None:
        return self._by_name.get(name)

    def all(self) -> tuple[WorkerInfo, ...]:
        """Every live worker, by name."""
        if self._sorted is None:
            self._sorted = tuple(sorted(self._by_name.values(), key=lambda w: w.name))
        return self._sorted

    def capable(self, lane: Lane) -> tuple[WorkerInfo, ...]:
        """The live workers that can take the jobs of ``lane``, by name."""
        found = self._capable.get(lane)
        if found is None:
            kind, value = lane
            if kind == "pin":
                info = self._by_name.get(value)
                found = (info,) if info is not None else ()
            else:
                found = tuple(w for w in self.all() if value in w.tags)
            self._capable[lane] = found
        return found

    def waiting_reason(self, lane: Lane, load: Load) -> str:
        """Why a QUEUED job of ``lane`` is not running yet."""
        kind, value = lane
        capable = self.capable(lane)
        if kind == "pin" and not capable:
            return f"pinned worker {value} is not connected"
        if not capable:
            return f"no worker with tag {value}"
        if not any(has_free_slot(w, load) for w in capable):
            if kind == "pin":
                return f"pinned worker {value} is busy"
            return "all capable workers busy"
        return "ready, waiting for dispatch"


def has_free_slot(worker: WorkerInfo, load: Load) -> bool:
    return load(worker.name) < worker.slots


def choose(capable: Sequence[WorkerInfo], load: Load,
           preferred: Iterable[str] = ()) -> str | None:
    """The worker (name) that takes a job, or None when no capable worker has a free slot.

    ``preferred``: for an affinity job, the workers that ran its parents, best first.
    """
    best: tuple[int, str] | None = None
    free: set[str] = set()
    for worker in capable:
        running = load(worker.name)
        if running < worker.slots:
            free.add(worker.name)
            if best is None or (running, worker.name) < best:
                best = (running, worker.name)
    if best is None:
        return None
    for name in preferred:
        if name in free:
            return name
    return best[1]
