"""What the scaler reads from the scheduler: queued jobs per lane, slots taken per worker."""

from __future__ import annotations

from unit.scheduler.helpers import T0, job

from titan_actors.scheduler.pressure import queued_demand, slots_taken


def test_queued_demand_counts_each_lane_and_pinned_jobs_only_for_their_worker(sched):
    run_id = sched.submit(job("a"), job("b"), job("gpu", requirement="GPU"),
                          job("pinned", worker="w1"), job("later", "a"))
    assert queued_demand(sched.s) == {("tag", "GENERAL"): 2, ("tag", "GPU"): 1,
                                      ("pin", "w1"): 1}  # "later" waits for its parent
    sched.worker("w1", "GENERAL", slots=1)
    placed = sched.placed()
    assert len(placed) == 1 and slots_taken(sched.s, "w1") == 1
    demand = queued_demand(sched.s)
    assert sum(demand.values()) == 3 and demand[("tag", "GPU")] == 1
    for job_id in placed:
        sched.finish(run_id, job_id, now=T0 + 1)
    assert slots_taken(sched.s, "w1") == 0


def test_no_demand_when_nothing_is_queued(sched):
    assert queued_demand(sched.s) == {}
    assert slots_taken(sched.s, "nobody") == 0
