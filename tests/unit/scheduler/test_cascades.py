"""Cancel and retry, and how they spread to descendants (in any run)."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, job

from titan_actors.errors import InvalidTransitionError, UnknownJobError, UnknownRunError
from titan_actors.scheduler import JobReset, JobState, RunState

C, D, K, P, Q, S = (JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED, JobState.PENDING,
                    JobState.QUEUED, JobState.SKIPPED)


def test_cancel_whole_run_cancels_every_unfinished_job(sched):
    sched.worker("w")
    run = sched.submit(job("a"), job("b"), job("c", "a"), job("d", "b", delay=3.0))
    sched.assign()
    sched.finish(run, "a")
    sched.assign()  # b runs
    records = sched.cancel(run)
    assert {r.job_id: r.prior for r in records} == {
        "b": JobState.RUNNING, "c": JobState.QUEUED, "d": P}
    assert sched.states(run) == {"a": C, "b": K, "c": K, "d": K}
    assert sched.s.run(run).state is RunState.CANCELLED
    assert sched.cancel(run) == []  # nothing left to cancel


def test_cancel_reaches_descendants_in_other_runs(sched):
    first = sched.submit(job("a"))
    second = sched.submit(job("b", "a"), job("c", "b"), now=T0 + 1)
    records = sched.cancel(first, "a")
    assert [(r.run_id, r.job_id) for r in records] == [
        (first, "a"), (second, "b"), (second, "c")]
    assert records[1].reason == f"upstream {first}/a cancelled"


def test_cancel_a_finished_job_is_refused(sched):
    sched.worker("w")
    run = sched.submit(job("a"))
    sched.assign()
    sched.finish(run, "a")
    with pytest.raises(InvalidTransitionError, match="is completed"):
        sched.s.cancel(run, "a", T0)
    with pytest.raises(UnknownJobError):
        sched.s.cancel(run, "zz", T0)
    with pytest.raises(UnknownRunError):
        sched.s.cancel("rnope", None, T0)


def test_cancel_a_failed_job_waiting_for_its_backoff(sched):
    sched.worker("w")
    run = sched.submit(job("a"))
    sched.assign()
    sched.finish(run, "a", code=2)
    [record] = sched.cancel(run, "a")
    assert (record.prior, record.state) == (JobState.FAILED, K)
    assert sched.s.next_due() is None


def test_retry_dead_job_gets_fresh_attempts_and_revives_skipped_descendants(sched):
    sched.worker("w", slots=2)
    run = sched.submit(job("a", retries=0), job("b", "a"), job("c", "b"), job("x"))
    sched.assign()
    sched.finish(run, "a", code=1)
    assert sched.states(run) == {"a": D, "b": S, "c": S, "x": JobState.RUNNING}
    records = sched.retry(run, "a", now=T0 + 5)
    assert [type(r).__name__ for r in records] == [
        "JobReset", "JobReset", "JobReset", "JobTransition"]
    assert sched.states(run) == {"a": Q, "b": P, "c": P, "x": JobState.RUNNING}
    view = sched.s.job(run, "a")
    assert (view.attempt, view.attempts_left) == (1, 1)
    [again] = [a for a in sched.assign(T0 + 6) if a.job_id == "a"]
    assert again.attempt == 2  # attempt numbers keep counting, so old reports stay stale
    sched.finish(run, "a")
    sched.assign(T0 + 7)
    sched.finish(run, "b")
    assert sched.state(run, "c") is Q


def test_retry_revives_cancelled_descendants_too(sched):
    run = sched.submit(job("a"), job("b", "a"))
    sched.cancel(run, "a")
    sched.retry(run, "a")
    assert sched.states(run) == {"a": Q, "b": P}


def test_retry_leaves_descendants_that_another_dead_parent_holds_back(sched):
    sched.worker("w", slots=2)
    run = sched.submit(job("a", retries=0), job("b", retries=0), job("c", "a", "b"),
                       job("d", "c"), job("e", "a"))
    sched.assign()
    sched.finish(run, "a", code=1)
    sched.finish(run, "b", code=1)
    sched.retry(run, "a")
    assert sched.states(run) == {"a": Q, "b": D, "c": S, "d": S, "e": P}


def test_retry_of_a_skipped_job_under_a_dead_parent_is_refused(sched):
    sched.worker("w")
    run = sched.submit(job("a", retries=0), job("b", "a"))
    sched.assign()
    sched.finish(run, "a", code=1)
    with pytest.raises(InvalidTransitionError, match="parent a is dead .retry that one first."):
        sched.s.retry(run, "b", T0)


@pytest.mark.parametrize("state", ["queued", "running", "completed"])
def test_retry_is_refused_for_unfinished_or_completed_jobs(sched, state):
    sched.worker("w")
    run = sched.submit(job("a"))
    if state != "queued":
        sched.assign()
    if state == "completed":
        sched.finish(run, "a")
    with pytest.raises(InvalidTransitionError, match=f"is {state}: only dead, cancelled"):
        sched.s.retry(run, "a", T0)


def test_retry_in_one_run_revives_skipped_children_in_another(sched):
    sched.worker("w")
    first = sched.submit(job("a", retries=0))
    second = sched.submit(job("b", "a"), now=T0 + 1)
    sched.assign()
    sched.finish(first, "a", code=1)
    assert sched.state(second, "b") is S
    records = sched.retry(first, "a")
    assert JobReset(second, "b", T0, f"retry of {first}/a") in records
    assert sched.state(second, "b") is P
    assert sched.s.run(second).state is RunState.ACTIVE
