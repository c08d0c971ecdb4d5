"""Reports about attempts count only for the current (attempt, epoch) of a running job."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, job

from titan_actors.errors import StaleReportError, UsageError
from titan_actors.scheduler import JobState


@pytest.fixture
def lost_once(sched):
    """Job a: attempt 1 (epoch 1) lost, attempt 2 (epoch 2) running."""
    sched.worker("w")
    run = sched.submit(job("a"))
    sched.assign()
    sched.lose(run, "a")
    sched.due(T0 + 100)
    sched.assign(T0 + 100)
    return run


def test_stale_report_error_is_a_usage_error():
    assert issubclass(StaleReportError, UsageError)


def test_late_report_from_a_lost_lease_is_refused(sched, lost_once):
    before = sched.s.job(lost_once, "a")
    with pytest.raises(StaleReportError, match=r"attempt 1 \(epoch 1\) refused: stale, the "
                                               r"job is running at attempt 2 \(epoch 2\)"):
        sched.s.finished(lost_once, "a", 1, 1, 0, T0 + 101)
    assert sched.s.job(lost_once, "a") == before


def test_report_with_an_old_epoch_is_refused(sched, lost_once):
    with pytest.raises(StaleReportError):
        sched.s.finished(lost_once, "a", 2, 1, 0, T0 + 101)
    with pytest.raises(StaleReportError):
        sched.s.lost(lost_once, "a", 2, 1, T0 + 101, "timeout")
    with pytest.raises(StaleReportError):
        sched.s.handed_back(lost_once, "a", 2, 1, T0 + 101)


def test_report_with_an_old_attempt_is_refused(sched, lost_once):
    with pytest.raises(StaleReportError):
        sched.s.finished(lost_once, "a", 1, 2, 0, T0 + 101)


def test_completion_is_recorded_once(sched):
    sched.worker("w")
    run = sched.submit(job("a"))
    [a] = sched.assign()
    sched.finish(run, "a")
    with pytest.raises(StaleReportError, match="already recorded .the job is completed."):
        sched.s.finished(run, "a", a.attempt, a.epoch, 0, T0 + 1)
    with pytest.raises(StaleReportError):
        sched.s.lost(run, "a", a.attempt, a.epoch, T0 + 1, "worker died")
    assert sched.state(run, "a") is JobState.COMPLETED


def test_report_about_a_job_that_is_not_running_is_refused(sched):
    run = sched.submit(job("a"))
    with pytest.raises(StaleReportError):
        sched.s.finished(run, "a", 0, 0, 0, T0)


def test_report_about_an_unknown_job_is_refused(sched):
    run = sched.submit(job("a"))
    with pytest.raises(StaleReportError, match="no such job"):
        sched.s.finished(run, "zz", 1, 1, 0, T0)
    with pytest.raises(StaleReportError, match="no such job"):
        sched.s.finished("r-gone", "a", 1, 1, 0, T0)


def test_report_after_a_cancel_is_refused(sched):
    sched.worker("w")
    run = sched.submit(job("a"))
    [a] = sched.assign()
    [cancelled] = sched.cancel(run, "a")
    assert (cancelled.prior, cancelled.worker, cancelled.attempt, cancelled.epoch) == (
        JobState.RUNNING, "w", a.attempt, a.epoch)
    with pytest.raises(StaleReportError):
        sched.s.finished(run, "a", a.attempt, a.epoch, 0, T0 + 1)


def test_running_attempts_lists_every_lease(sched):
    sched.worker("w1")
    sched.worker("w2")
    run = sched.submit(job("a"), job("b"), job("c"))
    sched.assign()
    assert sched.s.running_attempts() == [(run, "a", "w1", 1, 1), (run, "b", "w2", 1, 2)]
    sched.finish(run, "a")
    assert sched.s.running_attempts() == [(run, "b", "w2", 1, 2)]
