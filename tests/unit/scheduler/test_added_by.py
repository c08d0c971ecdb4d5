"""Who added what: a job that adds jobs to its run is recorded as their ``added_by``; a run a job
submits records that job (``from_run`` / ``from_job``). Kept through the records (replay, the
AOF codec) and the snapshot."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, job
from unit.scheduler.test_snapshot import assert_same, restored

from titan_actors.errors import SubmissionError
from titan_actors.master import records as aof
from titan_actors.master import views
from titan_actors.scheduler import JobsAdded, JobState, RunSubmitted


def _agent(sched) -> tuple[str, str]:
    """A run whose job ``adder`` is running and ``first`` completed; (run id, ...)."""
    sched.worker("w1", slots=2)
    run = sched.submit(job("first"), job("adder"), agent_run_id="agent-1")
    sched.assign()
    sched.finish(run, "first")
    return run, "adder"


def test_jobs_added_by_a_job_record_it_and_a_completed_parent_counts(sched):
    run, adder = _agent(sched)
    records = sched.add(run, job("child", "first"), job("grandchild", "child"),
                        from_run=run, from_job=adder)
    added = [r for r in records if isinstance(r, JobsAdded)]
    assert [(r.from_run, r.from_job) for r in added] == [(run, adder)]
    assert sched.state(run, "child") is JobState.QUEUED  # its parent already completed
    by = {view.job_id: view.added_by for view in sched.s.jobs(run)}
    assert by == {"first": "", "adder": "", "child": adder, "grandchild": adder}
    sched.add(run, job("outside"))  # from a client: nobody to record
    assert sched.s.job(run, "outside").added_by == ""
    assert views.job_info(sched.s.job(run, "child")).added_by == adder


def test_a_run_submitted_by_a_job_records_it(sched):
    run, adder = _agent(sched)
    child_run = sched.submit(job("next", "first"), name="next", from_run=run, from_job=adder)
    submitted = next(r for r in sched.log if isinstance(r, RunSubmitted)
                     and r.run_id == child_run)
    assert (submitted.from_run, submitted.from_job) == (run, adder)
    view = sched.s.run(child_run)
    assert (view.from_run, view.from_job, view.agent_run_id) == (run, adder, "agent-1")
    summary = views.run_summary(view)
    assert (summary.from_run, summary.from_job) == (run, adder)
    outside = sched.s.run(sched.submit(job("plain")))
    assert (outside.from_run, outside.from_job) == ("", "")


def test_a_submitter_that_is_not_a_job_of_its_run_is_refused(sched):
    run, _adder = _agent(sched)
    before = len(sched.log)
    with pytest.raises(SubmissionError, match="'ghost' is not a job of run"):
        sched.add(run, job("x"), from_run=run, from_job="ghost")
    with pytest.raises(SubmissionError, match="is not a job of run"):
        sched.submit(job("y"), from_job="adder")  # a job without its run
    assert len(sched.log) == before


def test_who_added_what_survives_the_aof_codec_and_a_snapshot(sched):
    run, adder = _agent(sched)
    sched.add(run, job("child", "first"), from_run=run, from_job=adder)
    child_run = sched.submit(job("next"), from_run=run, from_job=adder)
    for record in sched.log:
        assert aof.decode(aof.encode(record)) == record
    snap = sched.s.snapshot(budget=1)  # one job a record: JobsRestored carries them too
    for record in snap:
        assert aof.decode(aof.encode(record)) == record
    fresh = restored(sched, snap)
    assert_same(fresh, sched.s, T0)
    assert fresh.job(run, "child").added_by == adder
    assert (fresh.run(child_run).from_run, fresh.run(child_run).from_job) == (run, adder)


def test_agent_runs_group_runs_by_agent_run_id(sched):
    sched.worker("w1", slots=4)
    first = sched.submit(job("a1"), name="plan", agent_run_id="agent-x", now=T0)
    second = sched.submit(job("b1", command=("false",), retries=0), name="act",
                          agent_run_id="agent-x", now=T0 + 5)
    other = sched.submit(job("c1"), name="solo", agent_run_id="agent-y", now=T0 + 7)
    sched.submit(job("d1"), name="no-agent", now=T0 + 9)
    found = views.agent_runs(sched.s.runs())
    assert [a.agent_run_id for a in found] == ["agent-y", "agent-x"]  # newest first
    x = found[1]
    assert (x.runs, x.names, x.state, x.created_at) == ((first, second), ("plan", "act"),
                                                        "active", T0)
    sched.assign(T0 + 10)
    sched.finish(first, "a1", now=T0 + 11)
    sched.finish(second, "b1", code=1, now=T0 + 12)
    sched.finish(other, "c1", now=T0 + 13)
    x, y = views.agent_runs(sched.s.runs())[::-1]
    assert (x.state, x.finished_at, x.counts) == ("failed", T0 + 12,
                                                  {"completed": 1, "dead": 1})
    assert (y.state, y.runs) == ("completed", (other,))
