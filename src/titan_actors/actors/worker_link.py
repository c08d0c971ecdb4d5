"""The worker's link to the master, and its drain: a mixin of
:class:`~titan_actors.actors.worker.WorkerActor`.

An owned greenlet dials with a capped backoff, registers (with what the worker still runs and
what finished unacknowledged), tells the actor by message, then pings the master while the link
lasts and drops it when the master stays silent for a lease; heartbeats are a timer. Draining
(SIGTERM) stops new work and waits for running attempts up to the drain timeout, then hands
them back.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import gevent

from ..errors import AskTimeoutError
from ..wire.bridge import Endpoint
from ..wire.messages import worker as w
from ..wire.messages.control import Ping
from ..wire.roles import Role
from ..wire.server import dial
from .base import handles

log = logging.getLogger("titan.worker")

# After the drain timeout: how long killed attempts' reports may wait for the master's
# acknowledgement before the worker stops anyway (the master's lease then covers them).
_REPORT_GRACE = 5.0
# The pause between dials to an unreachable master, as a share of how long it has been
# unreachable (see MasterLink._back_off).
_BACKOFF_SHARE = 0.1
_JITTER = 0.2  # each reconnect pause is spread by this share, up or down


def _key(ref: w.AttemptRef) -> str:
    """The launcher's name for an attempt."""
    return f"{ref.run_id}/{ref.job_id}/{ref.attempt}/{ref.epoch}"


def _attempt_of(key: str) -> w.AttemptRef | None:
    """The attempt a launcher key (``RUN/JOB/ATTEMPT/EPOCH``) names, or None for another key."""
    parts = key.split("/")
    if len(parts) != 4 or not (parts[2].isdigit() and parts[3].isdigit()):
        return None
    return w.AttemptRef(parts[0], parts[1], int(parts[2]), int(parts[3]))


@dataclass(frozen=True, slots=True)
class _Connected:
    endpoint: Endpoint
    reported: tuple[w.AttemptRef, ...] = ()  # the finished attempts the registration carried


@dataclass(frozen=True, slots=True)
class _Disconnected:
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class _Beat:
    pass


