"""Layer 1: one actor alone, asked and told; collaborators are plain objects."""

from __future__ import annotations

from dataclasses import dataclass

import gevent
import pytest
from gevent.event import Event

from support import wait_until
from titan_actors.actors import Actor, ActorSystem, Sender, handles
from titan_actors.actors.clock import ManualClock
from titan_actors.actors.future import Future
from titan_actors.actors.supervision import Supervision
from titan_actors.errors import (
    ActorDeadError,
    AskTimeoutError,
    MailboxFullError,
    NoHandlerError,
    UsageError,
)
from titan_actors.wire.registry import Lane


@dataclass(frozen=True, slots=True)
class Add:
    amount: int


@dataclass(frozen=True, slots=True)
class Get:
    pass


@dataclass(frozen=True, slots=True)
class Boom:
    pass


@dataclass(frozen=True, slots=True)
class Block:
    release: Event
    started: Event | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    LANE = Lane.BULK
    text: str


@dataclass(frozen=True, slots=True)
class Later:
    pass


@dataclass(frozen=True, slots=True)
class Tick:
    pass


class Counter(Actor):
    def __init__(self, journal: list, *, clock=None) -> None:
        super().__init__(clock=clock)
        self.total = 0
        self.journal = journal
        self.pending: Future | None = None

    def on_start(self) -> None:
        self.journal.append("start")

    def on_stop(self) -> None:
        self.journal.append("stop")

    def on_failure(self, error: BaseException) -> None:
        self.journal.append(f"failure:{type(error).__name__}")

    @handles(Add)
    def _add(self, msg: Add) -> int:
        if msg.amount < 0:
            raise UsageError("amount must be >= 0")
        self.total += msg.amount
        return self.total

    @handles(Get)
    def _get(self, msg: Get, sender: Sender) -> int:
        return self.total

    @handles(Boom)
    def _boom(self, msg: Boom) -> None:
        raise RuntimeError("boom")

    @handles(Block)
    def _block(self, msg: Block) -> str:
        if msg.started is not None:
            msg.started.set()
        msg.release.wait(5)
        return "released"

    @handles(LogLine)
    def _log(self, msg: LogLine) -> None:
        self.journal.append(msg.text)

    @handles(Later)
    def _later(self, msg: Later) -> Future:
        self.pending = Future()
        return self.pending

    @handles(Tick)
    def _tick(self, msg: Tick) -> None:
        self.journal.append("tick")


@pytest.fixture
def system():
    system = ActorSystem()
    yield system
    assert system.stop_all(timeout=5)


def test_ask_returns_the_handler_value_and_tells_keep_order(system):
    ref = system.spawn(Counter, [])
    for n in range(1, 6):
        ref.tell(Add(n))
    assert ref.ask(Get(), timeout=2) == 15


def test_handler_error_goes_to_the_asker_and_the_actor_goes_on(system):
    ref = system.spawn(Counter, [])
    with pytest.raises(UsageError, match="amount must be >= 0"):
        ref.ask(Add(-1), timeout=2)
    assert ref.ask(Add(2), timeout=2) == 2


def test_unknown_message_is_a_named_error(system):
    ref = system.spawn(Counter, [])
    with pytest.raises(NoHandlerError, match="no handler for str"):
        ref.ask("hello", timeout=2)


def test_ask_timeout_is_named(system):
    ref = system.spawn(Counter, [])
    release = Event()
    ref.tell(Block(release))
    with pytest.raises(AskTimeoutError):
        ref.ask(Get(), timeout=0.05)
    release.set()


def test_stop_handles_queued_messages_then_refuses(system):
    journal: list = []
    ref = system.spawn(Counter, journal)
    release = Event()
    ref.tell(Block(release))
    queued = ref.ask_async(Add(7), timeout=2)
    ref.stop(timeout=None)
    with pytest.raises(ActorDeadError):
        ref.tell(Add(1))
    release.set()
    assert queued.get(2) == 7
    wait_until(lambda: not ref.is_alive and journal[-1] == "stop", what="stop")
    assert journal == ["start", "stop"]


def test_crash_with_stop_policy_answers_pending_asks_with_actor_dead(system, greenlet_errors):
    journal: list = []
    ref = system.spawn(Counter, journal)
    release = Event()
    ref.tell(Block(release))
    ref.tell(Boom())
    pending = ref.ask_async(Get(), timeout=2)
    release.set()
    with pytest.raises(ActorDeadError, match="stopped before it handled Get"):
        pending.get(2)
    assert journal == ["start", "failure:RuntimeError"]
    assert not ref.is_alive


def test_restart_policy_keeps_ref_and_mailbox_until_budget_runs_out(system):
    journal: list = []
    ref = system.spawn(Counter, journal, supervision=Supervision.restart(2, within=60))
    ref.tell(Add(5))
    ref.tell(Boom())
    assert ref.ask(Get(), timeout=2) == 0  # a fresh instance, same ref
    ref.tell(Boom())
    assert ref.ask(Add(1), timeout=2) == 1
    ref.tell(Boom())  # third crash within the window: stop
    with pytest.raises(ActorDeadError):
        ref.ask(Get(), timeout=2)
    assert journal.count("start") == 3


