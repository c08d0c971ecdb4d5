"""Layer 3: a worker against a scripted master that stops answering on a link that stays open
(what a partition, a half-open connection or a path losing only the master's frames looks like
from the worker: TCP reports nothing for minutes).

The worker pings the master every heartbeat interval; after a whole lease (the master's, from
the registration) without an answer it drops the link, dials again and registers, with what it
still runs, so the master can re-attach it (before the regression fix it kept heartbeating into
the void, the master never declared it lost, and dispatches sent down the dead path vanished).
"""

from __future__ import annotations

import time

from gevent.queue import Empty, Queue

from support import wait_until
from support.cluster import HEARTBEAT, job
from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.actors.future import Future
from titan_actors.actors.master import PeerGone
from titan_actors.actors.worker import WorkerActor, WorkerOptions
from titan_actors.actors.worker_link import _RegistrationState
from titan_actors.wire.messages import worker as w
from titan_actors.wire.messages.control import Ping, Pong
from titan_actors.wire.server import ActorServer

LEASE = 0.5


class Mute:
    """Tell the master to stop answering pings."""

    __slots__ = ()


class MuteMaster(Actor):
    """Answers registrations at once (lease :data:`LEASE`) and pings only while ``answering``;
    hands each registration to the test."""

    def __init__(self, registrations: Queue) -> None:
        super().__init__()
        self.registrations = registrations
        self.answering = True
        self.unanswered: list[Future] = []

    @handles(w.RegisterWorker)
    def _register(self, msg: w.RegisterWorker) -> w.Registered:
        self.registrations.put((msg, time.monotonic()))
        return w.Registered("master", HEARTBEAT, LEASE)

    @handles(Ping)
    def _ping(self, msg: Ping) -> Pong | Future:
        if self.answering:
            return Pong(msg.payload, "master", "test")
        self.unanswered.append(Future("a ping the master never answers"))
        return self.unanswered[-1]

    @handles(Mute)
    def _mute(self, msg: Mute) -> None:
        self.answering = False

    @handles(w.Heartbeat, w.JobStarted, w.JobOutput, w.JobFinished, PeerGone)
    def _ignored(self, msg) -> None:
        pass


def test_a_worker_whose_master_falls_silent_dials_again_after_the_lease(tmp_path):
    registrations = Queue(maxsize=10)
    system = ActorSystem()
    master = system.spawn(MuteMaster, registrations)
    server = ActorServer(master, identity="master").start()
    options = WorkerOptions("w1", server.address, tmp_path / "worker", slots=1,
                            heartbeat_interval=HEARTBEAT, reconnect_min=0.02, reconnect_max=0.2)
    worker = system.spawn(WorkerActor, options)
    go = tmp_path / "go"
    try:
        first, _ = registrations.get(timeout=5)
        assert first.running == ()
        link = next(iter(server.endpoints)).remote
        attempt = w.AttemptRef("r1", "x", 1, 1)
        link.tell(w.Dispatch(attempt, job("x", f"while [ ! -e {go} ]; do sleep 0.02; done"),
                             "", *server.address))
        wait_until(lambda: worker.ask(_RegistrationState(), timeout=5)[0] == (attempt,),
                   what="the attempt to start")
        # answered pings keep the link: no registration for three leases
        assert registrations.empty()
        assert not _registration_within(registrations, 3 * LEASE)

        silent_since = time.monotonic()
        master.ask(Mute(), timeout=5)
        again, at = registrations.get(timeout=LEASE + 10 * HEARTBEAT + 5)

        assert again.running == (attempt,)  # it registers with what it still runs
        assert LEASE * 0.9 <= at - silent_since <= LEASE + 10 * HEARTBEAT + 2
    finally:
        go.touch()
        server.stop(timeout=2)
        system.stop_all(timeout=10)


def _registration_within(registrations: Queue, seconds: float) -> bool:
    """Whether a registration arrives within ``seconds`` (a bounded wait on the queue)."""
    try:
        registrations.get(timeout=seconds)
    except Empty:
        return False
    return True
