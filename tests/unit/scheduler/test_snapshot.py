"""Snapshots (AOF compaction): ``Scheduler.snapshot()`` is a short list of records that rebuilds
exactly the live state on a fresh scheduler, forgotten runs left out and counters never moving
backwards, and the records the scheduler returns afterwards apply on top of it."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.scheduler.helpers import T0, Harness, dag, job, snapshot
from unit.scheduler.test_replay import STEPS, World, check_invariants, next_decisions

from titan_actors.errors import InconsistentRecordError
from titan_actors.master import records as aof
from titan_actors.scheduler import (
    Counters,
    JobsRestored,
    JobState,
    JobTransition,
    RunRestored,
    RunSubmitted,
    Scheduler,
)

SNAPSHOT_TYPES = (Counters, RunRestored, JobsRestored)


def restored(h: Harness, records: list) -> Scheduler:
    """A fresh Scheduler fed ``records``, with the harness's live workers and rng state."""
    fresh = Scheduler(backoff=h.backoff, rng=random.Random())
    fresh._rng.setstate(h.s._rng.getstate())
    for record in records:
        fresh.apply(record)
    for name, tags, slots in h.workers:
        if slots < 0:
            fresh.remove_worker(name)
        else:
            fresh.set_worker(name, tags, slots)
    return fresh


def internals(s: Scheduler) -> dict:
    """Every field of every job and run, the counters and the live part of every index."""
    state = s._state
    jobs = {one.key: {slot: getattr(one, slot) for slot in type(one).__slots__}
            for run in state.runs.values() for one in run.jobs.values()}
    runs = [({slot: getattr(run, slot) for slot in type(run).__slots__
              if slot not in ("jobs", "counts")}, list(run.jobs),
             {k: n for k, n in run.counts.items() if n}) for run in state.runs.values()]
    due = sorted({entry for entry in state._due
                  if (one := state.lookup(entry[2])) is not None
                  and one.state in (JobState.PENDING, JobState.FAILED)
                  and one.not_before == entry[0]})
    return {
        "counters": (state.run_seq, state.job_seq, state.epoch, state.run_clock),
        "runs": runs, "jobs": jobs, "holders": state.holders, "children": state.children,
        "ready": state.ready._live, "running": state.running, "due": due,
    }


def assert_same(fresh: Scheduler, original: Scheduler, now: float) -> None:
    assert snapshot(fresh) == snapshot(original)
    for run in original.runs():
        for view in original.jobs(run.run_id):
            assert fresh.job(run.run_id, view.job_id) == view
            assert (fresh.waiting_reason(run.run_id, view.job_id)
                    == original.waiting_reason(run.run_id, view.job_id))
    assert internals(fresh) == internals(original)
    assert fresh.new_run_id(now) == original.new_run_id(now)


