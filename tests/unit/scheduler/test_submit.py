"""Submissions: validation (every problem, where it is), cross-run parents, dynamic DAGs, run
ids, references, views and retention."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import T0, dag, job, snapshot

from titan_actors.errors import (
    InvalidTransitionError,
    SubmissionError,
    UnknownJobError,
    UnknownRunError,
    UsageError,
)
from titan_actors.scheduler import JobKind, JobSpec, JobState, RunState, Scheduler

C, P, Q = JobState.COMPLETED, JobState.PENDING, JobState.QUEUED


def refused(sched, *jobs, **kwargs) -> SubmissionError:
    before = snapshot(sched.s)
    with pytest.raises(SubmissionError) as caught:
        sched.s.submit(dag(*jobs, name="bad"), T0, **kwargs)
    assert snapshot(sched.s) == before  # nothing of a refused submission is kept
    return caught.value


@pytest.mark.parametrize("spec, message", [
    (JobSpec("", command=("true",)), "job #2: the id is empty"),
    (JobSpec("a b", command=("true",)), "job 'a b': the id must not contain whitespace or '/'"),
    (JobSpec("a/b", command=("true",)), "job 'a/b': the id must not contain whitespace or '/'"),
    (JobSpec("a"), "job 'a': needs a script (file) or a command"),
    (JobSpec("a", script_name="x.py", command=("true",)),
     "job 'a': has both a script and a command; give one of them"),
    (JobSpec("a", command=("",)), "job 'a': the command's program (command[0]) is empty"),
    (job("a", priority=-1), "job 'a': priority must be a whole number >= 0, got -1"),
    (job("a", retries=-2), "job 'a': retries must be a whole number >= 0, got -2"),
    (job("a", delay=-0.5), "job 'a': delay must be a number of seconds >= 0, got -0.5"),
    (job("a", timeout=-1.0), "job 'a': timeout must be a number of seconds >= 0, got -1.0"),
    (job("a", delay=float("nan")), "job 'a': delay must be a number of seconds >= 0, got nan"),
    (job("a", requirement=""), "job 'a': requirement must be one tag without whitespace"),
    (job("a", requirement="G PU"), "job 'a': requirement must be one tag without whitespace"),
    (job("a", worker="w 1"), "job 'a': worker must be a worker name, got 'w 1'"),
    (job("a", "p", "p"), "job 'a': parent 'p' is listed twice"),
    (job("a", ""), "job 'a': a parent id is empty"),
])
def test_bad_fields_are_refused_with_their_message(sched, spec, message):
    error = refused(sched, job("p"), spec)
    assert message in str(error)
    assert str(error).startswith("run 'bad' refused (")


def test_a_script_alone_is_fine(sched):
    run = sched.submit(JobSpec("a", script_name="a.py", script=b"print(1)"))
    assert sched.state(run, "a") is Q


def test_duplicate_ids_are_refused(sched):
    error = refused(sched, job("a"), job("a"))
    assert error.problems == ("job 'a': the id is used twice in this submission",)


def test_empty_submission_is_refused(sched):
    assert "at least one job" in str(refused(sched))


def test_every_problem_is_listed_at_once(sched):
    error = refused(sched, job("a", "ghost", priority=-1), job("b", "b"), JobSpec("c"))
    assert len(error.problems) == 4
    assert "4 problems" in str(error)
    assert isinstance(error, UsageError)


def test_unknown_parent_is_refused_naming_job_and_parent(sched):
    error = refused(sched, job("a", "ghost"))
    assert error.problems == ("job 'a': parent 'ghost' is unknown: it is not in this "
                              "submission and no run holds a job of that id",)


@pytest.mark.parametrize("jobs, cycle", [
    ([job("a", "a")], "cycle: a -> a"),
    ([job("a", "b"), job("b", "a")], "cycle: a -> b -> a"),
    ([job("root"), job("a", "root", "c"), job("b", "a"), job("c", "b"), job("d", "c")],
     "cycle: a -> b -> c -> a"),
])
def test_a_cycle_is_refused_naming_one_cycle_path(sched, jobs, cycle):
    error = refused(sched, *jobs)
    [problem] = error.problems
    assert problem.startswith(cycle + " (")


@pytest.mark.parametrize("spec, problem", [
    (job("g", kind=JobKind.GATE), "a gate runs no process; remove its script or command"),
    (JobSpec("g", kind=JobKind.GATE, max_wait_seconds=0), "max_wait_seconds must be"),
    (job("s", kind=JobKind.SERVICE, port=70000), "port must be 0 (any free port) to 65535"),
    (job("s", kind=JobKind.SERVICE, max_restarts=-2), "max_restarts must be"),
    (job("r", port=8080), "port is for services"),
    (job("r", health=("curl",)), "health is for services"),
])
def test_gate_and_service_fields_are_checked(sched, spec, problem):
    assert problem in str(refused(sched, spec))


def test_remote_reraise_builds_the_error_from_its_message():
    error = SubmissionError("run 'x' refused (1 problem):\n  job 'a': ...")
    assert error.problems == ()


# -- parents in other runs -----------------------------------------------------------------------

def test_parent_in_another_run_that_completed_counts_as_satisfied(sched):
    sched.worker("w")
    first = sched.submit(job("a"))
    sched.assign()
    sched.finish(first, "a")
    second = sched.submit(job("b", "a"), now=T0 + 1)
    assert sched.state(second, "b") is Q
    assert sched.s.job(second, "b").parents == (f"{first}/a",)


def test_parent_in_another_run_that_is_active_is_waited_on(sched):
    sched.worker("w")
    first = sched.submit(job("a"))
    second = sched.submit(job("b", "a"), now=T0 + 1)
    assert sched.state(second, "b") is P
    assert sched.s.waiting_reason(second, "b") == f"waiting for parents {first}/a"
    sched.assign()
    sched.finish(first, "a")
    assert sched.state(second, "b") is Q


def test_parent_resolves_to_the_submitting_run_before_the_latest(sched):
    older = sched.submit(job("a"), job("child"))
    newer = sched.submit(job("a"), now=T0 + 1)
    from_job = sched.submit(job("b", "a"), now=T0 + 2, from_run=older)
    plain = sched.submit(job("b", "a"), now=T0 + 3)
    assert sched.s.job(from_job, "b").parents == (f"{older}/a",)
    assert sched.s.job(plain, "b").parents == (f"{newer}/a",)


def test_unknown_submitting_run_is_refused(sched):
    with pytest.raises(SubmissionError, match="submitting run rnope is unknown"):
        sched.s.submit(dag(job("a")), T0, from_run="rnope")


def test_submission_from_a_job_inherits_its_agent_run_id(sched):
    parent = sched.submit(job("a"), agent_run_id="agent-7")
    child = sched.submit(job("b"), now=T0 + 1, from_run=parent)
    own = sched.submit(job("c"), now=T0 + 2, from_run=parent, agent_run_id="mine")
    assert sched.s.run(child).agent_run_id == "agent-7"
    assert sched.s.run(child).from_run == parent
    assert sched.s.run(own).agent_run_id == "mine"


# -- dynamic DAGs -----------------------------------------------------------------------------

def test_add_jobs_extends_a_run(sched):
    sched.worker("w", slots=2)
    run = sched.submit(job("a"), job("b"))
    sched.assign()
    sched.finish(run, "a")
    records = sched.add(run, job("c", "a"), job("d", "b", "c"), now=T0 + 1)
    assert type(records[0]).__name__ == "JobsAdded"
    assert sched.states(run) == {"a": C, "b": JobState.RUNNING, "c": Q, "d": P}
    assert sched.s.job(run, "d").parents == ("b", "c")


def test_add_jobs_refuses_clashing_ids_and_keeps_nothing(sched):
    run = sched.submit(job("a"))
    before = snapshot(sched.s)
    with pytest.raises(SubmissionError, match="job 'a': the id is already used in this run"):
        sched.s.add_jobs(run, [job("z"), job("a")], T0)
    with pytest.raises(SubmissionError, match="cycle: x -> y -> x"):
        sched.s.add_jobs(run, [job("x", "y", "a"), job("y", "x")], T0)
    assert snapshot(sched.s) == before
    with pytest.raises(UnknownRunError):
        sched.s.add_jobs("rnope", [job("z")], T0)


# -- run ids, references, views -------------------------------------------------------------------

def test_run_ids_are_unique_sortable_and_survive_replay(sched):
    ids = [sched.submit(job("a"), now=T0) for _ in range(3)]
    ids.append(sched.submit(job("a"), now=T0 - 100))  # a clock that went back
    assert len(set(ids)) == 4
    assert ids == sorted(ids)
    assert all(len(i) == 10 and i.startswith("r") for i in ids)
    assert sched.replayed().new_run_id(T0) == sched.s.new_run_id(T0)
    assert sched.s.new_run_id(T0) > ids[-1]


def test_resolve_run_job_bare_and_dag_prefixed_references(sched):
    first = sched.submit(job("a"), job("DAG-x"))
    second = sched.submit(job("a"), now=T0 + 1)
    assert sched.s.resolve(f"{first}/a") == (first, "a")
    assert sched.s.resolve("a") == (second, "a")
    assert sched.s.resolve("DAG-a") == (second, "a")
    assert sched.s.resolve("DAG-x") == (first, "DAG-x")
    for ref in ("ghost", "DAG-ghost", f"{first}/ghost", "rnope/a"):
        with pytest.raises(UnknownJobError, match="ghost|rnope"):
            sched.s.resolve(ref)


def test_run_views_newest_first_with_counts_and_state(sched):
    sched.worker("w", slots=3)
    first = sched.submit(job("a"), job("b", "a"), name="one", source="one.yaml")
    second = sched.submit(job("x", retries=0), now=T0 + 1)
    assert [r.run_id for r in sched.s.runs()] == [second, first]
    view = sched.s.run(first)
    assert (view.name, view.source, view.state, view.jobs) == ("one", "one.yaml",
                                                                RunState.ACTIVE, ("a", "b"))
    assert view.counts == {P: 1, Q: 1}
    sched.assign()
    sched.finish(first, "a", now=T0 + 2)
    sched.assign(T0 + 3)
    sched.finish(first, "b", now=T0 + 4)
    sched.assign(T0 + 5)
    sched.finish(second, "x", code=1, now=T0 + 6)
    assert (sched.s.run(first).state, sched.s.run(first).finished_at) == (RunState.COMPLETED,
                                                                          T0 + 4)
    assert sched.s.run(second).state is RunState.FAILED
    with pytest.raises(UnknownRunError):
        sched.s.run("rnope")


def test_job_view_and_spec(sched):
    run = sched.submit(job("a", priority=4, requirement="GPU"), name="n", agent_run_id="ag")
    view = sched.s.job(run, "a")
    assert (view.run_name, view.agent_run_id, view.priority, view.requirement, view.kind) == (
        "n", "ag", 4, "GPU", JobKind.RUN)
    assert view.waiting == "no worker with tag GPU"
    assert sched.s.job_spec(run, "a").priority == 4
    with pytest.raises(UnknownJobError):
        sched.s.job(run, "zz")


# -- retention ------------------------------------------------------------------------------------

def test_forget_finished_runs(sched):
    sched.worker("w")
    old = sched.submit(job("a"))
    sched.assign()
    sched.finish(old, "a")
    child = sched.submit(job("b", "a"), now=T0 + 1)
    new = sched.submit(job("a"), now=T0 + 2)
    with pytest.raises(InvalidTransitionError, match="still active"):
        sched.s.forget_runs([old, new])
    [record] = sched.forget(old)
    assert record.run_ids == (old,)
    assert [r.run_id for r in sched.s.runs()] == [new, child]
    assert sched.s.resolve("a") == (new, "a")
    assert sched.s.job(child, "b").parents == (f"{old}/a",)
    sched.assign(T0 + 3)
    sched.finish(child, "b")
    with pytest.raises(UnknownRunError):
        sched.s.forget_runs([old])


def test_a_child_of_a_forgotten_dead_parent_cannot_be_retried(sched):
    sched.worker("w")
    old = sched.submit(job("a", retries=0))
    child = sched.submit(job("b", "a"), now=T0 + 1)
    sched.assign()
    sched.finish(old, "a", code=1)
    sched.forget(old)
    with pytest.raises(InvalidTransitionError, match="forgotten before it completed"):
        sched.s.retry(child, "b", T0)


def test_replay_into_a_scheduler_built_with_defaults():
    s = Scheduler()
    run, records = s.submit(dag(job("a")), T0)
    fresh = Scheduler()
    for record in records:
        fresh.apply(record)
    assert fresh.run(run) == s.run(run)
