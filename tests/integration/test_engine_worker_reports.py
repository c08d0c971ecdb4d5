"""Layer 3: a worker against a scripted master on a real socket: the exact order of its
registration and its reports, which a real master's timing would hide."""

from __future__ import annotations

from gevent.queue import Queue

from support import wait_until
from support.cluster import HEARTBEAT, job
from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.actors.future import Future
from titan_actors.actors.master import PeerGone
from titan_actors.actors.worker import WorkerActor, WorkerOptions
from titan_actors.actors.worker_link import _RegistrationState
from titan_actors.wire.messages import worker as w
from titan_actors.wire.server import ActorServer


class ScriptedMaster(Actor):
    """Hands each registration (message, deferred reply, worker ref) and each report to the
    test through queues; the test decides when a registration is answered."""

    def __init__(self, registrations: Queue, reports: Queue) -> None:
        super().__init__()
        self.registrations, self.reports = registrations, reports

    @handles(w.RegisterWorker)
    def _register(self, msg: w.RegisterWorker, sender) -> Future:
        reply = Future("registration")
        self.registrations.put((msg, reply, sender.ref))
        return reply

    @handles(w.JobFinished)
    def _finished(self, msg: w.JobFinished) -> None:
        self.reports.put(msg.result)

    @handles(w.Heartbeat, w.JobStarted, w.JobOutput, PeerGone)
    def _ignored(self, msg) -> None:
        pass


def test_a_job_that_ends_while_the_worker_registers_is_still_reported(tmp_path):
    registrations, reports = Queue(maxsize=10), Queue(maxsize=10)
    system = ActorSystem()
    master = system.spawn(ScriptedMaster, registrations, reports)
    server = ActorServer(master, identity="master").start()
    go = tmp_path / "go"
    options = WorkerOptions("w1", server.address, tmp_path / "worker", slots=1,
                            heartbeat_interval=HEARTBEAT, reconnect_min=0.02, reconnect_max=0.2)
    worker = system.spawn(WorkerActor, options)
    try:
        first, reply, link = registrations.get(timeout=5)
        assert first.running == () and first.finished == ()
        reply.set(w.Registered("master", HEARTBEAT, 1.0))
        attempt = w.AttemptRef("r1", "x", 1, 1)
        link.tell(w.Dispatch(attempt, job("x", f"while [ ! -e {go} ]; do sleep 0.02; done"),
                             "", *server.address))
        wait_until(lambda: worker.ask(_RegistrationState(), timeout=5)[0] == (attempt,),
                   what="the attempt to start")

        for endpoint in list(server.endpoints):  # the link breaks; the worker registers again
            endpoint.close()
        again, held, _ = registrations.get(timeout=5)
        assert again.running == (attempt,) and again.finished == ()
        go.touch()  # the job ends while that registration is unanswered
        wait_until(lambda: worker.ask(_RegistrationState(), timeout=5)[1],
                   what="the worker to hold the result")
        held.set(w.Registered("master", HEARTBEAT, 1.0))

        result = reports.get(timeout=5)  # reported on the new link, not forgotten
        assert result.ref == attempt and result.exit_code == 0
    finally:
        server.stop(timeout=2)
        system.stop_all(timeout=10)
