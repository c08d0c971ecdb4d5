"""The workers the master knows: their connection, tags, slots and liveness."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..actors.base import Ref
from ..wire.messages.master import WorkerInfo
from ..wire.messages.worker import AttemptRef


class AttemptSet(set):
    """The attempts a worker runs; ``added`` counts every attempt ever put in, so that the
    scaler tells a worker that worked between two of its looks from one that stayed idle."""

    __slots__ = ("added",)

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.added = 0

    def add(self, ref: AttemptRef) -> None:
        if ref not in self:
            self.added += 1
        super().add(ref)


@dataclass
class WorkerEntry:
    """One worker, connected or not (kept until its lease ran out).

    ``burst_of``: a burst worker names the worker that started it. ``idle_since`` (this
    master's monotonic clock) and ``scaling`` (its latest decision about the worker) come from
    the scaler, for display.
    """

    name: str
    tags: frozenset[str]
    slots: int
    host: str
    pid: int
    ephemeral: bool
    ref: Ref | None
    last_seen: float
    draining: bool = False
    running: AttemptSet = field(default_factory=AttemptSet)
    burst_of: str = ""
    idle_since: float | None = None
    scaling: str = ""

    @property
    def connected(self) -> bool:
        return self.ref is not None and self.ref.is_alive

    def info(self, now: float) -> WorkerInfo:
        idle = 0.0 if self.idle_since is None or self.running else now - self.idle_since
        return WorkerInfo(self.name, tuple(sorted(self.tags)), self.slots, len(self.running),
                          self.host, self.pid, self.connected, max(now - self.last_seen, 0.0),
                          self.ephemeral, self.draining, self.burst_of, max(idle, 0.0),
                          self.scaling)


class WorkerRegistry:
    """Name -> entry; liveness is ``now - last_seen > lease`` on the monotonic clock."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self._workers: dict[str, WorkerEntry] = {}

    def __iter__(self):
        return iter(list(self._workers.values()))

    def get(self, name: str) -> WorkerEntry | None:
        return self._workers.get(name)

    def register(self, entry: WorkerEntry) -> WorkerEntry | None:
        """Add or replace a worker; returns the entry it replaced (an older connection)."""
        old = self._workers.get(entry.name)
        self._workers[entry.name] = entry
        return old

    def by_ref(self, ref: Ref) -> WorkerEntry | None:
        for entry in self._workers.values():
            if entry.ref is ref:
                return entry
        return None

    def expired(self, now: float) -> list[WorkerEntry]:
        """Workers whose lease ran out (silent for longer than ``lease`` seconds)."""
        return [w for w in self._workers.values() if now - w.last_seen > self.lease]

    def remove(self, name: str) -> WorkerEntry | None:
        return self._workers.pop(name, None)
