"""The scaler: starts burst workers when workers saturate, retires idle ones.

An actor in the master's process. Every ``interval`` of its injected clock it asks the master
for a look at the workers and the queued demand, applies the policy (``master/scaling.py``,
pure) and sends the decisions to the master, which holds the workers' connections and carries
them out (``actors/master_scaling.py``). Every decision is logged here (logger
``titan.scaler``) and published by the master as a WORKER event. One look at a time: a tick
that comes while the previous look is unanswered is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..master.scaling import Decisions, Scaling, ScalingPolicy, Spawn
from .base import Actor, Ref, handles
from .future import Future
from .master_scaling import IdleView, LookForScaler, RetireIdle, ScaleLook, SpawnBurstOn

__all__ = ["ScalerActor", "ScalerOptions", "ScalerState", "ScalerStatus"]

log = logging.getLogger("titan.scaler")


@dataclass(frozen=True, slots=True)
class ScalerOptions:
    """The scaler's settings (the composition root fills them from the config)."""

    interval: float = 1.0          # how often it looks (the heartbeat interval)
    policy: ScalingPolicy = ScalingPolicy()
    ask_timeout: float = 10.0      # for the master's answers


@dataclass(frozen=True, slots=True)
class ScalerStatus:
    """Ask the scaler where it stands: answered with a :class:`ScalerState`."""


@dataclass(frozen=True, slots=True)
class ScalerState:
    """``looks``: looks at the workers decided on so far; ``in_flight``: burst workers being
    started (not registered yet)."""

    looks: int
    in_flight: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclass(frozen=True, slots=True)
class _Looked:
    reply: Future


@dataclass(frozen=True, slots=True)
class _SpawnDone:
    spawn: Spawn
    reply: Future


@dataclass(frozen=True, slots=True)
class _RetireDone:
    name: str
    reply: Future


class ScalerActor(Actor):
    """The scaler actor. See the module docstring."""

    def __init__(self, options: ScalerOptions, master: Ref, *, clock=None) -> None:
        super().__init__(clock=clock)
        self.options = options
        self.master = master
        self.scaling = Scaling(options.policy)
        self._looking = False
        self._looks = 0

    def on_start(self) -> None:
        policy = self.options.policy
        log.info("scaler: up to %d burst workers per host, idle timeout %g s, looking every "
                 "%g s", policy.max_per_host, policy.idle_timeout, self.options.interval)
        self.send_every(self.options.interval, _Tick())

    @handles(_Tick)
    def _tick(self, msg: _Tick) -> None:
        if self._looking or not self.master.is_alive:
            return
        self._looking = True
        try:
            reply = self.master.ask_async(LookForScaler(), timeout=self.options.ask_timeout)
        except Exception as error:  # the master is stopping
            self._looking = False
            log.debug("no look at the workers: %s", error)
            return
        reply.add_done_callback(lambda done: self.notify(_Looked(done)))

    @handles(_Looked)
    def _looked(self, msg: _Looked) -> None:
        self._looking = False
        if not msg.reply.successful():
            log.warning("the master did not answer the scaler: %s", msg.reply.exception)
            return
        look: ScaleLook = msg.reply.value
        decisions = self.scaling.step(look.workers, look.demand, self.clock.monotonic())
        self._looks += 1
        self._log(decisions)
        self._send(IdleView(decisions.idle))
        for spawn in decisions.spawns:
            self._ask(SpawnBurstOn(spawn), lambda done, s=spawn: _SpawnDone(s, done))
        for retire in decisions.retires:
            self._ask(RetireIdle(retire), lambda done, r=retire: _RetireDone(r.name, done))

    @handles(ScalerStatus)
    def _status(self, msg: ScalerStatus) -> ScalerState:
        return ScalerState(self._looks, self.scaling.in_flight)

    def _log(self, decisions: Decisions) -> None:
        for name in decisions.arrived:
            log.info("burst worker %s registered", name)
        for name in decisions.abandoned:
            log.warning("burst worker %s did not register in time; no longer waiting for it",
                        name)
        for spawn in decisions.spawns:
            log.info("asking %s (host %s) to start burst worker %s: %s", spawn.parent,
                     spawn.host, spawn.name, spawn.reason)
        for retire in decisions.retires:
            log.info("retiring %s: %s", retire.name, retire.reason)

    def _send(self, message: Any) -> None:
        try:
            self.master.tell(message, timeout=self.options.ask_timeout)
        except Exception as error:  # the master is stopping
            log.debug("could not tell the master %s: %s", type(message).__name__, error)

    def _ask(self, message: Any, wrap) -> None:
        try:
            reply = self.master.ask_async(message, timeout=self.options.ask_timeout)
        except Exception as error:  # the master is stopping: its answer is this error
            reply = Future()
            reply.set_exception(error)
        reply.add_done_callback(lambda done: self.notify(wrap(done)))

    @handles(_SpawnDone)
    def _spawn_done(self, msg: _SpawnDone) -> None:
        if msg.reply.successful():
            log.info("%s started burst worker %s (pid %d)", msg.spawn.parent, msg.spawn.name,
                     msg.reply.value.pid)
            return
        self.scaling.spawn_failed(msg.spawn.name)
        log.warning("%s could not start burst worker %s: %s", msg.spawn.parent,
                    msg.spawn.name, msg.reply.exception)

    @handles(_RetireDone)
    def _retire_done(self, msg: _RetireDone) -> None:
        if not msg.reply.successful():
            log.warning("could not retire %s: %s", msg.name, msg.reply.exception)
        elif not msg.reply.value:
            log.info("%s got work meanwhile: not retired", msg.name)
        else:
            return
        self.scaling.retire_refused(msg.name, self.clock.monotonic())
