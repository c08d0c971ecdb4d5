"""Delays, backoff, next_due and due: the master's one timer."""

from __future__ import annotations

import random

import pytest
from unit.scheduler.helpers import T0, Harness, job

from titan_actors.scheduler import Backoff, JobState


def test_backoff_doubles_from_the_base_and_is_capped():
    backoff = Backoff(base=2.0, cap=10.0, jitter=0.0)
    rng = random.Random(1)
    assert [backoff.delay(n, rng) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay(10_000, rng) == 10.0  # no overflow for absurd attempt numbers


def test_backoff_jitter_stays_within_its_fraction_and_follows_the_rng():
    backoff = Backoff(base=1.0, cap=60.0, jitter=0.1)
    draws = [backoff.delay(4, random.Random(seed)) for seed in range(200)]
    assert all(7.2 <= d <= 8.8 for d in draws)
    assert len(set(draws)) > 100
    assert backoff.delay(4, random.Random(5)) == backoff.delay(4, random.Random(5))


@pytest.mark.parametrize("kwargs", [{"base": 0.0}, {"base": -1.0}, {"cap": 0.5},
                                    {"jitter": 1.0}, {"jitter": -0.1},
                                    {"base": float("nan")}])
def test_backoff_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_retry_not_before_carries_the_jitter_drawn_at_decision_time():
    h = Harness(jitter=0.5, seed=3)
    h.worker("w")
    run = h.submit(job("a", retries=5))
    expected = Backoff(base=1.0, cap=60.0, jitter=0.5).delay(1, random.Random(3))
    h.assign()
    [failed] = h.finish(run, "a", code=1, now=T0 + 10)
    assert failed.not_before == pytest.approx(T0 + 10 + expected)
    assert failed.not_before != T0 + 11
    h.check_replay()  # the replayed state has the same not_before: no redraw on apply


def test_backoff_grows_with_each_failed_attempt(sched):
    sched.worker("w")
    run = sched.submit(job("a", retries=5))
    waits = []
    now = T0
    for _ in range(4):
        sched.assign(now)
        [failed] = sched.finish(run, "a", code=1, now=now)
        waits.append(failed.not_before - now)
        now = failed.not_before
        sched.due(now)
    assert waits == [1.0, 2.0, 4.0, 8.0]


def test_next_due_is_the_earliest_pending_not_before(sched):
    assert sched.s.next_due() is None
    sched.worker("w")
    run = sched.submit(job("slow", delay=50.0), job("fast", delay=5.0), job("now"))
    assert sched.s.next_due() == T0 + 5
    sched.assign()
    sched.finish(run, "now", code=1, now=T0 + 1)  # backoff 1 s: due at T0+2
    assert sched.s.next_due() == T0 + 2


def test_due_queues_exactly_what_came_due(sched):
    run = sched.submit(job("a", delay=5.0), job("b", delay=5.0), job("c", delay=9.0))
    assert sched.due(T0 + 4.999) == []
    records = sched.due(T0 + 5)
    assert [(r.job_id, r.prior, r.state) for r in records] == [
        ("a", JobState.PENDING, JobState.QUEUED), ("b", JobState.PENDING, JobState.QUEUED)]
    assert sched.s.next_due() == T0 + 9
    assert sched.due(T0 + 5) == []
    assert [r.job_id for r in sched.due(T0 + 100)] == ["c"]
    assert sched.s.next_due() is None
    assert sched.s.job(run, "c").queued_at == T0 + 100


def test_cancelled_or_retried_waits_leave_next_due(sched):
    sched.worker("w")
    run = sched.submit(job("a", delay=5.0), job("b", retries=1))
    sched.assign()
    sched.finish(run, "b", code=1, now=T0)  # b: backoff until T0+1
    sched.cancel(run, "a")
    assert sched.s.next_due() == T0 + 1
    sched.retry(run, "b", now=T0 + 0.5)  # a manual retry skips the backoff
    assert sched.state(run, "b") is JobState.QUEUED
    assert sched.s.next_due() is None
    assert sched.due(T0 + 10) == []


def test_queued_jobs_are_not_due(sched):
    sched.submit(job("a"))
    assert sched.s.next_due() is None
    assert sched.due(T0 + 1000) == []
