"""The gevent-free blocking client (what the SDK and titanctl use) against a gevent server.

The client runs in a native thread of gevent's threadpool, as it would in an unpatched program,
while the server runs on the hub of the test process.
"""

from __future__ import annotations

import os
import sys

import gevent
import pytest
from gevent.event import Event

from support import closed_port
from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.errors import (
    AskTimeoutError,
    BrokenError,
    HandshakeError,
    PermissionDeniedError,
    UsageError,
)
from titan_actors.wire.auth import JobToken, KeyRing
from titan_actors.wire.blocking import BlockingClient
from titan_actors.wire.messages.control import Ping, Pong
from titan_actors.wire.messages.handshake import JobTokenClaims
from titan_actors.wire.registry import Message, message
from titan_actors.wire.roles import Capability, Role
from titan_actors.wire.server import ActorServer


@message(64101, requires=Capability.SUBMIT)
class Shout(Message):
    text: str


@message(64102, requires=Capability.DECIDE_GATES)
class Decide(Message):
    gate: str


@message(64103, requires=Capability.EXTEND_OWN_RUN)
class AddToRun(Message):
    RUN_SCOPE = "run_id"  # a job may only act on its own run
    run_id: str


class Target(Actor):
    def __init__(self, hold: Event) -> None:
        super().__init__()
        self.hold = hold

    @handles(Ping)
    def _ping(self, msg: Ping, sender) -> Pong:
        return Pong(msg.payload, sender.peer.identity, f"{sender.peer.role.name}:"
                    f"{sender.peer.run_id}/{sender.peer.job_id}")

    @handles(Shout)
    def _shout(self, msg: Shout) -> Shout:
        if not msg.text:
            raise UsageError("text must not be empty")
        if msg.text == "slow":
            self.hold.wait(10)
        return Shout(msg.text.upper())

    @handles(Decide)
    def _decide(self, msg: Decide) -> None:
        return None

    @handles(AddToRun)
    def _add(self, msg: AddToRun) -> str:
        return None


def in_thread(function, *args):
    """Run blocking code in a native thread while the hub keeps serving."""
    return gevent.get_hub().threadpool.apply(function, args)


@pytest.fixture
def served():
    system = ActorSystem()
    hold = Event()
    servers = []

    def serve(**kwargs):
        server = ActorServer(system.spawn(Target, hold), **kwargs).start()
        servers.append(server)
        return server.address
    yield serve
    hold.set()
    for server in servers:
        server.stop(timeout=2)
    system.stop_all(timeout=5)


def test_blocking_client_asks_and_maps_errors(served):
    host, port = served()

    def work():
        with BlockingClient(host, port, identity="cli", timeout=5) as client:
            pong = client.ask(Ping(b"p"))
            shout = client.ask(Shout("hi"))
            with pytest.raises(UsageError, match="must not be empty"):
                client.ask(Shout(""))
            return pong, shout, client.ask(Decide("g"))
    pong, shout, decided = in_thread(work)
    assert pong.identity == "cli" and shout == Shout("HI") and decided is None


def test_blocking_client_times_out_and_connection_errors_are_named(served):
    host, port = served()

    def work():
        with BlockingClient(host, port, timeout=5) as client:
            with pytest.raises(AskTimeoutError):
                client.ask(Shout("slow"), timeout=0.2)
        with pytest.raises(BrokenError, match="could not connect"):
            BlockingClient("127.0.0.1", closed_port(), timeout=2)
        return True
    assert in_thread(work)


def test_job_token_scopes_a_job_and_forbids_gates(served):
    keys = KeyRing(os.urandom(32))
    host, port = served(keys=keys)
    claims = JobTokenClaims("run-1", "fetch", 2, 4_000_000_000.0, os.urandom(8))
    token = JobToken.parse(keys.mint_job_token(claims))

    def work():
        with BlockingClient(host, port, token=token, identity="job", timeout=5) as client:
            pong = client.ask(Ping(b""))
            with pytest.raises(PermissionDeniedError, match="may not send Decide"):
                client.ask(Decide("gate"))
            assert client.ask(AddToRun("run-1")) is None
            with pytest.raises(PermissionDeniedError, match="scoped to run 'run-1'"):
                client.ask(AddToRun("run-2"))
            return pong
    assert in_thread(work).software == "JOB:run-1/fetch"


def test_expired_or_forged_tokens_are_refused(served):
    keys = KeyRing(os.urandom(32))
    host, port = served(keys=keys)
    expired = JobToken.parse(keys.mint_job_token(
        JobTokenClaims("run-1", "a", 1, 1.0, b"n")))
    other_cluster = KeyRing(os.urandom(32))
    forged = JobToken.parse(other_cluster.mint_job_token(
        JobTokenClaims("run-1", "a", 1, 4_000_000_000.0, b"n")))

    def work():
        errors = []
        for token in (expired, forged):
            with pytest.raises(HandshakeError) as caught:
                BlockingClient(host, port, token=token, timeout=5)
            errors.append(str(caught.value))
        with pytest.raises(HandshakeError, match="requires the cluster key"):
            BlockingClient(host, port, role=Role.CLIENT, timeout=5)
        return errors
    expired_error, forged_error = in_thread(work)
    assert "expired" in expired_error
    assert "failed to prove" in forged_error or "keys differ" in forged_error


def test_importing_the_blocking_client_needs_no_gevent():
    import subprocess
    code = ("import sys, titan_actors.wire.blocking, titan_actors.wire.messages; "
            "sys.exit(1 if 'gevent' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
