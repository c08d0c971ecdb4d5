"""One test per arrow of the run-job life (DESIGN.md, "Jobs, DAGs and their states")."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, job

from titan_actors.scheduler import CompatStatus, JobState, JobTransition, compat_status

P, Q, R = JobState.PENDING, JobState.QUEUED, JobState.RUNNING


def test_submitted_with_unfinished_parents_is_pending(sched):
    run = sched.submit(job("a"), job("b", "a"))
    assert sched.states(run) == {"a": Q, "b": P}
    assert sched.s.waiting_reason(run, "b") == "waiting for parents a"


def test_submitted_with_a_delay_is_pending_until_not_before(sched):
    run = sched.submit(job("a", delay=30.0))
    view = sched.s.job(run, "a")
    assert (view.state, view.not_before) == (P, T0 + 30.0)
    assert sched.s.waiting_reason(run, "a").startswith("delayed until 2023-11-14T22:")


def test_submitted_root_without_delay_is_queued(sched):
    run = sched.submit(job("a"))
    assert sched.state(run, "a") is Q


def test_pending_becomes_queued_when_the_last_parent_completes(sched):
    sched.worker("w", slots=2)
    run = sched.submit(job("a"), job("b"), job("c", "a", "b"))
    sched.assign()
    sched.finish(run, "a")
    assert sched.state(run, "c") is P
    assert sched.s.waiting_reason(run, "c") == "waiting for parents b"
    records = sched.finish(run, "b", now=T0 + 5)
    assert [(r.job_id, r.state) for r in records] == [("b", JobState.COMPLETED), ("c", Q)]
    assert sched.s.job(run, "c").queued_at == T0 + 5


def test_pending_with_delay_becomes_queued_when_the_delay_is_over(sched):
    sched.worker("w")
    run = sched.submit(job("a"), job("b", "a", delay=10.0))
    sched.assign()
    sched.finish(run, "a", now=T0 + 1)
    assert sched.s.job(run, "b").not_before == T0 + 11  # counted from the parent's completion
    assert sched.due(T0 + 10.9) == []
    assert [r.state for r in sched.due(T0 + 11)] == [Q]


def test_queued_becomes_running_with_attempt_and_lease_epoch(sched):
    sched.worker("w", slots=2)
    run = sched.submit(job("a"), job("b"))
    assignments = sched.assign(T0 + 1)
    assert [(a.job_id, a.worker, a.attempt, a.epoch) for a in assignments] == [
        ("a", "w", 1, 1), ("b", "w", 1, 2)]
    assert isinstance(assignments[0].record, JobTransition)
    assert assignments[0].spec.id == "a"
    view = sched.s.job(run, "a")
    assert (view.state, view.attempt, view.epoch, view.worker, view.started_at) == (
        R, 1, 1, "w", T0 + 1)


def test_exit_zero_completes_and_reevaluates_children(sched):
    sched.worker("w")
    run = sched.submit(job("a"), job("b", "a"), job("c", "a"))
    sched.assign()
    records = sched.finish(run, "a", now=T0 + 2)
    assert [(r.job_id, r.prior, r.state) for r in records] == [
        ("a", R, JobState.COMPLETED), ("b", P, Q), ("c", P, Q)]
    view = sched.s.job(run, "a")
    assert (view.exit_code, view.finished_at, view.status) == (0, T0 + 2, "COMPLETED")


def test_nonzero_exit_with_attempts_left_fails_then_queues_after_backoff(sched):
    sched.worker("w")
    run = sched.submit(job("a", retries=1))
    sched.assign()
    [failed] = sched.finish(run, "a", code=3, now=T0 + 1)
    assert (failed.state, failed.exit_code, failed.not_before) == (JobState.FAILED, 3, T0 + 2)
    assert sched.s.job(run, "a").status is CompatStatus.PENDING
    assert sched.s.waiting_reason(run, "a").startswith("backoff until")
    assert [r.state for r in sched.due(T0 + 2)] == [Q]
    [again] = sched.assign(T0 + 2)
    assert (again.attempt, again.epoch) == (2, 2)


def test_timeout_or_lost_lease_is_a_failed_attempt(sched):
    sched.worker("w")
    run = sched.submit(job("a", retries=1))
    sched.assign()
    [failed] = sched.lose(run, "a", reason="timeout after 5 s")
    assert (failed.state, failed.reason, failed.exit_code) == (
        JobState.FAILED, "timeout after 5 s", None)


def test_running_with_no_attempts_left_is_dead_and_descendants_skipped(sched):
    sched.worker("w")
    run = sched.submit(job("a", retries=0), job("b", "a"), job("c", "b"), job("x"))
    sched.assign()
    records = sched.finish(run, "a", code=1)
    assert [(r.job_id, r.state) for r in records] == [
        ("a", JobState.DEAD), ("b", JobState.SKIPPED), ("c", JobState.SKIPPED)]
    assert records[1].reason == f"upstream {run}/a is dead"
    assert sched.state(run, "x") is Q
    assert sched.s.job(run, "a").status is CompatStatus.DEAD


def test_failed_job_dies_after_its_last_retry(sched):
    sched.worker("w")
    run = sched.submit(job("a", retries=2))
    for n in range(3):
        sched.assign(T0 + 100 * n)
        sched.finish(run, "a", code=1, now=T0 + 100 * n)
        sched.due(T0 + 100 * n + 99)
    view = sched.s.job(run, "a")
    assert (view.state, view.attempt, view.attempts_left) == (JobState.DEAD, 3, 0)


@pytest.mark.parametrize("where", ["pending", "queued", "running"])
def test_cancel_from_each_unfinished_state_cascades_to_descendants(sched, where):
    sched.worker("w")
    run = sched.submit(job("p"), job("a", "p"), job("b", "a"))
    if where != "pending":
        sched.assign()
        sched.finish(run, "p")
    if where == "running":
        sched.assign()
    assert sched.state(run, "a").value == where
    records = sched.cancel(run, "a")
    assert [(r.job_id, r.prior.value, r.state) for r in records] == [
        ("a", where, JobState.CANCELLED), ("b", "pending", JobState.CANCELLED)]
    assert (records[0].worker != "") is (where == "running")
    assert sched.s.job(run, "a").status is CompatStatus.CANCELLED


def test_pending_child_of_a_dead_parent_in_another_run_is_skipped(sched):
    sched.worker("w")
    first = sched.submit(job("a", retries=0))
    second = sched.submit(job("b", "a"), now=T0 + 1)
    sched.assign()
    records = sched.finish(first, "a", code=1)
    assert (records[-1].run_id, records[-1].state) == (second, JobState.SKIPPED)


def test_new_child_of_an_already_dead_parent_is_skipped_at_once(sched):
    sched.worker("w")
    first = sched.submit(job("a", retries=0))
    sched.assign()
    sched.finish(first, "a", code=1)
    second = sched.submit(job("b", "a"), job("c", "b"), now=T0 + 1)
    assert sched.states(second) == {"b": JobState.SKIPPED, "c": JobState.SKIPPED}
    assert sched.s.job(second, "b").reason == f"parent {first}/a is dead"


def test_hand_back_requeues_without_counting_the_attempt(sched):
    sched.worker("w")
    run = sched.submit(job("a", retries=0))
    [first] = sched.assign()
    [back] = sched.hand_back(run, "a", now=T0 + 1)
    assert (back.prior, back.state, back.attempt) == (R, Q, 0)
    assert back.reason == "handed back by worker w"
    [second] = sched.assign(T0 + 2)
    assert (second.attempt, second.epoch) == (1, first.epoch + 1)
    sched.finish(run, "a", code=1)
    assert sched.state(run, "a") is JobState.DEAD  # still its one allowed attempt


@pytest.mark.parametrize("state, status", [
    ("pending", "PENDING"), ("queued", "PENDING"), ("failed", "PENDING"),
    ("running", "RUNNING"), ("waiting", "RUNNING"), ("starting", "RUNNING"),
    ("completed", "COMPLETED"), ("approved", "COMPLETED"), ("ready", "COMPLETED"),
    ("restarting", "COMPLETED"), ("dead", "DEAD"), ("skipped", "DEAD"), ("rejected", "DEAD"),
    ("timed_out", "DEAD"), ("cancelled", "CANCELLED"), ("stopped", "CANCELLED")])
def test_compat_status_mapping(state, status):
    assert compat_status(JobState(state)) == status
