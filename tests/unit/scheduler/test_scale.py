"""Big DAGs validate fast, without recursion, and run to completion in a few seconds."""

from __future__ import annotations

import sys
import time

import pytest
from unit.scheduler.helpers import T0, dag, job

from titan_actors.errors import SubmissionError
from titan_actors.scheduler import RunState, Scheduler

WIDE = 100_000
DEEP = 10_000


def run_to_completion(s: Scheduler, run_id: str, now: float = T0) -> list:
    records = []
    while True:
        assignments = s.assign(now)
        if not assignments:
            return records
        records.extend(a.record for a in assignments)
        for a in assignments:
            records.extend(s.finished(a.run_id, a.job_id, a.attempt, a.epoch, 0, now))
        now += 1.0


def replay(records: list) -> Scheduler:
    fresh = Scheduler()
    for record in records:
        fresh.apply(record)
    return fresh


def test_100k_wide_dag_validates_and_runs_to_completion():
    started = time.perf_counter()
    middle = [job(f"m{i}", "root") for i in range(WIDE - 2)]
    spec = dag(job("root"), *middle, job("sink", *(m.id for m in middle)))
    s = Scheduler()
    for n in range(8):
        s.set_worker(f"w{n}", {"GENERAL"}, 64)
    run_id, records = s.submit(spec, T0)
    records += run_to_completion(s, run_id)
    view = s.run(run_id)
    assert (view.state, sum(view.counts.values())) == (RunState.COMPLETED, WIDE)
    assert len(records) == 1 + 3 * WIDE  # the run, then queued, running, completed per job
    assert time.perf_counter() - started < 10.0


def test_10k_deep_chain_validates_without_recursion_and_runs_to_completion():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(DEEP // 10)  # any recursion over the chain would fail loudly
    try:
        started = time.perf_counter()
        spec = dag(job("j0"), *(job(f"j{i}", f"j{i - 1}") for i in range(1, DEEP)))
        s = Scheduler()
        s.set_worker("w", {"GENERAL"}, 4)
        run_id, records = s.submit(spec, T0)
        records += run_to_completion(s, run_id)
        view = s.run(run_id)
        assert (view.state, view.counts) == (RunState.COMPLETED, {"completed": DEEP})
        assert replay(records).run(run_id) == view
        assert time.perf_counter() - started < 5.0
    finally:
        sys.setrecursionlimit(limit)


def test_10k_deep_chain_death_skips_every_descendant_without_recursion():
    spec = dag(job("j0", retries=0), *(job(f"j{i}", f"j{i - 1}") for i in range(1, DEEP)))
    s = Scheduler()
    s.set_worker("w", {"GENERAL"}, 1)
    run_id, _ = s.submit(spec, T0)
    [a] = s.assign(T0)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(DEEP // 10)
    try:
        records = s.finished(run_id, "j0", a.attempt, a.epoch, 1, T0)
        assert len(records) == DEEP
        assert len(s.retry(run_id, "j0", T0 + 1)) == DEEP + 1
    finally:
        sys.setrecursionlimit(limit)


def test_100k_job_cycle_is_found_fast():
    spec = dag(job("j0", f"j{WIDE - 1}"), *(job(f"j{i}", f"j{i - 1}") for i in range(1, WIDE)))
    started = time.perf_counter()
    shown = r"cycle: j0 -> j1 -> .* -> j9 -> \.\.\. \(99986 more jobs\) \.\.\. -> j99996 -> "
    with pytest.raises(SubmissionError, match=shown + r".* -> j99999 -> j0 "):
        Scheduler().submit(spec, T0)
    assert time.perf_counter() - started < 3.0
