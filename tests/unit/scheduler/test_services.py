"""Services in the scheduler: worker reports, readiness gating children, stop, end, replay."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, job

from titan_actors.errors import InvalidTransitionError, StaleReportError
from titan_actors.scheduler import JobKind, JobState, RunState
from titan_actors.scheduler.views import run_state

S, R, RS = JobState.STARTING, JobState.READY, JobState.RESTARTING


def service(job_id: str, *parents: str, **fields):
    return job(job_id, *parents, kind=JobKind.SERVICE, **fields)


def report(sched, run, job_id, state, port=8000, restarts=0, now=T0):
    view = sched.s.job(run, job_id)
    return sched._keep(sched.s.service_state(run, job_id, view.attempt, view.epoch, state, now,
                                             port=port, restarts=restarts))


def test_children_wait_until_the_service_is_ready(sched):
    sched.worker("w1", slots=2)
    run = sched.submit(service("api"), job("client", "api"))
    assert sched.placed() == {"api": "w1"}
    report(sched, run, "api", S)
    assert sched.state(run, "client") is JobState.PENDING
    report(sched, run, "api", R, port=8123)
    assert sched.states(run) == {"api": R, "client": JobState.QUEUED}
    assert sched.s.job(run, "api").port == 8123
    assert sched.placed() == {"client": "w1"}  # the service keeps its slot: 2 in use
    assert sched.s._state.load("w1") == 2
    sched.finish(run, "client")
    assert run_state(sched.s._state.runs[run]) is RunState.SERVING
    sched.check_replay()


def test_restarts_are_reported_and_a_stop_kills_without_restart(sched):
    sched.worker("w1")
    run = sched.submit(service("api"))
    sched.placed()
    report(sched, run, "api", R)
    report(sched, run, "api", RS, restarts=1)
    report(sched, run, "api", R, restarts=1)
    assert sched.s.job(run, "api").restarts == 1
    [stop] = sched._keep(sched.s.stop_service(run, "api", T0 + 5))
    assert (stop.prior, stop.state, stop.reason) == (R, JobState.STOPPED, "stopped on request")
    with pytest.raises(StaleReportError):
        sched.finish(run, "api", code=-15)
    assert sched.s._state.load("w1") == 0
    assert run_state(sched.s._state.runs[run]) is RunState.COMPLETED
    with pytest.raises(InvalidTransitionError, match="is stopped already"):
        sched.s.stop_service(run, "api", T0)
    sched.check_replay()


def test_out_of_restarts_is_dead_and_skips_only_what_has_not_started(sched):
    sched.worker("w1", slots=3)
    run = sched.submit(service("api", max_restarts=2), job("early", "api"),
                       job("after-early", "early"), job("late", "api", "gate-ish"),
                       job("gate-ish"))
    assert sched.placed() == {"api": "w1", "gate-ish": "w1"}
    report(sched, run, "api", R)
    assert sched.placed() == {"early": "w1"}
    sched.finish(run, "api", code=1, reason="exited 3 times (max_restarts 2)")
    states = sched.states(run)
    assert states["api"] is JobState.DEAD and states["early"] is JobState.RUNNING
    assert states["after-early"] is JobState.PENDING  # behind a job that already runs
    assert states["late"] is JobState.SKIPPED
    assert sched.s.job(run, "api").reason == "exited 3 times (max_restarts 2)"


def test_a_lost_worker_runs_the_service_again_elsewhere(sched):
    sched.worker("w1")
    run = sched.submit(service("api"))
    sched.placed()
    report(sched, run, "api", R)
    sched.lose(run, "api", now=T0 + 1)
    assert sched.state(run, "api") is JobState.FAILED
    sched.due(T0 + 100)
    sched.remove_worker("w1")
    sched.worker("w2")
    assert sched.placed(now=T0 + 100) == {"api": "w2"}


def test_reports_are_checked(sched):
    sched.worker("w1")
    run = sched.submit(service("api"), job("plain"))
    sched.placed()
    with pytest.raises(InvalidTransitionError, match="not completed"):
        report(sched, run, "api", JobState.COMPLETED)
    with pytest.raises(InvalidTransitionError, match="plain is a run job, not a service"):
        sched.s.stop_service(run, "plain", T0)
    view = sched.s.job(run, "api")
    with pytest.raises(StaleReportError):
        sched.s.service_state(run, "api", view.attempt, view.epoch + 1, R, T0, port=1,
                              restarts=0)


def test_cancelling_a_ready_service_names_its_process(sched):
    sched.worker("w1")
    run = sched.submit(service("api"))
    sched.placed()
    report(sched, run, "api", R)
    [record] = sched.cancel(run)
    assert (record.prior, record.state, record.worker) == (R, JobState.CANCELLED, "w1")
    from titan_actors.master.views import kill_of
    assert kill_of(record)[0] == "w1"


def test_a_lost_service_out_of_attempts_leaves_its_running_users_alone(sched):
    sched.worker("w1", slots=3)
    run = sched.submit(service("api", retries=0), job("client", "api"), job("late", "api"))
    sched.placed()
    report(sched, run, "api", R, port=9000)
    assert set(sched.placed()) == {"client", "late"}
    sched.finish(run, "late")  # one user done, one still running
    records = sched.lose(run, "api", now=T0 + 1)
    assert sched.state(run, "api") is JobState.DEAD
    assert sched.state(run, "client") is JobState.RUNNING
    assert all(r.job_id == "api" for r in records)
    sched.retry(run, "api", now=T0 + 2)
    assert (sched.s.job(run, "api").port, sched.s.job(run, "api").restarts) == (0, 0)
    sched.check_replay()
