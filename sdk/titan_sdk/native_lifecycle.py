"""Gates and services in the native SDK: approve or reject a human approval gate, list the
gates and the services, stop a service. A mixin of :class:`~titan_sdk.native.Titan`; each method
is one call of :class:`titan_actors.client.MasterClient` (through the client's ``_call``, which
turns the core's errors into :mod:`titan_sdk.errors`).
"""

from __future__ import annotations

from titan_actors.wire.messages.master import JobInfo

__all__ = ["ClientLifecycle"]


class ClientLifecycle:
    """Gate and service methods of the client (they use its ``_call``)."""

    def approve(self, gate: str, comment: str = "") -> str:
        """Approve a waiting gate: ``GATE``, ``DAG-GATE`` or ``RUN/GATE`` (a bare id: its
        latest run; a job's ``hitl_message`` makes the gate ``hitl-gate-<job>``). Its children
        go ahead. Returns the master's sentence once the decision is durable (``"gate RUN/GATE
        approved"``); the decision records who made it and ``comment``.

        Raises NotFound for no such gate; RequestRefused for a gate that is not waiting
        (decided already, timed out, its parents not finished yet), a job that is not a gate,
        or a caller that may not decide gates (a job's own token never may).
        """
        return self._call(lambda c: c.decide_gate(gate, True, comment), ref=gate)

    def reject(self, gate: str, comment: str = "") -> str:
        """Reject a waiting gate: its unfinished descendants are skipped (the run fails).
        Answers and raises as :meth:`approve` (``"gate RUN/GATE rejected"``)."""
        return self._call(lambda c: c.decide_gate(gate, False, comment), ref=gate)

    def gates(self, all: bool = False) -> list[JobInfo]:
        """The gates waiting for a decision, oldest first: each with ``run_id``, ``job_id``,
        ``message`` (the question), ``deadline`` (epoch seconds) and ``parents``. ``all``:
        every gate, decided and timed out ones too (``state``, ``decided_by``, ``comment``)."""
        return list(self._call(lambda c: c.gates(all), read=True))

    def services(self, all: bool = False) -> list[JobInfo]:
        """The services that have not finished (``state`` starting, ready or restarting; or
        pending and queued), with ``worker``, ``port`` and ``restarts``. ``all``: stopped and
        dead ones too."""
        return list(self._call(lambda c: c.services(all), read=True))

    def stop_service(self, ref: str) -> str:
        """Stop a service (``JOB``, ``DAG-JOB`` or ``RUN/JOB``; inside a job a bare id names
        the service of the job's own run first): its process is killed and not restarted, its
        descendants that have not started are skipped. Returns ``"STOPPED: DAG-<id>"``.

        Raises NotFound for no such job; RequestRefused for a job that is not a service or a
        service that has finished already.
        """
        return self._call(lambda c: c.stop_service(ref), ref=ref)
