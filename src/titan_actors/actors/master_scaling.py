"""The master's side of the scaler: what it shows the scaler, and carrying out its decisions.

A mixin of :class:`~titan_actors.actors.master.MasterActor`. The scaler (``actors/scaler.py``)
asks for a :class:`ScaleLook` (the workers and the queued demand), decides with the policy
(``master/scaling.py``) and sends the decisions back here, because the master holds the
workers' connections: :class:`SpawnBurstOn` becomes ``SpawnBurst`` down the parent's link,
:class:`RetireIdle` marks the worker draining (so nothing more is dispatched to it) and sends it
``Retire``. Each decision is a WORKER event on the stream and the worker's ``scaling`` note in
``titanctl workers``. These messages are in-process only: the scaler lives in the master's
process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UsageError
from ..master.scaling import Retire, Spawn, WorkerLoad
from ..scheduler.pressure import queued_demand, slots_taken
from ..scheduler.routing import Lane
from ..wire.messages import scaler as sc
from ..wire.messages.master import EventKind
from .base import handles
from .future import Future

__all__ = ["IdleView", "LookForScaler", "RetireIdle", "ScaleLook", "ScalerRequests",
           "SpawnBurstOn"]

log = logging.getLogger("titan.master")

_SPAWN_TIMEOUT = 10.0  # for the worker to start the burst process and answer


@dataclass(frozen=True, slots=True)
class LookForScaler:
    """What the scaler needs to decide: answered with a :class:`ScaleLook`."""


@dataclass(frozen=True, slots=True)
class ScaleLook:
    workers: tuple[WorkerLoad, ...]
    demand: Mapping[Lane, int]


@dataclass(frozen=True, slots=True)
class SpawnBurstOn:
    """Ask the spawn's parent to start the burst worker; answered with its ``BurstSpawned``
    or the reason it could not."""

    spawn: Spawn


@dataclass(frozen=True, slots=True)
class RetireIdle:
    """Retire an idle worker; answered True, or False when it is no longer idle (or gone)."""

    retire: Retire


@dataclass(frozen=True, slots=True)
class IdleView:
    """How long each idle worker has been idle, as the scaler saw it (busy ones absent)."""

    idle: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class _SpawnAnswered:
    spawn: Spawn
    reply: Future
    answer: Future


class ScalerRequests:
    """Handlers for the scaler's requests (see the module docstring)."""

    @handles(LookForScaler)
    def _look_for_scaler(self, msg: LookForScaler) -> ScaleLook:
        workers = tuple(
            WorkerLoad(e.name, e.host, e.tags, e.slots,
                       max(slots_taken(self.scheduler, e.name), len(e.running)),
                       getattr(e.running, "added", 0), e.connected, e.draining, e.ephemeral,
                       e.burst_of)
            for e in self.workers)
        return ScaleLook(workers, queued_demand(self.scheduler))

    @handles(SpawnBurstOn)
    def _spawn_burst_on(self, msg: SpawnBurstOn) -> Future:
        spawn = msg.spawn
        entry = self.workers.get(spawn.parent)
        if entry is None or not entry.connected or entry.draining:
            raise UsageError(f"worker {spawn.parent} cannot start burst worker {spawn.name}: "
                             "it is not connected, or draining")
        entry.scaling = f"starting burst worker {spawn.name}"
        self.events.publish(kind=EventKind.WORKER, worker=spawn.parent,
                            detail=f"starting burst worker {spawn.name}: {spawn.reason}")
        reply = entry.ref.ask_async(sc.SpawnBurst(spawn.name, spawn.reason),
                                    timeout=_SPAWN_TIMEOUT)
        answer = Future(f"the start of burst worker {spawn.name}")
        reply.add_done_callback(lambda done: self.notify(_SpawnAnswered(spawn, done, answer)))
        return answer

    @handles(_SpawnAnswered)
    def _spawn_answered(self, msg: _SpawnAnswered) -> None:
        spawn, entry = msg.spawn, self.workers.get(msg.spawn.parent)
        if msg.reply.successful():
            what = f"started burst worker {spawn.name} (pid {msg.reply.value.pid})"
        else:
            what = f"could not start burst worker {spawn.name}: {msg.reply.exception}"
            log.warning("worker %s %s", spawn.parent, what)
        if entry is not None:
            entry.scaling = what
        self.events.publish(kind=EventKind.WORKER, worker=spawn.parent, detail=what)
        msg.answer.resolve_from(msg.reply)

    @handles(RetireIdle)
    def _retire_idle(self, msg: RetireIdle) -> bool:
        retire = msg.retire
        entry = self.workers.get(retire.name)
        if (entry is None or not entry.connected or entry.draining
                or not (entry.ephemeral or entry.burst_of)
                or entry.running or slots_taken(self.scheduler, entry.name)):
            return False  # it got work (or went) since the scaler looked
        entry.scaling = f"retired: {retire.reason}"
        self.events.publish(kind=EventKind.WORKER, worker=entry.name,
                            detail=f"retiring: {retire.reason}")
        self._draining(entry)  # from now on nothing is dispatched to it
        try:
            entry.ref.tell(sc.Retire(retire.reason), timeout=1.0)
        except Exception as error:
            # it registers again (not draining) and is retired at a later look
            log.warning("could not tell %s to retire (%s); dropping its link", entry.name, error)
            entry.ref.close()
        return True

    @handles(IdleView)
    def _idle_view(self, msg: IdleView) -> None:
        now = self.clock.monotonic()
        for entry in self.workers:
            idle_for = msg.idle.get(entry.name)
            entry.idle_since = None if idle_for is None else now - idle_for
