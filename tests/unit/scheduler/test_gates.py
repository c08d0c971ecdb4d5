"""Gates in the scheduler: hitl_message, waiting, decisions, deadlines, replay."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, job

from titan_actors.errors import InvalidTransitionError
from titan_actors.scheduler import JobKind, JobSpec, JobState, RunState
from titan_actors.scheduler.gates import expand_hitl
from titan_actors.scheduler.views import run_state

W = JobState.WAITING


def gate(gate_id: str, *parents: str, wait: float = 900.0) -> JobSpec:
    return JobSpec(gate_id, kind=JobKind.GATE, parents=parents, message="Ship it?",
                   max_wait_seconds=wait)


def test_hitl_message_puts_a_gate_after_the_job_and_repoints_its_children():
    jobs = expand_hitl([job("train", hitl_message="Deploy?", max_wait_seconds=60),
                        job("deploy", "train"), job("other")])
    assert [j.id for j in jobs] == ["train", "hitl-gate-train", "deploy", "other"]
    gate_spec = jobs[1]
    assert (gate_spec.kind, gate_spec.parents, gate_spec.message, gate_spec.max_wait_seconds) \
        == (JobKind.GATE, ("train",), "Deploy?", 60)
    assert jobs[2].parents == ("hitl-gate-train",)


def test_a_gate_waits_once_its_parents_are_done_and_holds_no_slot(sched):
    sched.worker("w1")
    run = sched.submit(job("a"), gate("g", "a"), job("b", "g"))
    assert sched.placed() == {"a": "w1"}
    sched.finish(run, "a", now=T0 + 1)
    view = sched.s.job(run, "g")
    assert (view.state, view.deadline, view.message) == (W, T0 + 1 + 900, "Ship it?")
    assert sched.placed() == {}  # the gate never takes a worker; b waits for it
    assert sched.s.waiting_gates() == [(run, "g")]
    assert run_state(sched.s._state.runs[run]) is RunState.ACTIVE


def test_approval_releases_the_children_and_records_who(sched):
    sched.worker("w1")
    run = sched.submit(gate("g"), job("b", "g"), job("c", "b"))
    assert sched.state(run, "g") is W  # no parents: waiting at once
    sched._keep(sched.s.decide_gate(run, "g", True, "alice (client)", "looks good", T0 + 5))
    view = sched.s.job(run, "g")
    assert (view.state, view.decided_by, view.comment) == \
        (JobState.APPROVED, "alice (client)", "looks good")
    assert "approved by alice (client) (looks good)" in view.reason
    assert sched.placed() == {"b": "w1"}
    with pytest.raises(InvalidTransitionError, match="decided already: approved by alice"):
        sched.s.decide_gate(run, "g", False, "bob", "", T0 + 6)
    sched.check_replay()


def test_rejection_skips_every_unfinished_descendant(sched):
    run = sched.submit(gate("g"), job("b", "g"), job("c", "b"), job("free"))
    sched._keep(sched.s.decide_gate(run, "g", False, "ops", "not today", T0))
    assert sched.states(run) == {"g": JobState.REJECTED, "b": JobState.SKIPPED,
                                 "c": JobState.SKIPPED, "free": JobState.QUEUED}
    assert f"gate {run}/g was rejected" in sched.s.job(run, "b").reason
    sched.check_replay()


def test_the_deadline_times_the_gate_out(sched):
    run = sched.submit(gate("g", wait=30), job("b", "g"))
    assert sched.s.next_due() == T0 + 30
    assert sched.due(T0 + 29.9) == []
    sched.due(T0 + 30)
    assert sched.states(run) == {"g": JobState.TIMED_OUT, "b": JobState.SKIPPED}
    assert "no decision within 30 s" in sched.s.job(run, "g").reason
    with pytest.raises(InvalidTransitionError, match="is timed_out"):
        sched.s.decide_gate(run, "g", True, "late", "", T0 + 31)
    sched.check_replay()


def test_a_pending_gate_or_a_job_cannot_be_decided(sched):
    run = sched.submit(job("a"), gate("g", "a"))
    with pytest.raises(InvalidTransitionError, match="not reached yet"):
        sched.s.decide_gate(run, "g", True, "x", "", T0)
    with pytest.raises(InvalidTransitionError, match="is a run job, not a gate"):
        sched.s.decide_gate(run, "a", True, "x", "", T0)


def test_a_waiting_gate_and_its_decision_survive_a_snapshot(sched):
    from titan_actors.scheduler import Scheduler
    run = sched.submit(gate("g"), gate("h"), job("b", "g"))
    sched._keep(sched.s.decide_gate(run, "h", True, "carol", "ok", T0 + 1))
    restored = Scheduler()
    for record in sched.s.snapshot():
        restored.apply(record)
    assert restored.job(run, "g").state is W and restored.next_due() == T0 + 900
    assert (restored.job(run, "h").decided_by, restored.job(run, "h").comment) == ("carol", "ok")
    restored.decide_gate(run, "g", True, "dave", "", T0 + 2)
    assert restored.job(run, "b").state is JobState.QUEUED


def test_jobs_submitted_later_wait_for_the_gate_of_their_parent(sched):
    sched.worker("w1")
    run = sched.submit(job("train", hitl_message="Deploy?"))
    sched.placed()
    sched.finish(run, "train")
    assert sched.state(run, "hitl-gate-train") is W

    later = sched.submit(job("deploy", "train"), now=T0 + 1)
    sched.add(run, job("deploy-too", "train"))

    assert sched.s.job(later, "deploy").parents == (f"{run}/hitl-gate-train",)
    assert sched.state(later, "deploy") is JobState.PENDING
    assert sched.s.job(run, "deploy-too").parents == ("hitl-gate-train",)
    assert sched.placed() == {}
    sched._keep(sched.s.decide_gate(run, "hitl-gate-train", True, "ops", "", T0 + 2))
    assert set(sched.placed()) <= {"deploy", "deploy-too"}
    sched.check_replay()
