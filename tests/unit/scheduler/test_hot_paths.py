"""The shortcuts of the per-job paths give the answers of the long way: job ids held by one
run or several, a run's view after jobs are added or runs forgotten, the master's cheap
queries, dispatch with no free slot or a lane nobody can serve, and the number checks."""

from __future__ import annotations

import enum
import gc
import math

import pytest
from unit.scheduler.helpers import T0, job

from titan_actors.errors import SubmissionError, UnknownJobError, UnknownRunError
from titan_actors.scheduler import JobState, RunState
from titan_actors.scheduler.dag import field_problems


def test_a_job_id_held_by_several_runs_resolves_to_the_newest_left(sched):
    sched.worker("w", slots=4)
    runs = [sched.submit(job("a"), job(f"only{n}"), now=T0 + n) for n in range(3)]
    for run in runs:
        sched.assign(T0 + 5)
        sched.finish(run, "a", now=T0 + 5)
        sched.finish(run, f"only{runs.index(run)}", now=T0 + 5)
    assert sched.s.resolve("a") == (runs[2], "a")
    sched.forget(runs[2], now=T0 + 6)
    assert sched.s.resolve("a") == (runs[1], "a")
    sched.forget(runs[0], now=T0 + 6)
    assert sched.s.resolve("a") == (runs[1], "a")
    assert sched.s.resolve("only1") == (runs[1], "only1")
    sched.forget(runs[1], now=T0 + 6)
    for ref in ("a", "only1"):
        with pytest.raises(UnknownJobError):
            sched.s.resolve(ref)
    newer = sched.submit(job("a"), now=T0 + 7)
    assert sched.s.resolve("a") == (newer, "a")


def test_a_run_view_lists_the_jobs_added_since_the_last_view(sched):
    run = sched.submit(job("a"))
    assert sched.s.run(run).jobs == ("a",)
    sched.add(run, job("b", "a"), job("c"))
    assert sched.s.run(run).jobs == ("a", "b", "c")
    assert [view.jobs for view in sched.s.runs()] == [("a", "b", "c")]


def test_a_forgotten_run_has_no_view_and_a_replayed_one_the_same_view(sched):
    sched.worker("w")
    run = sched.submit(job("a"))
    sched.assign()
    sched.finish(run, "a")
    assert sched.s.run(run).jobs == ("a",)
    sched.forget(run)
    with pytest.raises(UnknownRunError):
        sched.s.run(run)
    assert sched.s.runs() == []
    other = sched.submit(job("x"), job("y"), now=T0 + 1)
    assert sched.replayed().run(other) == sched.s.run(other)


def test_attempt_and_run_state_agree_with_the_views(sched):
    sched.worker("w")
    run = sched.submit(job("a"), job("b", "a"))
    [a] = sched.assign()
    assert sched.s.attempt(run, "a") == (JobState.RUNNING, a.attempt, a.epoch, "w")
    view = sched.s.job(run, "b")
    assert sched.s.attempt(run, "b") == (view.state, view.attempt, view.epoch, view.worker)
    assert sched.s.run_state(run) is sched.s.run(run).state is RunState.ACTIVE
    sched.finish(run, "a")
    sched.assign()
    sched.finish(run, "b")
    assert sched.s.run_state(run) is RunState.COMPLETED
    with pytest.raises(UnknownJobError):
        sched.s.attempt(run, "zz")
    with pytest.raises(UnknownRunError):
        sched.s.run_state("rnope")


def test_assign_with_every_slot_taken_changes_nothing(sched):
    sched.worker("w", slots=1)
    run = sched.submit(job("a"), job("b"))
    assert sched.placed() == {"a": "w"}
    assert sched.placed() == {}
    assert sched.states(run) == {"a": JobState.RUNNING, "b": JobState.QUEUED}


def test_a_lane_nobody_free_can_serve_does_not_stop_the_only_other_lane(sched):
    sched.worker("gpu", "GPU", slots=1)
    sched.worker("gen", "GENERAL", slots=2)
    run = sched.submit(job("c1", requirement="GPU", priority=9),
                       job("c2", requirement="GPU", priority=9), job("p1"), job("p2"), job("p3"))
    assert sched.placed() == {"c1": "gpu", "p1": "gen", "p2": "gen"}
    sched.finish(run, "p1")
    assert sched.placed() == {"p3": "gen"}  # c2 waits for the GPU; it blocks no one
    assert sched.states(run)["c2"] is JobState.QUEUED


class _Seconds(float):
    pass


class _Level(enum.IntEnum):
    HIGH = 5


@pytest.mark.parametrize(("fields", "problem"), [
    ({"delay": True}, "delay must be a number of seconds"),
    ({"timeout": math.nan}, "timeout must be a number of seconds"),
    ({"delay": math.inf}, "delay must be a number of seconds"),
    ({"delay": -0.5}, "delay must be a number of seconds"),
    ({"retries": False}, "retries must be a whole number"),
    ({"priority": _Level.HIGH}, "priority must be a whole number"),
    ({"delay": _Seconds(2.0)}, None),
    ({"delay": 3, "timeout": 0.25, "priority": 0, "retries": 0}, None),
])
def test_number_fields_are_checked_the_same_on_every_path(fields, problem):
    problems = field_problems(job("j", **fields), 1)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_a_big_submission_with_one_bad_number_is_refused_whole(sched):
    jobs = [job(f"j{n}", *([f"j{n - 1}"] if n else [])) for n in range(500)]
    jobs[250] = job("j250", "j249", timeout=-1.0)
    with pytest.raises(SubmissionError, match="j250': timeout must be"):
        sched.submit(*jobs)
    assert sched.s.runs() == []


@pytest.mark.parametrize("enabled", [True, False])
def test_a_submission_leaves_the_garbage_collector_as_it_found_it(sched, enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        sched.submit(job("a"), job("b", "a"))
        assert gc.isenabled() is enabled
        with pytest.raises(SubmissionError):
            sched.submit(job("x", "ghost"))
        assert gc.isenabled() is enabled
        run = sched.submit(job("c"), now=T0 + 1)
        sched.add(run, job("d", "c"))
        with pytest.raises(SubmissionError):
            sched.add(run, job("d"))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
