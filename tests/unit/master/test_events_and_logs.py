"""The master's event stream (long-poll waiters on an injected clock) and its log store."""

from __future__ import annotations

from titan_actors.actors.clock import ManualClock
from titan_actors.actors.future import Future
from titan_actors.master.events import EventStream
from titan_actors.master.logs import TRUNCATION_MARKER, LogStore
from titan_actors.wire.messages.master import EventKind


def test_events_are_numbered_and_read_after_a_sequence_number():
    stream = EventStream(ManualClock(), last_seq=41)
    for n in range(3):
        stream.publish(EventKind.JOB, run_id="r1", job_id=f"j{n}")
    stream.publish(EventKind.JOB, run_id="r2", job_id="x")
    batch = stream.since(42)
    assert [e.seq for e in batch.events] == [43, 44, 45] and batch.last_seq == 45
    assert [e.job_id for e in stream.since(41, run_id="r2").events] == ["x"]
    assert not stream.since(45).events


def test_a_waiter_is_woken_by_the_next_matching_event_only():
    clock = ManualClock()
    stream = EventStream(clock)
    waiting = stream.wait(0, "r1", timeout=30)
    assert isinstance(waiting, Future) and not waiting.ready()
    stream.publish(EventKind.JOB, run_id="r2")
    assert not waiting.ready()
    stream.publish(EventKind.JOB, run_id="r1", job_id="a")
    assert [e.job_id for e in waiting.get(0).events] == ["a"]
    assert clock.pending_timers == 0  # its timeout timer was cancelled


def test_a_waiter_times_out_with_an_empty_batch():
    clock = ManualClock()
    stream = EventStream(clock)
    waiting = stream.wait(0, "", timeout=5)
    clock.advance(5)
    assert waiting.get(0).events == ()


def test_a_client_that_fell_behind_the_window_is_told_to_reset():
    stream = EventStream(ManualClock(), capacity=3)
    for _ in range(10):
        stream.publish(EventKind.WORKER, detail="x")
    batch = stream.since(2)
    assert batch.reset and [e.seq for e in batch.events] == [8, 9, 10]
    assert not stream.since(7).reset


def test_a_client_ahead_of_the_stream_is_told_to_reset_at_once():
    # a position from before a master restart: the new stream numbers from lower down
    clock = ManualClock()
    stream = EventStream(clock, last_seq=5)
    batch = stream.wait(40, "", timeout=30)
    assert not isinstance(batch, Future) and batch.reset and batch.last_seq == 5
    assert not stream.since(5).reset


def test_logs_append_read_by_offset_and_cap_with_a_marker(tmp_path):
    logs = LogStore(tmp_path, cap=10)
    assert logs.append("r", "j", b"hello ") == 6
    logs.append("r", "j", b"world, and more")
    data = logs.read("r", "j")
    assert data == b"hello worl" + TRUNCATION_MARKER and logs.truncated("r", "j")
    assert logs.append("r", "j", b"ignored") == 0
    assert logs.read("r", "j", offset=6, limit=4) == b"worl"
    assert logs.read("r", "missing") == b""
    logs.drop_run("r")
    assert logs.read("r", "j") == b"" and logs.runs_on_disk() == []


def test_log_sizes_survive_a_new_store(tmp_path):
    LogStore(tmp_path, cap=100).append("r", "j", b"x" * 60)
    again = LogStore(tmp_path, cap=100)
    again.append("r", "j", b"y" * 60)
    assert again.truncated("r", "j") and len(again.read("r", "j")) == 100 + len(TRUNCATION_MARKER)
