"""The scaler's policy: when to start a burst worker, and when to retire an idle one.

Pure: no I/O, no gevent, no clock. The scaler actor (``actors/scaler.py``) looks at the master's
workers and queued demand every interval and calls :meth:`Scaling.step` with them and its own
monotonic ``now``; the master carries out the decisions. Tests pass plain values.

Rules:

* **Spawn.** A lane ``("tag", T)`` has queued jobs, every connected, non-draining worker tagged
  ``T`` has all its slots taken, and the queued jobs outnumber the slots of the burst workers
  already being started for ``T``. The worker asked to spawn is one of those saturated workers
  that was started by hand (a burst worker never spawns), on a host with fewer than
  ``max_per_host`` burst workers (registered or being started), no spawn in flight (one at a
  time per host, until the burst registers or ``spawn_timeout`` passes) and none within
  ``cooldown``. At most one spawn per host per step; the host with the fewest burst workers
  first, then the worker's name. The burst gets the parent's tags and slots and the name
  ``<parent>-burst-<n>`` (the lowest ``n`` not in use). Jobs pinned to a worker
  (``("pin", W)``) never cause a burst: only ``W`` can run them, so they count for ``W`` alone.
* **Idle.** A worker is idle while it takes no slot and got no new attempt since the previous
  look (its ``activity`` counter did not change), so a short job between two looks counts as
  work. It has been idle since the first look at which it was.
* **Retire.** A burst or ephemeral worker, connected and not draining, idle for
  ``idle_timeout``. Permanent workers (started by hand without ``--ephemeral``) never are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..scheduler.routing import Lane

__all__ = ["Decisions", "Retire", "Scaling", "ScalingPolicy", "Spawn", "WorkerLoad"]


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """The scaler's settings. ``max_per_host`` 0 disables bursting (retiring goes on)."""

    max_per_host: int = 4
    idle_timeout: float = 45.0
    cooldown: float = 2.0
    spawn_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One worker as the master knows it. ``taken``: slots taken (running attempts and
    services); ``activity``: attempts ever given to it (a change between two looks means it
    worked in between)."""

    name: str
    host: str
    tags: frozenset[str]
    slots: int
    taken: int = 0
    activity: int = 0
    connected: bool = True
    draining: bool = False
    ephemeral: bool = False
    burst_of: str = ""

    @property
    def kind(self) -> str:
        """``burst``, ``ephemeral`` or ``permanent``."""
        return "burst" if self.burst_of else "ephemeral" if self.ephemeral else "permanent"

    @property
    def retirable(self) -> bool:
        return bool(self.burst_of) or self.ephemeral

    @property
    def available(self) -> bool:
        """Takes new work: connected and not draining."""
        return self.connected and not self.draining


@dataclass(frozen=True, slots=True)
class Spawn:
    """Ask ``parent`` (on ``host``) to start the burst worker ``name``."""

    parent: str
    name: str
    host: str
    reason: str


@dataclass(frozen=True, slots=True)
class Retire:
    """Tell the idle worker ``name`` to drain and exit."""

    name: str
    idle_for: float
    reason: str


@dataclass(frozen=True, slots=True)
class Decisions:
    """The outcome of one step. ``arrived``: spawns in flight whose worker registered;
    ``abandoned``: spawns whose worker did not register within the spawn timeout; ``idle``:
    seconds each idle worker has been idle (busy workers are absent)."""

    spawns: tuple[Spawn, ...] = ()
    retires: tuple[Retire, ...] = ()
    arrived: tuple[str, ...] = ()
    abandoned: tuple[str, ...] = ()
    idle: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _InFlight:
    name: str
    parent: str
    host: str
    tags: frozenset[str]
    slots: int
    since: float


class Scaling:
    """The policy and its memory: spawns in flight, when each worker became idle, the last
    spawn per host. See the module docstring for the rules."""

    def __init__(self, policy: ScalingPolicy) -> None:
        self.policy = policy
        self._in_flight: dict[str, _InFlight] = {}
        self._idle_since: dict[str, float] = {}
        self._activity: dict[str, int] = {}
        self._last_spawn: dict[str, float] = {}

    @property
    def in_flight(self) -> tuple[str, ...]:
        """The burst workers being started (decided, not registered yet)."""
        return tuple(self._in_flight)

    def step(self, workers: Iterable[WorkerLoad], demand: Mapping[Lane, int],
             now: float) -> Decisions:
        """Look at the workers and the queued jobs per lane at ``now`` (monotonic seconds)
        and decide."""
        workers = sorted(workers, key=lambda w: w.name)
        known = {w.name for w in workers}
        arrived = tuple(n for n in self._in_flight if n in known)
        abandoned = tuple(n for n, f in self._in_flight.items()
                          if n not in known and now - f.since >= self.policy.spawn_timeout)
        for name in arrived + abandoned:
            del self._in_flight[name]
        idle = self._track_idle(workers, now)
        return Decisions(self._spawns(workers, demand, now), self._retires(workers, idle),
                         arrived, abandoned, idle)

    def spawn_failed(self, name: str) -> bool:
        """The spawn of ``name`` failed (the worker refused or could not start it): it is in
        flight no more (the host's cooldown still runs). Returns whether it was in flight."""
        return self._in_flight.pop(name, None) is not None

    def retire_refused(self, name: str, now: float) -> None:
        """The master did not retire ``name`` (it got work meanwhile): idle from ``now``."""
        self._idle_since[name] = now

    # -- idle ------------------------------------------------------------------------------

    def _track_idle(self, workers: list[WorkerLoad], now: float) -> dict[str, float]:
        known = {w.name for w in workers}
        for table in (self._idle_since, self._activity):
            for name in [n for n in table if n not in known]:
                del table[name]
        idle: dict[str, float] = {}
        for worker in workers:
            before = self._activity.get(worker.name)
            self._activity[worker.name] = worker.activity
            if worker.taken > 0:
                self._idle_since.pop(worker.name, None)
            elif before is not None and before != worker.activity:
                self._idle_since[worker.name] = now  # it worked since the last look
            else:
                self._idle_since.setdefault(worker.name, now)
            since = self._idle_since.get(worker.name)
            if since is not None:
                idle[worker.name] = max(now - since, 0.0)
        return idle

    def _retires(self, workers: list[WorkerLoad], idle: dict[str, float]) -> tuple[Retire, ...]:
        out = []
        for worker in workers:
            idle_for = idle.get(worker.name)
            if (worker.retirable and worker.available and idle_for is not None
                    and idle_for >= self.policy.idle_timeout):
                out.append(Retire(worker.name, idle_for,
                                  f"{worker.kind} worker idle for {idle_for:.0f} s"))
        return tuple(out)

    # -- spawning --------------------------------------------------------------------------

    def _spawns(self, workers: list[WorkerLoad], demand: Mapping[Lane, int],
                now: float) -> tuple[Spawn, ...]:
        policy = self.policy
        if policy.max_per_host <= 0:
            return ()
        bursts: dict[str, int] = {}
        for worker in workers:
            if worker.burst_of:
                bursts[worker.host] = bursts.get(worker.host, 0) + 1
        for flight in self._in_flight.values():
            bursts[flight.host] = bursts.get(flight.host, 0) + 1
        busy_hosts = {flight.host for flight in self._in_flight.values()}
        names = {w.name for w in workers} | set(self._in_flight)
        out: list[Spawn] = []
        for lane, queued in sorted(demand.items()):
            kind, tag = lane
            if kind != "tag" or queued <= 0:
                continue  # pinned jobs: a burst worker (another name) could never run them
            capable = [w for w in workers if w.available and tag in w.tags]
            if not capable or any(w.taken < w.slots for w in capable):
                continue  # nobody has the tag, or a free slot takes the job at once
            coming = sum(f.slots for f in self._in_flight.values() if tag in f.tags)
            if queued <= coming:
                continue
            parents = [w for w in capable if not w.burst_of and w.slots > 0
                       and w.host not in busy_hosts
                       and bursts.get(w.host, 0) < policy.max_per_host
                       and now - self._last_spawn.get(w.host, float("-inf")) >= policy.cooldown]
            if not parents:
                continue
            parent = min(parents, key=lambda w: (bursts.get(w.host, 0), w.name))
            name = _free_name(parent.name, names)
            names.add(name)
            self._in_flight[name] = _InFlight(name, parent.name, parent.host, parent.tags,
                                              parent.slots, now)
            self._last_spawn[parent.host] = now
            bursts[parent.host] = bursts.get(parent.host, 0) + 1
            busy_hosts.add(parent.host)
            reason = (f"{queued} jobs queued for {tag}, all {len(capable)} workers tagged "
                      f"{tag} busy")
            out.append(Spawn(parent.name, name, parent.host, reason))
        return tuple(out)


def _free_name(parent: str, taken: set[str]) -> str:
    number = 1
    while f"{parent}-burst-{number}" in taken:
        number += 1
    return f"{parent}-burst-{number}"
