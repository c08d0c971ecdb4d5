"""The master's handling of gates and services: decisions (also through Titan's store key),
lists, stops, and the reports of the workers that supervise services.

A mixin of :class:`~titan_actors.actors.master.MasterActor`.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from ..errors import PermissionDeniedError, StaleReportError, UsageError
from ..master import views
from ..scheduler.model import TERMINAL_STATES, JobKind, JobState
from ..wire.messages import lifecycle as lc
from ..wire.messages import store as st
from ..wire.messages import worker as w
from ..wire.messages.master import Done
from ..wire.roles import Capability as C
from ..wire.roles import Role, role_may
from .base import Sender, handles
from .future import Future

log = logging.getLogger("titan.master")

#: Titan's scripts decide a gate by writing APPROVED or REJECTED to this key + the gate's id.
GATE_STATUS_PREFIX = "titan:hitl:status:"
_DECISIONS = {"APPROVED": True, "REJECTED": False}


def service_variable(job_id: str) -> str:
    """``TITAN_SERVICE_<ID>``: the job id upper-cased, every other character an underscore."""
    return "TITAN_SERVICE_" + re.sub(r"[^A-Z0-9]", "_", job_id.upper())


def decider(sender: Sender) -> str:
    """How a decision names who made it: the connection's identity and role."""
    return f"{sender.peer.identity} ({sender.peer.role.name.lower()})"


