"""THE replay property: applying every record a scheduler returned to a fresh one gives the
same state and the same next decisions. Also: a refused call changes nothing, and every record
goes through the wire codec unchanged."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from unit.scheduler.helpers import T0, Harness, job, snapshot

from titan_actors.errors import InconsistentRecordError, StaleReportError, UsageError
from titan_actors.scheduler import (
    SATISFYING_STATES,
    TERMINAL_STATES,
    JobReset,
    JobsAdded,
    JobState,
    JobTransition,
    JobView,
    RunsForgotten,
    RunSubmitted,
    RunView,
)
from titan_actors.wire import codec
from titan_actors.wire.registry import Message, _scratch_registry, message

POOL = ("a", "b", "c", "d", "e", "f")
WORKERS = ("w1", "w2", "w3")
TAGS = (("GENERAL",), ("GPU",), ("GENERAL", "GPU"))
STEPS = ("submit", "submit", "add", "assign", "assign", "assign", "finish", "finish", "finish",
         "fail", "lost", "hand_back", "stale", "cancel", "cancel_run", "retry", "tick", "tick",
         "worker", "remove_worker", "forget")


class World:
    """Drives a Harness with operations drawn by hypothesis."""

    def __init__(self, data: st.DataObject, harness: Harness) -> None:
        self.data = data
        self.h = harness
        self.now = T0

    def draw(self, strategy):
        return self.data.draw(strategy)

    def step(self, name: str) -> None:
        before = snapshot(self.h.s)
        try:
            getattr(self, "do_" + name)()
        except UsageError:
            # a refused call (bad submission, stale report, invalid transition) changed nothing
            assert snapshot(self.h.s) == before

    def jobs(self, n: int) -> list:
        ids = self.draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=n, unique=True))
        out = []
        for i, job_id in enumerate(ids):
            # mostly earlier jobs of this submission; sometimes any id (another run's job, an
            # unknown one, or a cycle)
            choices = list(ids[:i]) * 3 + list(POOL)
            parents = self.draw(st.lists(st.sampled_from(choices), max_size=2, unique=True)
                                ) if self.draw(st.booleans()) else []
            out.append(job(
                job_id, *parents,
                priority=self.draw(st.integers(0, 3)),
                delay=self.draw(st.sampled_from((0.0, 0.0, 0.0, 2.5))),
                retries=self.draw(st.integers(0, 2)),
                requirement=self.draw(st.sampled_from(("GENERAL", "GENERAL", "GPU"))),
                worker=self.draw(st.sampled_from(("", "", "", "w1"))),
                affinity=self.draw(st.booleans())))
        return out

    def some_run(self) -> str:
        runs = [r.run_id for r in self.h.s.runs()]
        return self.draw(st.sampled_from(runs)) if runs else "rnone"

    def some_job(self) -> tuple[str, str]:
        run = self.some_run()
        ids = self.h.s.run(run).jobs if run != "rnone" else ("a",)
        return run, self.draw(st.sampled_from(ids))

    def some_attempt(self):
        running = self.h.s.running_attempts()
        return self.draw(st.sampled_from(running)) if running else None

    def submitter(self, run: str) -> str:
        """Sometimes a job of ``run`` (who submits: recorded on the run or the added jobs)."""
        if run == "rnone" or not self.draw(st.booleans()):
            return ""
        return self.draw(st.sampled_from(self.h.s.run(run).jobs))

    def do_submit(self) -> None:
        from_run = self.some_run() if self.draw(st.booleans()) else ""
        self.h.submit(*self.jobs(5), now=self.now, from_run=from_run,
                      from_job=self.submitter(from_run) if from_run else "")

    def do_add(self) -> None:
        run = self.some_run()
        from_job = self.submitter(run)
        self.h.add(run, *self.jobs(3), now=self.now, from_run=run if from_job else "",
                   from_job=from_job)

    def do_assign(self) -> None:
        self.h.assign(self.now)

    def report(self, code: int) -> None:
        attempt = self.some_attempt()
        if attempt is not None:
            run, job_id, _worker, number, epoch = attempt
            self.h._keep(self.h.s.finished(run, job_id, number, epoch, code, self.now))

    def do_finish(self) -> None:
        self.report(0)

    def do_fail(self) -> None:
        self.report(self.draw(st.integers(1, 3)))

    def do_lost(self) -> None:
        attempt = self.some_attempt()
        if attempt is not None:
            run, job_id, _worker, number, epoch = attempt
            self.h._keep(self.h.s.lost(run, job_id, number, epoch, self.now, "lease lost"))

    def do_hand_back(self) -> None:
        attempt = self.some_attempt()
        if attempt is not None:
            run, job_id, _worker, number, epoch = attempt
            self.h._keep(self.h.s.handed_back(run, job_id, number, epoch, self.now))

    def do_stale(self) -> None:
        run, job_id = self.some_job()
        view = self.h.s.job(run, job_id) if run != "rnone" else None
        if view is not None and view.epoch:
            try:
                self.h.s.finished(run, job_id, view.attempt, view.epoch - 1, 0, self.now)
            except StaleReportError:
                return
            raise AssertionError("a report with an old epoch was accepted")

    def do_cancel(self) -> None:
        self.h.cancel(*self.some_job(), now=self.now)

    def do_cancel_run(self) -> None:
        self.h.cancel(self.some_run(), None, now=self.now)

    def do_retry(self) -> None:
        self.h.retry(*self.some_job(), now=self.now)

    def do_tick(self) -> None:
        self.now += self.draw(st.sampled_from((0.0, 0.5, 1.0, 3.0, 10.0)))
        self.h.due(self.now)

    def do_worker(self) -> None:
        self.h.worker(self.draw(st.sampled_from(WORKERS)), *self.draw(st.sampled_from(TAGS)),
                      slots=self.draw(st.integers(0, 3)))

    def do_remove_worker(self) -> None:
        self.h.remove_worker(self.draw(st.sampled_from(WORKERS)))

    def do_forget(self) -> None:
        finished = [r.run_id for r in self.h.s.runs() if r.state != "active"]
        if finished:
            self.h.forget(self.draw(st.sampled_from(finished)), now=self.now)


def check_invariants(s) -> None:
    """The derived indexes agree with the jobs, and no job is stuck for ever."""
    state = s._state
    blocking = TERMINAL_STATES - SATISFYING_STATES
    for run in state.runs.values():
        for one in run.jobs.values():
            parents = [state.lookup(key) for key in one.parents]
            unsatisfied = [p for p in parents if p is not None
                           and p.state not in SATISFYING_STATES]
            if not one.blocked:
                assert one.unmet == len(unsatisfied), (one.key, one.unmet)
            assert (one.key in state.ready) is (one.state is JobState.QUEUED)
            in_running = one.key in state.running.get(one.worker, ())
            assert in_running is (one.state is JobState.RUNNING)
            if one.state is JobState.FAILED:
                assert one.not_before > 0
            if one.state is JobState.PENDING:
                assert one.unmet or one.not_before, f"{one.key} is pending for nothing"
                assert not any(p.state in blocking for p in unsatisfied), f"{one.key} is stuck"


def next_decisions(s, now: float) -> list:
    """What a scheduler decides next: dispatches, due moves, and a failure of each attempt."""
    out: list = [s.assign(now), s.due(now + 1000.0)]
    for run, job_id, _worker, attempt, epoch in s.running_attempts():
        out.append(s.lost(run, job_id, attempt, epoch, now + 1000.0, "probe"))
    out.append(s.assign(now + 2000.0))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replaying_the_records_rebuilds_the_same_state_and_next_decisions(data):
    harness = Harness(jitter=0.3, seed=data.draw(st.integers(0, 1000)))
    harness.worker("w1", slots=2)
    harness.worker("w2", "GENERAL", "GPU")
    world = World(data, harness)
    for _ in range(data.draw(st.integers(5, 50))):
        world.step(data.draw(st.sampled_from(STEPS)))
    for record in harness.log:
        event(type(record).__name__ + getattr(record, "state", ""))
    check_invariants(harness.s)
    fresh = harness.replayed()
    assert snapshot(fresh) == snapshot(harness.s)
    check_invariants(fresh)
    assert fresh.new_run_id(world.now) == harness.s.new_run_id(world.now)
    assert next_decisions(fresh, world.now) == next_decisions(harness.s, world.now)


# -- the records on the wire ---------------------------------------------------------------------

RECORD_TYPES = (RunSubmitted, JobsAdded, JobTransition, JobReset, RunsForgotten)


def test_every_record_goes_through_the_codec_unchanged():
    harness = Harness(jitter=0.3)
    harness.worker("w1", slots=2)
    script = job("s", script_name="s.py", script=b"\x00", command=())
    first = harness.submit(job("a", retries=0, env={"K": "V"}, args=("-x",)),
                           job("b", "a", delay=1.5), script, agent_run_id="ag", source="p.yaml")
    second = harness.submit(job("c", "a"), now=T0 + 1, from_run=first)
    harness.add(first, job("d", "b"))
    harness.assign()
    harness.finish(first, "a", code=7)
    harness.retry(first, "a")
    harness.assign()
    harness.cancel(second)
    harness.cancel(first)
    harness.forget(first, second)
    assert {type(r) for r in harness.log} == set(RECORD_TYPES)
    with _scratch_registry():
        wrappers = {}
        for number, cls in enumerate(RECORD_TYPES):
            namespace = {"__annotations__": {"record": cls}, "__module__": __name__}
            wrappers[cls] = message(65000 + number)(type(f"Wire{cls.__name__}", (Message,),
                                                         namespace))
        for record in harness.log:
            wrapper = wrappers[type(record)]
            decoded = codec.decode(wrapper, codec.encode(wrapper(record))).record
            assert decoded == record


def test_views_go_through_the_codec_unchanged():
    harness = Harness()
    harness.worker("w1")
    run = harness.submit(job("a"), job("b", "a", delay=2.0))
    harness.assign()
    harness.finish(run, "a", code=3)
    with _scratch_registry():
        namespace = {"__annotations__": {"run": RunView, "jobs": tuple[JobView, ...]},
                     "__module__": __name__}
        wrapper = message(65100)(type("WireViews", (Message,), namespace))
        sent = wrapper(harness.s.run(run), tuple(harness.s.jobs(run)))
        assert codec.decode(wrapper, codec.encode(sent)) == sent


def test_records_are_frozen():
    record = RunsForgotten(("r1",))
    assert dataclasses.is_dataclass(record)
    try:
        record.run_ids = ()  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        return
    raise AssertionError("records must be immutable")


def test_a_record_that_does_not_fit_is_refused_and_changes_nothing(sched):
    run = sched.submit(job("a"))
    before = snapshot(sched.s)
    [submitted, queued] = sched.log
    misfits = [
        submitted,  # the same run twice
        dataclasses.replace(queued, prior=JobState.RUNNING),  # from the wrong state
        dataclasses.replace(queued, job_id="zz"),  # an unknown job
        JobsAdded(run, (job("b", "elsewhere"),), T0, {}),  # a parent without resolution
        JobsAdded(run, (job("a"),), T0, {}),  # an id the run has
        JobsAdded("rnope", (job("b"),), T0, {}),
        JobReset(run, "a", T0),  # a queued job cannot be reset
        RunsForgotten((run, "rnope")),
        "not a record",
    ]
    for record in misfits:
        with pytest.raises(InconsistentRecordError):
            sched.s.apply(record)
        assert snapshot(sched.s) == before