@dataclass(frozen=True, slots=True)
class _RegistrationState:
    pass


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop taking work; let running attempts finish for the drain timeout, then hand them back."""


@dataclass(frozen=True, slots=True)
class _DrainExpired:
    pass


@dataclass(frozen=True, slots=True)
class _DrainGiveUp:
    pass


class MasterLink:
    """Connection, registration, heartbeats and draining of a worker."""

    def _connect_loop(self) -> None:
        """Dial, register, wait for the link to end, and again, with a capped backoff."""
        failing_since: float | None = None  # the first failed dial since the last registration
        host, port = self.options.master
        while not self._stopping:
            try:
                endpoint = dial(host, port, role=Role.WORKER, identity=self.options.name,
                                keys=self.keys, local=self.ref, timeout=5.0)
            except Exception as error:
                log.info("cannot reach the master at %s:%d: %s", host, port, error)
                failing_since = self._back_off(failing_since)
                continue
            try:
                running, finished, lost = self.ref.ask(_RegistrationState(), timeout=10)
                registered = endpoint.remote.ask(w.RegisterWorker(
                    self.options.name, self.options.tags, self.options.slots,
                    socket.gethostname(), os.getpid(), running, finished,
                    self.options.ephemeral, self.options.burst_of, lost), timeout=30)
            except Exception as error:
                log.warning("registration with the master failed: %s", error)
                endpoint.close()
                failing_since = self._back_off(failing_since)
                continue
            failing_since = None
            self.notify(_Connected(endpoint, tuple(result.ref for result in finished)))
            self._watch_master(endpoint, registered.lease)
            self.notify(_Disconnected(endpoint))

    def _watch_master(self, endpoint: Endpoint, lease: float) -> None:
        """Until the link ends: ping the master every heartbeat interval, and drop the link
        when it answers nothing for a whole ``lease`` (the master's, from the registration).

        Heartbeats are one-way, and TCP notices a peer that vanished without a FIN (a
        partition, a half-open connection, a path that loses only the master's frames) only
        after minutes of retransmissions: meanwhile the master declares this worker lost and
        runs its jobs elsewhere, and dispatches sent down a dead path vanish. Dropping the link
        makes the worker dial again and register, so the master re-attaches what still runs
        here and re-runs what a registration leaves out.
        """
        while not self._stopping and not endpoint.wait_closed(self.options.heartbeat_interval):
            try:
                endpoint.remote.ask(Ping(b"worker"), timeout=lease)
            except AskTimeoutError:
                # a reply queued behind big frames (file chunks, dispatches) on a slow path is
                # late, not lost: the link is alive as long as anything at all arrives
                silent = endpoint.silent_for()
                if silent < lease:
                    continue
                log.warning("the master sent nothing for %.1f s; dialling it again", silent)
                endpoint.close()
            except Exception as error:  # the link broke (the loop sees it) or its queue is full
                log.debug("could not ping the master: %s", error)

    def _back_off(self, failing_since: float | None) -> float:
        """Pause before the next dial; return when the failures began (now if they just did).

        The pause is :data:`_BACKOFF_SHARE` of the time the master has been unreachable, within
        ``reconnect_min`` and ``reconnect_max``: a master restarted after a second or two is
        found again within a tenth of its downtime, and a long outage is dialled every
        ``reconnect_max``; each pause is spread by +-:data:`_JITTER` so that the workers of a
        restarted master do not all dial at once. (Doubling pauses dial 1.55 s and 2.55 s
        after the loss: a master back after 1.6 s would wait almost another second for its
        workers.)
        """
        now = self.clock.monotonic()
        since = now if failing_since is None else failing_since
        pause = min(max((now - since) * _BACKOFF_SHARE, self.options.reconnect_min),
                    self.options.reconnect_max)
        pause *= 1 + _JITTER * (2 * self.service_random.random() - 1)  # workers not in step
        gevent.sleep(pause)  # a reconnect backoff, not a wait for a condition
        return since

    @handles(_RegistrationState)
    def _registration_state(self, msg: _RegistrationState):
        # every attempt not reported yet, exited ones whose output is still being read too:
        # the master requeues what a registration leaves out (never delivered), and declares
        # lost what a previous life of this worker started but never reported
        return tuple(self.attempts), tuple(self.unacked.values()), tuple(self.lost_before)

    @handles(_Connected)
    def _connected(self, msg: _Connected) -> None:
        self.endpoint, self.master = msg.endpoint, msg.endpoint.remote
        log.info("registered with the master at %s:%d", *self.options.master)
        for ref in msg.reported:  # reported in the registration: the master has them
            self.unacked.pop(ref, None)
        self._save_reports()
        for result in list(self.unacked.values()):  # finished while we were registering
            self._send_result(result)
        self._resend_service_states()
        self._stop_if_drained()

    @handles(_Disconnected)
    def _disconnected(self, msg: _Disconnected) -> None:
        if self.endpoint is msg.endpoint:
            self.endpoint, self.master = None, None
            log.warning("lost the master; reconnecting")

    @handles(_Beat)
    def _beat(self, msg: _Beat) -> None:
        self._check_burst_parent()
        if self.master is not None:
            self._tell_master(w.Heartbeat(tuple(self.attempts), self.draining))
            self._resend_service_states()  # a report dropped on a full link is repaired here

    def _tell_master(self, message: Any) -> None:
        try:
            self.master.tell(message, timeout=0.5)
        except Exception as error:  # the connect loop notices a broken link
            log.debug("could not tell the master %s: %s", type(message).__name__, error)

    @handles(Drain)
    def _drain(self, msg: Drain) -> None:
        if self.draining:
            return
        self.draining = True
        log.info("draining: %d attempts may run for %.0f s more", len(self.attempts),
                 self.options.drain_timeout)
        self._beat(_Beat())  # tell the master now, so that it sends no more work
        if self._stop_if_drained():
            return
        self.send_after(self.options.drain_timeout, _DrainExpired())
        self.send_after(self.options.drain_timeout + self.options.kill_grace + _REPORT_GRACE,
                        _DrainGiveUp())

    @handles(_DrainExpired)
    def _drain_expired(self, msg: _DrainExpired) -> None:
        for attempt in list(self.attempts.values()):
            if attempt.exit_code is not None:
                continue  # it ended (its output is still being read): report it, not hand it back
            attempt.handed_back = True
            if attempt.pid:
                self.launcher.kill(_key(attempt.ref), self.options.kill_grace)
            else:  # still preparing its project: hand it back without starting it
                attempt.exit_code, attempt.output_done = -9, True
                self._finalize(attempt)

    @handles(_DrainGiveUp)
    def _drain_give_up(self, msg: _DrainGiveUp) -> None:
        log.warning("stopping with %d attempts running and %d reports unacknowledged",
                    len(self.attempts), len(self.unacked) + len(self.handing_back))
        self.stop()

    def _stop_if_drained(self) -> bool:
        """Stop once draining and every attempt is over AND reported: stopping closes the
        connection, which would drop a completion or a hand-back still on its way."""
        if self.draining and not (self.attempts or self.unacked or self.handing_back):
            self.stop()
            return True
        return False