def test_full_mailbox_makes_tell_wait_then_raise(system):
    ref = system.spawn(Counter, [], mailbox_size=2)
    release, started = Event(), Event()
    ref.tell(Block(release, started))
    assert started.wait(5)  # the actor took the Block message: the mailbox is empty again
    ref.tell(Add(1))
    ref.tell(Add(1))
    with pytest.raises(MailboxFullError, match="stayed full"):
        ref.tell(Add(1), timeout=0.05)
    release.set()
    assert ref.ask(Get(), timeout=2) == 2


def test_control_messages_overtake_a_flood_of_bulk_messages(system):
    journal: list = []
    ref = system.spawn(Counter, journal, bulk_mailbox_size=500)
    release = Event()
    ref.tell(Block(release))
    for n in range(100):
        ref.tell(LogLine(f"line {n}"))
    ref.tell(Tick())  # control, sent after the flood
    release.set()
    ref.ask(Get(), timeout=2)
    wait_until(lambda: "line 99" in journal, what="the flood handled")
    assert journal.index("tick") < journal.index("line 0")


def test_deferred_reply_leaves_the_actor_free(system):
    captured: list = []
    ref = system.spawn(Counter, captured)
    reply = ref.ask_async(Later(), timeout=2)
    assert ref.ask(Add(4), timeout=2) == 4  # not blocked by the pending reply
    assert not reply.ready()
    system.get(ref.name)._cell.instance.pending.set("done")
    assert reply.get(2) == "done"


def test_timers_are_messages_on_an_injected_clock(system):
    clock = ManualClock()
    journal: list = []
    ref = system.spawn(Counter, journal, clock=clock)
    ref.ask(Get(), timeout=2)
    actor = ref._cell.instance
    actor.send_after(5.0, Tick())
    periodic = actor.send_every(1.0, Add(1))
    clock.advance(4.5)
    assert ref.ask(Get(), timeout=2) == 4
    assert "tick" not in journal
    clock.advance(0.5)
    assert ref.ask(Get(), timeout=2) == 5
    assert "tick" in journal
    periodic.cancel()
    clock.advance(10)
    assert ref.ask(Get(), timeout=2) == 5
    ref.stop(timeout=2)
    assert clock.pending_timers == 0


def test_owned_greenlet_crash_is_an_actor_crash(system):
    journal: list = []
    ref = system.spawn(Counter, journal, supervision=Supervision.restart(1))
    ref.ask(Add(9), timeout=2)

    def fail() -> None:
        raise ValueError("owned greenlet failed")

    ref._cell.instance.spawn(fail)
    wait_until(lambda: "failure:ValueError" in journal, what="crash reported")
    assert ref.ask(Get(), timeout=2) == 0


def test_stop_all_kills_owned_greenlets(system):
    ref = system.spawn(Counter, [])
    ref.ask(Get(), timeout=2)
    forever = ref._cell.instance.spawn(Event().wait)
    assert system.stop_all(timeout=2)
    wait_until(lambda: forever.dead, what="owned greenlet killed")


def test_tell_to_a_dead_actor_raises(system):
    ref = system.spawn(Counter, [])
    ref.stop(timeout=2)
    with pytest.raises(ActorDeadError):
        ref.tell(Get())
    gevent.idle()


def test_a_stop_answers_a_pending_deferred_reply(system):
    ref = system.spawn(Counter, [])
    reply = ref.ask_async(Later(), timeout=30)
    ref.ask(Get(), timeout=2)
    ref.stop(timeout=2)
    with pytest.raises(ActorDeadError, match="deferred reply"):
        reply.get(2)  # at once, not after the ask's 30 s


def test_a_crash_answers_a_pending_deferred_reply_and_restarts(system):
    journal: list = []
    ref = system.spawn(Counter, journal, supervision=Supervision.restart(1))
    reply = ref.ask_async(Later(), timeout=30)
    ref.tell(Boom())
    with pytest.raises(ActorDeadError):
        reply.get(2)
    assert ref.ask(Get(), timeout=2) == 0


def test_a_greenlet_of_a_previous_instance_does_not_crash_the_next_one(system):
    journal: list = []
    ref = system.spawn(Counter, journal, supervision=Supervision.restart(1))
    ref.ask(Get(), timeout=2)
    old = ref._cell.instance
    ref.tell(Boom())  # restart: the old instance is replaced
    ref.ask(Get(), timeout=2)
    ref._cell.report_crash(RuntimeError("late"), "greenlet of the old instance", old)
    assert ref.ask(Add(1), timeout=2) == 1
    assert journal.count("failure:RuntimeError") == 1  # only the Boom