# -- the property ---------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_snapshot_rebuilds_the_same_state_and_the_later_records_apply_on_top(data):
    h = Harness(jitter=0.3, seed=data.draw(st.integers(0, 1000)))
    h.worker("w1", slots=2)
    h.worker("w2", "GENERAL", "GPU")
    world = World(data, h)
    for _ in range(data.draw(st.integers(5, 40))):
        world.step(data.draw(st.sampled_from(STEPS)))
    if data.draw(st.booleans()):  # compaction right after retention: the forgotten runs go
        finished = [r.run_id for r in h.s.runs() if r.state != "active"]
        h.forget(*finished, now=world.now)
    snap = h.s.snapshot()
    assert type(snap[0]) is Counters
    assert all(type(r) in SNAPSHOT_TYPES for r in snap)
    assert len(snap) == 1 + len(h.s.runs())
    assert [r.run_id for r in snap[1:]] == [r.run_id for r in reversed(h.s.runs())]

    fresh = restored(h, snap)
    assert_same(fresh, h.s, world.now)
    check_invariants(fresh)
    assert fresh.snapshot() == snap  # a snapshot of the snapshot is the same

    # the AOF after compaction: the snapshot, then what the scheduler recorded since
    mark = len(h.log)
    for _ in range(data.draw(st.integers(0, 25))):
        world.step(data.draw(st.sampled_from(STEPS)))
    fresh = restored(h, snap + h.log[mark:])
    assert_same(fresh, h.s, world.now)
    check_invariants(fresh)
    assert fresh.snapshot() == h.s.snapshot()
    assert next_decisions(fresh, world.now) == next_decisions(h.s, world.now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_counters_never_move_backwards_after_forgetting_and_compacting(data):
    h = Harness(seed=data.draw(st.integers(0, 1000)))
    h.worker("w1", slots=2)
    world = World(data, h)
    for _ in range(data.draw(st.integers(5, 40))):
        world.step(data.draw(st.sampled_from(STEPS)))
    h.forget(*[r.run_id for r in h.s.runs() if r.state != "active"], now=world.now)
    fresh = restored(h, h.s.snapshot())
    ids = [r.run_id for r in h.log if isinstance(r, RunSubmitted)]
    epochs = [r.epoch for r in h.log if isinstance(r, JobTransition)]
    # a submission timed before every earlier one still gets a later id
    run_id, _records = fresh.submit(dag(job("zz")), T0 - 1000.0)
    assert all(run_id > issued for issued in ids)
    fresh.set_worker("wz", ("GENERAL",), 50)
    assignments = fresh.assign(world.now)
    assert assignments
    assert all(a.epoch > max(epochs, default=0) for a in assignments)


# -- examples -------------------------------------------------------------------------------------

def test_forgetting_every_run_leaves_only_the_counters(sched):
    sched.worker("w1", slots=2)
    first = sched.submit(job("a"), job("b", "a"))
    sched.assign()
    sched.finish(first, "a")
    sched.assign(T0 + 1)
    sched.finish(first, "b", now=T0 + 1)
    second = sched.submit(job("c"), now=T0 + 5)
    sched.assign(T0 + 5)
    sched.lose(second, "c", now=T0 + 6)
    sched.retry(second, "c", now=T0 + 7)
    sched.assign(T0 + 7)
    sched.cancel(second, now=T0 + 8)
    sched.forget(first, second, now=T0 + 9)
    [counters] = sched.s.snapshot()
    assert counters == Counters(second, 4, 2, 3)
    fresh = restored(sched, [counters])
    assert fresh.runs() == []
    run_id, _records = fresh.submit(dag(job("d")), T0)
    assert run_id > second
    [assignment] = fresh.assign(T0)
    assert assignment.epoch == 5


def test_links_to_a_forgotten_parent_and_to_a_later_run_are_kept():
    sched = Harness()  # no replay check at the end: next_decisions is not recorded
    sched.worker("w1", slots=3)
    old = sched.submit(job("a", retries=0), job("ok"))
    child = sched.submit(job("c", "a"), job("d", "ok"), now=T0 + 1)  # waits on old/a, old/ok
    later = sched.submit(job("x"), job("y", "x"), now=T0 + 2)
    # a parent in a run submitted after: x's children are y, then e (restored before y)
    sched.add(child, job("e", "x", "d"), now=T0 + 3)
    sched.assign(T0 + 4)
    sched.finish(old, "a", code=1, now=T0 + 5)  # dead: child/c is skipped
    sched.finish(old, "ok", now=T0 + 5)
    sched.forget(old, now=T0 + 6)
    snap = sched.s.snapshot()
    [_counters, restored_child, _restored_later] = snap
    assert [(j.spec.id, j.parents, j.forgotten) for j in restored_child.jobs] == [
        ("c", {"a": old}, ("a",)), ("d", {"ok": old}, ("ok",)), ("e", {"x": later}, ())]
    fresh = restored(sched, snap)
    assert_same(fresh, sched.s, T0 + 6)
    assert fresh.job(child, "c").parents == (f"{old}/a",)
    assert fresh._state.children[(later, "x")] == [(later, "y"), (child, "e")]
    # finishing x and d releases e, in the restored scheduler as in the original
    x = sched.s.job(later, "x")
    sched.finish(later, "x", now=T0 + 7)
    fresh.finished(later, "x", x.attempt, x.epoch, 0, T0 + 7)
    assert internals(fresh) == internals(sched.s)
    assert next_decisions(fresh, T0 + 8) == next_decisions(sched.s, T0 + 8)

def test_a_big_run_spreads_over_several_records_and_they_go_through_the_aof_codec(sched):
    sched.worker("w1", slots=2)
    script = job("s", script_name="s.py", script=b"\x00" * 3000, command=(), env={"K": "V"})
    run = sched.submit(script, *(job(f"j{i}", "s", args=("-x",)) for i in range(10)),
                       job("late", delay=2.5), agent_run_id="ag", source="p.yaml")
    other = sched.submit(job("o", "s"), now=T0 + 1, from_run=run)
    sched.assign(T0 + 1)
    sched.finish(run, "s", code=3, now=T0 + 2)
    snap = sched.s.snapshot(budget=4000)
    assert [type(r) for r in snap] == [Counters, RunRestored, JobsRestored, JobsRestored,
                                       RunRestored]
    assert sum(len(r.jobs) for r in snap[1:4]) == 12
    assert snap[-1].run_id == other
    decoded = [aof.decode(aof.encode(record)) for record in snap]
    assert decoded == snap
    assert_same(restored(sched, decoded), sched.s, T0 + 2)
    assert sched.s.snapshot(budget=4000) == snap


def test_a_snapshot_record_that_does_not_fit_is_refused_and_changes_nothing(sched):
    sched.worker("w1")
    first = sched.submit(job("a"), job("b", "a"))
    sched.submit(job("c"), now=T0 + 1)
    [_counters, restored_first, restored_second] = sched.s.snapshot()
    fresh = restored(sched, [restored_first])
    before = internals(fresh)
    [a, b] = restored_first.jobs
    misfits = [
        restored_first,  # the same run twice
        dataclasses.replace(restored_second, seq=0),  # out of submission order
        dataclasses.replace(restored_second, run_id="r000000001", jobs=(a, a)),
        JobsRestored("rnope", ()),
        JobsRestored(first, (dataclasses.replace(b, seq=99),)),  # a job id the run has
        JobsRestored(first, (dataclasses.replace(b, spec=job("z"), seq=0),)),  # out of order
        JobsRestored(first, (dataclasses.replace(b, spec=job("z"), seq=99,
                                                 parents={"q": first}),)),
        JobsRestored(first, (dataclasses.replace(b, spec=job("z"), seq=99, queued_at=None,
                                                 state=JobState.QUEUED),)),
    ]
    for record in misfits:
        with pytest.raises(InconsistentRecordError):
            fresh.apply(record)
        assert internals(fresh) == before
