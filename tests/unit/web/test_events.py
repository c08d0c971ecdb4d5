"""The event hub: fan-out to subscribers, bounded queues (a slow one is dropped, the others go
on), resuming from the last sequence number after a reconnect, ``reload`` on a reset, and the
status fragments. A scripted event source stands in for the master; every wait is a
subscription's bounded ``get``."""

from __future__ import annotations

import json

import pytest

from support.web_fakes import ScriptedSource, job_event
from titan_actors.wire.messages.master import Event, EventBatch, EventKind
from titan_web.events import EventHub

DIRECT = lambda fn, *args: fn(*args)  # noqa: E731  (the fake source is gevent-friendly)


def messages(subscription, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
    """The next ``count`` messages as (event, data)."""
    out = []
    for _ in range(count):
        raw = subscription.get(timeout)
        assert raw is not None, f"only {len(out)} of {count} messages came: {out}"
        out.append(parse(raw))
    return out


def parse(raw: bytes) -> tuple[str, str]:
    event, data = "", []
    for line in raw.decode().splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return event, "\n".join(data)


def until(subscription, name: str, timeout: float = 5.0) -> str:
    """Skip messages until one named ``name``; return its data."""
    while True:
        raw = subscription.get(timeout)
        assert raw is not None, f"no {name!r} message within {timeout} s"
        event, data = parse(raw)
        if event == name:
            return data


@pytest.fixture
def hub():
    made: list[EventHub] = []

    def make(source: ScriptedSource, **kwargs) -> EventHub:
        kwargs.setdefault("call", DIRECT)
        made.append(EventHub(source.connect, long_poll=5.0, **kwargs))
        return made[-1]
    yield make
    for one in made:
        one.stop(timeout=2)


def test_a_batch_fans_out_to_everyone_and_run_events_to_that_runs_subscribers(hub):
    the_hub = hub(ScriptedSource())
    everyone, run1, run2 = the_hub.subscribe(), the_hub.subscribe("r1"), the_hub.subscribe("r2")
    the_hub.deliver(EventBatch((job_event(1), job_event(2, job_id="b"),
                                Event(3, 1003.0, EventKind.LOG, "r1", "a", attempt=1)), 3))
    assert messages(everyone, 2) == [("runs", '["r1"]'), ("workers", "[]")]
    first, second, log = messages(run1, 3)
    assert first[0] == "job" and json.loads(first[1])["job_id"] == "a"
    assert json.loads(second[1])["state"] == "running" and log[0] == "log"
    assert messages(run1, 2) == [("runs", '["r1"]'), ("workers", "[]")]
    assert messages(run2, 2) == [("runs", '["r1"]'), ("workers", "[]")]  # no r1 job events
    assert everyone.get(0) is None and run2.get(0) is None
    assert the_hub.last_seq == 3


def test_a_full_subscriber_is_dropped_and_the_others_get_everything(hub):
    the_hub = hub(ScriptedSource(), queue_size=4)
    slow, fast = the_hub.subscribe("r1"), the_hub.subscribe("r1")
    for seq in range(1, 6):  # 5 batches of 3 messages each: the slow one overflows at once
        the_hub.deliver(EventBatch((job_event(seq),), seq))
        assert len(messages(fast, 3)) == 3  # the fast one reads as it goes
    assert slow.dropped and the_hub.counters["dropped"] == 1
    assert slow.get(5.0) is None  # at once: its stream ends, the browser reconnects
    assert the_hub.subscribers == 1


def test_subscribers_beyond_the_maximum_are_refused(hub):
    the_hub = hub(ScriptedSource(), max_subscribers=2)
    assert the_hub.subscribe() and the_hub.subscribe()
    assert the_hub.subscribe() is None


def test_it_resumes_from_the_last_sequence_number_after_a_reconnect(hub):
    source = ScriptedSource(start_seq=10)
    the_hub = hub(source, retry=(0.001, 0.01)).start()
    watcher = the_hub.subscribe("r1")
    source.push(job_event(11), job_event(12))
    assert [json.loads(d)["seq"] for e, d in messages(watcher, 2)] == [11, 12]
    source.refuse = 2  # the next two connection attempts fail
    source.break_connection()
    source.push(job_event(13))  # delivered on the new connection, asked from 12
    assert json.loads(until(watcher, "job"))["seq"] == 13
    assert source.asked[:3] == [10, 12, 12]  # from where it was, on the new connection too
    assert source.connects == 2 and the_hub.live
    assert the_hub.last_seq == 13


def test_a_reset_tells_every_page_to_reload(hub):
    source = ScriptedSource(start_seq=5)
    the_hub = hub(source).start()
    page = the_hub.subscribe()
    source.push(last_seq=50, reset=True)  # fell behind the master's window (or it restarted)
    assert until(page, "reload")
    assert the_hub.counters["resets"] == 1
    source.push(job_event(51))
    assert json.loads(until(page, "runs")) == ["r1"]
    assert the_hub.last_seq == 51


def test_the_status_is_rendered_sent_on_change_and_primed_for_new_subscribers(hub):
    source = ScriptedSource()
    reads = []

    def snapshot(client) -> dict:
        reads.append(client)
        return {"n": len(reads)}

    the_hub = hub(source, snapshot=snapshot, refresh_interval=0.0,
                  render=lambda status: [("status", f"<b>{status['n']}</b>")]).start()
    early = the_hub.subscribe()
    assert until(early, "status") == "<b>1</b>"
    source.push(job_event(1))  # a job changed state: the status is read again
    assert until(early, "status") == "<b>2</b>"
    late = the_hub.subscribe()
    assert parse(late.get(0)) == ("status", "<b>2</b>")  # primed with the latest


def test_while_the_master_is_away_the_status_says_so(hub):
    source = ScriptedSource()
    source.refuse = 1_000_000
    the_hub = hub(source, snapshot=lambda client: "up", retry=(0.001, 0.01),
                  unreachable=lambda error: f"down: {error}",
                  render=lambda status: [("status", status)]).start()
    page = the_hub.subscribe()
    assert until(page, "status").startswith("down: could not connect")
    assert not the_hub.live


def test_dropping_a_stream_wakes_its_reader_at_once():
    import gevent

    from titan_web.events import Subscription
    subscription = Subscription("", size=4)
    reader = gevent.spawn(subscription.get, 30.0)
    gevent.idle()  # every ready greenlet runs until it blocks: the reader waits on the queue
    subscription.close()
    reader.join(timeout=2)
    assert reader.ready(), "the reader still waits for its 30 s timeout"
    assert reader.value is None and subscription.dropped