class LifecycleRequests:
    """Handlers for gates and services (see the module docstring)."""

    # -- gates ----------------------------------------------------------------------------------

    @handles(lc.DecideGate)
    def _decide_gate(self, msg: lc.DecideGate, sender: Sender) -> Future:
        run_id, job_id = self._resolve_job(msg.ref, sender)
        return self._decide(run_id, job_id, msg.approve, decider(sender), msg.comment)

    def _decide(self, run_id: str, job_id: str, approve: bool, by: str,
                comment: str) -> Future:
        self._refuse_if_degraded("gate decision")  # also a decision through the store key
        records = self.scheduler.decide_gate(run_id, job_id, approve, by, comment,
                                             self.clock.time())
        verb = "approved" if approve else "rejected"
        log.info("gate %s/%s %s by %s%s", run_id, job_id, verb, by,
                 f": {comment}" if comment else "")
        return self._advance(records, reply_value=Done(f"gate {run_id}/{job_id} {verb}"),
                             want_reply=True)

    @handles(lc.ListGates)
    def _list_gates(self, msg: lc.ListGates, sender: Sender) -> lc.JobList:
        if msg.all:
            keys = [(job.run_id, job.job_id) for run in self.scheduler.runs()
                    for job in self.scheduler.jobs(run.run_id) if job.kind is JobKind.GATE]
        else:
            keys = self.scheduler.waiting_gates()
        return lc.JobList(self._infos(keys, sender))

    def _infos(self, keys, sender: Sender) -> tuple:
        if sender.peer.role is Role.JOB:
            keys = [key for key in keys if key[0] == sender.peer.run_id]
        return tuple(views.job_info(self.scheduler.job(run_id, job_id))
                     for run_id, job_id in keys)

    def _gate_by_store(self, msg, sender: Sender) -> Future | None:
        """Titan's way: writing APPROVED/REJECTED to ``titan:hitl:status:<gate>`` decides the
        gate (when the writer may decide gates), then stores the value as any write does.
        Returns the reply when this write decided a gate, None to go on as a plain write."""
        if not (isinstance(msg, st.StorePut) and msg.key.startswith(GATE_STATUS_PREFIX)):
            return None
        approve = _DECISIONS.get(msg.value.strip().upper())
        if approve is None:
            return None
        gate_id = msg.key[len(GATE_STATUS_PREFIX):]
        if not role_may(sender.peer.role, C.DECIDE_GATES):
            raise PermissionDeniedError(
                f"writing {msg.value!r} to {msg.key!r} decides gate {gate_id!r}, and a "
                f"{sender.peer.role.name.lower()} may not decide gates (only a client or an "
                "admin may: a person, not a job)")
        try:
            run_id, job_id = self.scheduler.resolve(gate_id)
            gate = self.scheduler.job(run_id, job_id)
        except UsageError:
            return None  # no such gate: an ordinary write
        if gate.kind is not JobKind.GATE or gate.state is not JobState.WAITING:
            # not waiting (yet, or any more): stored as any value; it decides nothing (a value
            # left from an earlier run of the same pipeline must not approve the next one)
            return None
        decided = self._decide(run_id, job_id, approve, decider(sender), "by the store key")
        reply = Future("gate decided through the store")

        def then_store(done: Future) -> None:
            if not done.successful():
                reply.set_exception(done.exception)
                return
            stored = self.store.ask_async(msg, timeout=30.0)
            stored.add_done_callback(lambda s: reply.set(s.value) if s.successful()
                                     else reply.set_exception(s.exception))
        decided.add_done_callback(then_store)
        return reply

    # -- services -------------------------------------------------------------------------------

    @handles(lc.StopService)
    def _stop_service(self, msg: lc.StopService, sender: Sender) -> Future:
        run_id, job_id = self._resolve_job(msg.ref, sender)
        records = self.scheduler.stop_service(run_id, job_id, self.clock.time())
        log.info("service %s/%s stopped on request by %s", run_id, job_id, decider(sender))
        return self._advance(records, reply_value=Done(f"STOPPED: DAG-{job_id}"),
                             want_reply=True)

    @handles(lc.ListServices)
    def _list_services(self, msg: lc.ListServices, sender: Sender) -> lc.JobList:
        keys = [(job.run_id, job.job_id) for run in self.scheduler.runs()
                for job in self.scheduler.jobs(run.run_id)
                if job.kind is JobKind.SERVICE and (msg.all or job.state not in TERMINAL_STATES)]
        return lc.JobList(self._infos(keys, sender))

    def _with_service_addresses(self, run_id: str, spec, host: str):
        """The job's spec with ``TITAN_SERVICE_<ID>=host:port`` for each parent that is a
        service with a port (``127.0.0.1`` when it runs on the job's own host)."""
        found = {}
        queue = [(run_id, parent, 0) for parent in spec.parents]
        while queue:
            base, parent, depth = queue.pop()
            parent_run, parent_id = parent.split("/", 1) if "/" in parent else (base, parent)
            try:  # the kind first: building a parent's view costs more than most parents need
                kind = self.scheduler.job_spec(parent_run, parent_id).kind
                if kind is JobKind.RUN:
                    continue
                view = self.scheduler.job(parent_run, parent_id)
            except UsageError:
                continue
            if view.kind is JobKind.GATE and depth < 3:  # a gate guards what is behind it
                queue.extend((parent_run, p, depth + 1) for p in view.parents)
                continue
            if view.kind is not JobKind.SERVICE or not view.port:
                continue
            entry = self.workers.get(view.worker)
            where = "127.0.0.1" if entry is None or entry.host == host else entry.host
            found[service_variable(parent_id)] = f"{where}:{view.port}"
        if not found:
            return spec
        return dataclasses.replace(spec, env={**found, **spec.env})

    @handles(w.ServiceState)
    def _service_state(self, msg: w.ServiceState, sender: Sender) -> None:
        entry = self.workers.by_ref(sender.ref)
        ref = msg.ref
        if entry is None or not self._holds(entry.name, ref):
            log.warning("refused a service report of %s/%s from %s: not its worker",
                        ref.run_id, ref.job_id, entry.name if entry else sender.peer.identity)
            return
        try:
            records = self.scheduler.service_state(
                ref.run_id, ref.job_id, ref.attempt, ref.epoch, msg.state, self.clock.time(),
                port=msg.port, restarts=msg.restarts, reason=msg.reason)
        except StaleReportError as error:
            log.info("refused a stale service report: %s", error)
            return
        except UsageError as error:  # a report that makes no sense: the worker's bug, not ours
            log.warning("refused a service report from %s: %s", entry.name, error)
            return
        if records:
            self._advance(records)
