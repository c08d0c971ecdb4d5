"""Routing (exact tags, pins, affinity, least-loaded, slots) and the ready queue's order."""

from __future__ import annotations

from unit.scheduler.helpers import T0, job

from titan_actors.scheduler import JobState


def test_tags_match_exactly(sched):
    sched.worker("gpu", "GPU")
    sched.worker("gen", "GENERAL")
    run = sched.submit(job("plain"), job("cuda", requirement="GPU"))
    assert sched.placed() == {"plain": "gen", "cuda": "gpu"}
    assert sched.states(run) == {"plain": JobState.RUNNING, "cuda": JobState.RUNNING}


def test_a_gpu_only_worker_takes_no_general_job(sched):
    sched.worker("gpu", "GPU", slots=4)
    run = sched.submit(job("plain"))
    assert sched.placed() == {}
    assert sched.s.waiting_reason(run, "plain") == "no worker with tag GENERAL"


def test_a_worker_with_both_tags_takes_both(sched):
    sched.worker("both", "GENERAL", "GPU", slots=2)
    sched.submit(job("plain"), job("cuda", requirement="GPU"))
    assert sched.placed() == {"plain": "both", "cuda": "both"}


def test_pinned_job_goes_only_to_its_worker(sched):
    sched.worker("w1", slots=3)
    sched.worker("w2", slots=3)
    run = sched.submit(job("p", worker="w2"), job("q"))
    assert sched.placed() == {"p": "w2", "q": "w1"}
    assert sched.s.job(run, "p").pinned == "w2"


def test_pinned_job_waits_for_its_worker_to_connect(sched):
    sched.worker("w1", slots=3)
    run = sched.submit(job("p", worker="w9"))
    assert sched.placed() == {}
    assert sched.s.waiting_reason(run, "p") == "pinned worker w9 is not connected"
    sched.worker("w9", "OTHER")  # a pin names the worker; its tags are not checked
    assert sched.placed() == {"p": "w9"}


def test_pinned_job_waits_while_its_worker_is_busy(sched):
    sched.worker("w1")
    sched.worker("w2", slots=2)
    run = sched.submit(job("a", worker="w1"), job("b", worker="w1"))
    assert sched.placed() == {"a": "w1"}
    assert sched.s.waiting_reason(run, "b") == "pinned worker w1 is busy"


def test_affinity_prefers_the_worker_that_ran_the_parent(sched):
    sched.worker("w1", slots=3)
    sched.worker("w2", slots=3)
    run = sched.submit(job("a"), job("b", "a", affinity=True), job("c", "a"),
                       job("hog", "a", priority=9))
    assert sched.placed() == {"a": "w1"}
    sched.finish(run, "a")
    # hog goes first, to w1 (both idle: by name); then b to w1 although w2 is less loaded,
    # and c (no affinity) to the least loaded, w2
    assert sched.placed(T0 + 1) == {"hog": "w1", "b": "w1", "c": "w2"}


def test_affinity_falls_back_when_the_parents_worker_is_full(sched):
    sched.worker("w1")
    sched.worker("w2")
    run = sched.submit(job("a"), job("b", "a", affinity=True), job("x", priority=9))
    assert sched.placed() == {"x": "w1", "a": "w2"}
    sched.finish(run, "a")  # ran on w2, which is now free; w1 still busy with x
    sched.submit(job("y", priority=9), now=T0 + 1)
    assert sched.placed(T0 + 1) == {"y": "w2"}  # higher priority first, takes w2
    sched.finish(run, "x")
    assert sched.placed(T0 + 2) == {"b": "w1"}


def test_least_loaded_worker_first_ties_by_name(sched):
    sched.worker("w2", slots=3)
    sched.worker("w1", slots=3)
    sched.worker("w3", slots=3)
    sched.submit(*(job(f"j{i}") for i in range(5)))
    assert sched.placed() == {"j0": "w1", "j1": "w2", "j2": "w3", "j3": "w1", "j4": "w2"}


def test_slots_limit_concurrent_jobs_and_free_up_on_finish(sched):
    sched.worker("w", slots=2)
    run = sched.submit(*(job(f"j{i}") for i in range(4)))
    assert list(sched.placed()) == ["j0", "j1"]
    assert sched.placed() == {}
    assert sched.s.waiting_reason(run, "j2") == "all capable workers busy"
    sched.finish(run, "j0")
    assert list(sched.placed()) == ["j2"]


def test_zero_slot_worker_takes_nothing(sched):
    sched.worker("w", slots=0)
    sched.submit(job("a"))
    assert sched.placed() == {}


def test_removed_worker_gets_no_more_jobs(sched):
    sched.worker("w1")
    sched.worker("w2")
    sched.remove_worker("w1")
    sched.submit(job("a"), job("b"))
    assert sched.placed() == {"a": "w2"}


def test_a_job_no_worker_can_take_does_not_block_the_others(sched):
    sched.worker("w", slots=5)
    run = sched.submit(job("first", requirement="GPU", priority=9), job("pinned", worker="x",
                       priority=9), job("after"), job("later"))
    assert sched.placed() == {"after": "w", "later": "w"}
    assert sched.states(run)["first"] is JobState.QUEUED


def test_higher_priority_first_then_fifo(sched):
    sched.worker("w", slots=1)
    run = sched.submit(job("low1", priority=1), job("high", priority=5), job("low2", priority=1),
                       job("mid", priority=3))
    order = []
    for n in range(4):
        [a] = sched.assign(T0 + n)
        order.append(a.job_id)
        sched.finish(run, a.job_id, now=T0 + n)
    assert order == ["high", "mid", "low1", "low2"]


def test_fifo_by_the_time_a_job_became_queued_then_submission_order(sched):
    sched.worker("w", slots=1)
    run = sched.submit(job("blocker"), job("late", "blocker"), job("early"), job("early2"))
    sched.submit(job("other"), now=T0 + 1)
    assert sched.placed(T0 + 2) == {"blocker": "w"}
    sched.finish(run, "blocker", now=T0 + 3)  # "late" becomes queued at T0+3, after "other"
    order = []
    for n in range(4):
        [a] = sched.assign(T0 + 4 + n)
        order.append(a.job_id)
        sched.finish(a.run_id, a.job_id, now=T0 + 4 + n)
    assert order == ["early", "early2", "other", "late"]


def test_across_lanes_the_better_head_goes_first(sched):
    sched.worker("both", "GENERAL", "GPU", slots=1)
    run = sched.submit(job("g1"), job("cuda", requirement="GPU", priority=2), job("g2"))
    got = []
    for n in range(3):
        [a] = sched.assign(T0 + n)
        got.append(a.job_id)
        sched.finish(run, a.job_id, now=T0 + n)
    assert got == ["cuda", "g1", "g2"]


def test_waiting_reason_when_a_capable_worker_is_free(sched):
    sched.worker("w")
    run = sched.submit(job("a"))
    assert sched.s.waiting_reason(run, "a") == "ready, waiting for dispatch"
    sched.assign()
    assert sched.s.waiting_reason(run, "a") == ""
