"""A run's spec for a re-run (``Scheduler.run_spec``): its jobs as submitted, in order, without
the gates ``hitl_message`` made and without the jobs added at run time; submitted again it
makes the same DAG. Kept through a snapshot (AOF compaction)."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, job
from unit.scheduler.test_snapshot import restored

from titan_actors.errors import UnknownRunError
from titan_actors.scheduler import JobKind, JobSpec, JobState


def _gated_run(sched) -> str:
    """train (with a hitl gate) -> deploy, a user gate, a cross-run parent; ``adder`` added
    ``extra`` and ``extra-child`` while running, a client added ``outside`` and ``below``."""
    sched.worker("w1", slots=4)
    earlier = sched.submit(job("base"), name="earlier")
    run = sched.submit(
        job("train", hitl_message="Deploy?", max_wait_seconds=60, retries=1),
        job("deploy", "train", "base", env={"A": "1"}),
        JobSpec("sign-off", kind=JobKind.GATE, parents=("deploy",), message="Sign?"),
        job("adder"), name="ship", agent_run_id="agent-7", now=T0 + 1)
    assert earlier != run
    sched.assign()
    sched.add(run, job("extra", "train"), job("extra-child", "extra"), from_run=run,
              from_job="adder")
    sched.add(run, job("outside", "adder"), job("below", "extra"))  # from a client
    return run


def test_the_spec_holds_the_submitted_jobs_in_order_without_made_or_added_ones(sched):
    run = _gated_run(sched)
    assert "hitl-gate-train" in sched.states(run)
    spec = sched.s.run_spec(run)
    assert (spec.name, spec.agent_run_id) == ("ship", "agent-7")
    assert [j.id for j in spec.jobs] == ["train", "deploy", "sign-off", "adder", "outside"]
    by_id = {j.id: j for j in spec.jobs}
    # deploy named train, which the gate stood in for: it names train again
    assert by_id["deploy"].parents == ("train", "base")
    assert by_id["deploy"].env == {"A": "1"}
    assert by_id["train"].hitl_message == "Deploy?" and by_id["train"].retries == 1
    assert by_id["sign-off"].kind is JobKind.GATE and by_id["sign-off"].message == "Sign?"


def test_submitted_again_it_makes_the_same_dag(sched):
    run = _gated_run(sched)
    again = sched.submit(*sched.s.run_spec(run).jobs, name="ship", now=T0 + 2)
    assert list(sched.states(again)) == ["train", "hitl-gate-train", "deploy", "sign-off",
                                         "adder", "outside"]
    parents = {v.job_id: v.parents for v in sched.s.jobs(again)}
    assert parents["deploy"] == ("hitl-gate-train", _ref_of_base(sched))
    assert sched.state(again, "train") is JobState.QUEUED


def _ref_of_base(sched) -> str:
    earlier = next(r.run_id for r in sched.s.runs() if r.name == "earlier")
    return f"{earlier}/base"


def test_the_spec_survives_a_snapshot(sched):
    run = _gated_run(sched)
    fresh = restored(sched, sched.s.snapshot())
    assert fresh.run_spec(run) == sched.s.run_spec(run)


def test_an_unknown_run_is_named(sched):
    with pytest.raises(UnknownRunError, match="no run 'r-nope'"):
        sched.s.run_spec("r-nope")
