"""Services on a worker: start with a port, readiness, restarts with backoff, stop; a mixin of
:class:`~titan_actors.actors.worker.WorkerActor`.

A service is dispatched as any attempt and runs as one: it keeps its ``_Attempt`` (and its
worker slot) from the dispatch to its end, through every restart. The worker chooses the port
once per attempt (``spec.port`` when it is free here, else one the OS picks; a requested port
that is taken ends the attempt at once), puts it in the process's environment as ``PORT`` and
``TITAN_SERVICE_PORT`` (over the job's own ``env``), and tells the master with
``ServiceState``:

* STARTING when a process started (each restart too), with the port;
* READY once ``127.0.0.1:PORT`` accepts a TCP connection, or ``spec.health`` exits 0 (a
  service that listens only elsewhere, on ``::1`` or one outside address, needs a health
  command). Probes run on timers of the actor's clock, from ``service_probe_min`` seconds
  doubling to ``service_probe_max``; each check runs in an owned greenlet, a health command
  through the launcher with ``service_health_timeout``;
* RESTARTING when the process exited and is started again after the restart policy's backoff
  (``WorkerOptions.service_restart``); its reason says why and when ("exit code 1; restart 2
  in 2.0 s"), and the same line goes into the attempt's log.

Each report carries the restarts so far in this attempt, and the latest one is sent again
after every registration (reports sent while the master was away are lost). The attempt ends
with the usual JobFinished only when it runs out of restarts (the last exit code, "...; exited
4 times; max_restarts 3 reached") or when it is killed (KillAttempt: a stop, a cancel; a drain
hands it back): then the process tree is killed and never restarted. ``spec.timeout`` is a
readiness timeout for a service: a process not ready that long after its start is killed, and
that counts as an exit ("not ready within 5 s; restart 1 in 1.0 s").

Every process of the attempt runs under the attempt's launcher key. The next one starts only
after the previous one's exit AND the end of its output were seen (``_finalize``), so an exit
report or an end of output always belongs to the current process; timers and probes carry the
process's generation, and stale ones are ignored. The output of all the processes goes to the
attempt's one log; the final report counts all of it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TitanError
from ..execution.command import Command, TitanEnv, build_command
from ..execution.services import (
    RestartTracker,
    check_health,
    choose_port,
    describe_exit,
    port_accepts,
    seconds,
)
from ..job_limits import to_rlimits
from ..scheduler.model import JobState
from ..wire.messages import worker as w
from .base import handles
from .worker_link import _key

log = logging.getLogger("titan.worker")

_PROBE_CONNECT_TIMEOUT = 1.0  # one readiness connection to 127.0.0.1


@dataclass(frozen=True, slots=True)
class _Probe:
    ref: w.AttemptRef
    generation: int


@dataclass(frozen=True, slots=True)
class _Probed:
    ref: w.AttemptRef
    generation: int
    ok: bool


@dataclass(frozen=True, slots=True)
class _NotReady:
    ref: w.AttemptRef
    generation: int


@dataclass(frozen=True, slots=True)
class _RestartService:
    ref: w.AttemptRef
    generation: int


@dataclass
class _Service:
    """The supervision of one service attempt."""

    ref: w.AttemptRef
    spec: Any                   # the JobSpec
    cwd: Path
    command: Command            # PORT and TITAN_SERVICE_PORT included
    port: int
    tracker: RestartTracker
    state: JobState = JobState.STARTING
    reason: str = ""            # of the latest report (sent again after a registration)
    generation: int = 0         # processes started so far; timers and probes carry theirs
    started_at: float = 0.0     # monotonic
    probe_delay: float = 0.0
    probes: int = 0             # readiness checks run (each health command has its own key)
    stopped: bool = False       # killed on request: never restarted
    kill_note: str = ""         # why the worker itself killed the current process
    output_bytes: int = 0       # output sent for the processes that ended, markers included
    timers: dict = field(default_factory=dict)  # message type -> its pending timer


class WorkerServices:
    """Service supervision (see the module docstring). Expects ``self.services`` (a dict),
    ``self.service_random`` (a ``random.Random``) and the worker's attempt machinery."""

    # -- start ----------------------------------------------------------------------------------

    def _launch_service(self, attempt, msg: w.Dispatch, cwd: Path, script: Path | None) -> None:
        """``_launch`` for a service: choose its port, build its command once, start it."""
        ref, spec = msg.ref, msg.spec
        try:
            port = choose_port(spec.port, self.options.name)
            env = {**spec.env, "PORT": str(port), "TITAN_SERVICE_PORT": str(port)}
            host, master_port = self.options.master
            titan = TitanEnv(host, master_port, msg.token, ref.job_id, ref.run_id, ref.attempt,
                              self.options.name)
            command = build_command(dataclasses.replace(spec, env=env), titan,
                                    str(script) if script else None, base_env=self.job_base_env)
        except Exception as error:  # the attempt fails (no restart), the worker goes on
            self._fail_to_start(attempt, str(error))
            return
        tracker = RestartTracker(self.options.service_restart, spec.max_restarts,
                                 self.service_random)
        service = self.services[ref] = _Service(ref, spec, cwd, command, port, tracker)
        self._start_service(attempt, service)

    def _start_service(self, attempt, service: _Service) -> None:
        ref = service.ref
        try:
            process = self._spawn_process(_key(ref), service.command, service.cwd,
                                          rlimits=to_rlimits(service.spec.limits))
        except Exception as error:  # ends the attempt (_finalize sees the reason)
            self._fail_to_start(attempt, str(error))
            return
        service.generation += 1
        service.started_at = self.clock.monotonic()
        service.kill_note = ""
        attempt.pid = process.pid
        self.spawn(self._read_output, ref, process)
        if self.master is not None:
            self._tell_master(w.JobStarted(ref, process.pid))
        restarts = service.tracker.restarts
        self._report_service(service, JobState.STARTING,
                             f"restart {restarts}" if restarts else "")
        service.probe_delay = self.options.service_probe_min
        self._service_timer(service, service.probe_delay, _Probe(ref, service.generation))
        if service.spec.timeout > 0:
            self._service_timer(service, service.spec.timeout,
                                _NotReady(ref, service.generation))

    # -- readiness ------------------------------------------------------------------------------

    @handles(_Probe)
    def _probe_service(self, msg: _Probe) -> None:
        service = self._current_service(msg.ref, msg.generation)
        if service is not None and service.state is not JobState.READY:
            service.probes += 1
            self.spawn(self._run_probe, service, msg.generation, service.probes)

    def _run_probe(self, service: _Service, generation: int, number: int) -> None:
        """Owned greenlet: one readiness check, reported as ``_Probed``."""
        try:
            if service.spec.health:
                ok = check_health(self.launcher, f"{_key(service.ref)}/health/{number}",
                                  service.spec.health, service.command.env, str(service.cwd),
                                  self.options.service_health_timeout)
            else:
                ok = port_accepts(service.port, timeout=_PROBE_CONNECT_TIMEOUT)
        except Exception as error:  # a failed check, not a crash of the worker
            log.warning("readiness check of %s failed: %s", _key(service.ref), error)
            ok = False
        self.notify(_Probed(service.ref, generation, ok))

    @handles(_Probed)
    def _probed(self, msg: _Probed) -> None:
        service = self._current_service(msg.ref, msg.generation)
        attempt = self.attempts.get(msg.ref)
        if (service is None or attempt is None or attempt.exit_code is not None
                or service.state is JobState.READY):
            return
        if msg.ok:
            self._cancel_service_timers(service)  # the readiness timeout with them
            self._report_service(service, JobState.READY)
            return
        service.probe_delay = min(service.probe_delay * 2, self.options.service_probe_max)
        self._service_timer(service, service.probe_delay, _Probe(msg.ref, msg.generation))

    @handles(_NotReady)
    def _not_ready(self, msg: _NotReady) -> None:
        service = self._current_service(msg.ref, msg.generation)
        attempt = self.attempts.get(msg.ref)
        if (service is None or attempt is None or attempt.exit_code is not None
                or not attempt.pid or service.state is JobState.READY):
            return
        service.kill_note = f"not ready within {seconds(service.spec.timeout)} s"
        log.warning("service %s: %s; killing it", _key(msg.ref), service.kill_note)
        self._kill_process(msg.ref)

    # -- exits and restarts ---------------------------------------------------------------------

    def _service_exited(self, attempt) -> bool:
        """Called by ``_finalize`` once the process exited and its output was read: True when
        the service starts again (the attempt goes on), False when the attempt ends now (then
        ``attempt.reason`` and ``attempt.output_bytes`` are those of the final report)."""
        service = self.services.get(attempt.ref)
        if service is None:
            return False
        self._cancel_service_timers(service)
        service.output_bytes += attempt.output_bytes
        attempt.output_bytes = service.output_bytes
        last = service.kill_note or describe_exit(attempt.exit_code)
        if self.draining and not service.stopped:
            attempt.handed_back = True  # a draining worker hands it back instead of restarting
        ending = service.stopped or attempt.reason or attempt.handed_back or self._stopping
        decision = None if ending else service.tracker.exited(
            self.clock.monotonic() - service.started_at)
        if decision is None:
            del self.services[attempt.ref]
            if not ending:
                attempt.reason = service.tracker.gave_up(last)
                log.warning("service %s ends: %s", _key(attempt.ref), attempt.reason)
            return False
        delay = seconds(decision.delay)
        self._service_log(service, f"\n[titan: the service exited ({last}); restart "
                                   f"{decision.number} in {delay} s]\n")
        attempt.exit_code, attempt.output_done, attempt.pid, attempt.output_bytes = \
            None, False, 0, 0
        self._report_service(service, JobState.RESTARTING,
                             f"{last}; restart {decision.number} in {delay} s")
        self._service_timer(service, decision.delay,
                            _RestartService(attempt.ref, service.generation))
        return True

    @handles(_RestartService)
    def _restart_service(self, msg: _RestartService) -> None:
        service = self._current_service(msg.ref, msg.generation)
        attempt = self.attempts.get(msg.ref)
        if (service is None or attempt is None or attempt.exit_code is not None
                or attempt.pid or self.draining):
            return  # ended, or being handed back by a drain (which finalizes it)
        self._start_service(attempt, service)

    def _kill_service(self, attempt, reason: str) -> bool:
        """A KillAttempt (stop, cancel): kill the process tree and never restart. False when
        ``attempt`` is not a supervised service (the caller kills it as a job)."""
        service = self.services.get(attempt.ref)
        if service is None:
            return False
        service.stopped = True
        self._cancel_service_timers(service)
        attempt.reason = attempt.reason or reason
        if attempt.exit_code is None and attempt.pid:
            self._kill_process(attempt.ref)
        elif attempt.exit_code is None:  # waiting out its backoff: no process, it ends now
            attempt.exit_code, attempt.output_done = -9, True
            self._finalize(attempt)
        # else it exited and its output is still being read: _finalize ends it then
        return True

    def _kill_process(self, ref: w.AttemptRef) -> None:
        """Kill an attempt's process tree; a broken launcher took it down already."""
        try:
            self.launcher.kill(_key(ref), self.options.kill_grace)
        except TitanError as error:
            log.warning("could not kill %s: %s (the launcher is gone, and its processes "
                        "with it)", _key(ref), error)

    # -- reports --------------------------------------------------------------------------------

    def _report_service(self, service: _Service, state: JobState, reason: str = "") -> None:
        service.state, service.reason = state, reason
        log.info("service %s %s on port %d%s", _key(service.ref), state.value, service.port,
                 f": {reason}" if reason else "")
        if self.master is not None:
            self._tell_master(self._service_state(service))

    def _resend_service_states(self) -> None:
        """After a registration and with each heartbeat: the master may have missed reports
        while it was away, or one dropped on a full link (it ignores what it knows)."""
        if self.master is None:
            return
        for service in self.services.values():
            if not service.stopped:
                self._tell_master(self._service_state(service))

    @staticmethod
    def _service_state(service: _Service) -> w.ServiceState:
        return w.ServiceState(service.ref, service.state, service.port,
                              service.tracker.restarts, service.reason)

    def _service_log(self, service: _Service, text: str) -> None:
        """Write a line of the worker's own into the attempt's log (stderr)."""
        master = self.master
        if master is None:
            return  # like the output of that time: lost
        data = text.encode()
        try:
            master.tell(w.JobOutput(service.ref, 2, data), timeout=0.5)
        except Exception as error:  # the connect loop notices a broken link
            log.debug("could not write to the log of %s: %s", _key(service.ref), error)
            return
        service.output_bytes += len(data)

    # -- helpers --------------------------------------------------------------------------------

    def _current_service(self, ref: w.AttemptRef, generation: int) -> _Service | None:
        service = self.services.get(ref)
        if service is None or service.stopped or service.generation != generation:
            return None
        return service

    def _service_timer(self, service: _Service, delay: float, message: Any) -> None:
        """Arm a timer for ``message``, replacing the pending one of its kind."""
        previous = service.timers.pop(type(message), None)
        if previous is not None:
            previous.cancel()
        service.timers[type(message)] = self.send_after(delay, message)

    @staticmethod
    def _cancel_service_timers(service: _Service) -> None:
        for timer in service.timers.values():
            timer.cancel()
        service.timers.clear()
