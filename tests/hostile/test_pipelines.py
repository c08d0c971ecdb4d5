"""Bad and extreme pipelines, submitted over the wire to a real in-process master (layer 3).

What the scheduler's own tests (tests/unit/scheduler) check in-process is checked here where it
can still break: across the codec, the bridge and the master's replies. Refusals name the job,
the field and what would be right; every text a job carries round-trips byte for byte or is
refused at submission (never a job that dies at its start, or a log that cannot be written);
a 10k-deep chain and a wide DAG go through submission, views, the web graph and a cascade
without recursion; and a reply too big for a frame is an error for that ask alone.
"""

from __future__ import annotations

import pytest

from support.cluster import job
from titan_actors.errors import EncodeError, PipelineError, SubmissionError
from titan_actors.pipeline import parse_pipeline
from titan_actors.scheduler import JobKind, JobSpec, JobState, RunSpec, RunState, check_jobs
from titan_actors.scheduler.dag import MAX_ID_BYTES
from titan_web.views_runs import graph  # the web console's graph of a run


def after(job_id: str, *parents: str) -> JobSpec:
    return job(job_id, parents=parents)


def refused(cluster, *jobs: JobSpec, name: str = "bad") -> str:
    with pytest.raises(SubmissionError) as caught:
        cluster.client.submit(RunSpec(name, tuple(jobs)))
    return str(caught.value)


@pytest.mark.parametrize("job_id, problem", [
    ("a\x00b", "job 'a\\x00b': the id must not contain control or other unprintable"),
    ("esc\x1b[31m", "job 'esc\\x1b[31m': the id must not contain control"),
    ("rtl\u202eevil", "job 'rtl\\u202eevil': the id must not contain control"),
    ("a\nb", "job 'a\\nb': the id must not contain whitespace or '/'"),
    ("x" * (MAX_ID_BYTES + 1), f"is {MAX_ID_BYTES + 1} bytes long (UTF-8); at most "
                               f"{MAX_ID_BYTES}"),
    ("é" * (MAX_ID_BYTES // 2 + 1), "(101 characters): the id is 202 bytes long"),
    ("L" * 100_000, "... (100000 characters)"),
    (".", "job '.': the id names files of the job"),
    ("..", "job '..': the id names files of the job"),
])
def test_a_job_id_that_cannot_name_a_file_is_refused_at_submission(cluster, job_id, problem):
    message = refused(cluster, job(job_id))
    assert problem in message, message
    assert len(message) < 500  # a 100 KB id is not quoted whole


def test_what_a_process_cannot_be_started_with_is_refused_at_submission(cluster):
    message = refused(
        cluster,
        JobSpec("cmd", command=("printf", "a\x00b")),
        JobSpec("args", command=("printf",), args=("ok", "nul\x00")),
        JobSpec("svc", kind=JobKind.SERVICE, command=("true",), health=("probe\x00",)),
        JobSpec("env", command=("true",), env={"GOOD": "v", "BAD": "v\x00"}),
        JobSpec("key", command=("true",), env={"A=B": "v"}))
    for problem in ("job 'cmd': command[1] holds a NUL",
                    "job 'args': args[1] holds a NUL",
                    "job 'svc': health[0] holds a NUL",
                    "job 'env': env variable 'BAD' is invalid",
                    "job 'key': env variable 'A=B' is invalid"):
        assert problem in message, message
    assert "refused (5 problems)" in message


def test_unknown_parents_cycles_and_duplicates_name_what_is_wrong(cluster):
    message = refused(cluster, after("fetch"), after("crunch", "fecth"),
                      after("report", "crunh"))
    assert ("job 'crunch': parent 'fecth' is unknown: it is not in this submission and no run "
            "holds a job of that id (did you mean 'fetch'?)") in message
    assert "job 'report': parent 'crunh' is unknown" in message
    assert "(did you mean 'crunch'?)" in message
    message = refused(cluster, after("a", "c"), after("b", "a"), after("c", "b"),
                      after("d", "a"))
    assert "cycle: a -> b -> c -> a" in message or "cycle: c -> a -> b -> c" in message \
        or "cycle: b -> c -> a -> b" in message, message
    message = refused(cluster, job("a"), job("a"))
    assert "job 'a': the id is used twice in this submission" in message
    # the link stays usable after every refusal
    assert cluster.client.ping(b"x").payload == b"x"


NASTY = {
    "newlines": "line 1\nline 2\r\nline 3\r",
    "delimiters": "a:b/c;d|e,f=g&h",
    "quotes": "'single' \"double\" `back` $(sub) ${var} \\ \\n",
    "emoji": "\U0001F680 \u2713 \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "rtl": "abc \u200f\u202e reversed \u202c\u200e end",
    "tabs and nbsp": "\t\u00a0\u2028\u2029",
    "long": "L" * 100_000,
}


PRINTER = ("python3", "-c", "import os, sys; out = sys.stdout.buffer; "
           "out.write(os.fsencode(sys.argv[1]) + b'|' + os.environb[b'NASTY'])")


def test_every_text_a_job_carries_round_trips_exactly(cluster):
    cluster.add_worker("w1", tags=("GENERAL", "GPU:é"), slots=4)
    jobs = []
    for n, text in enumerate(NASTY.values()):
        jobs.append(JobSpec(f"émoji✓:'{n}'\"", command=PRINTER, args=(text,),
                            env={"NASTY": text}, requirement="GPU:é", retries=0,
                            hitl_message=text))
        jobs.append(JobSpec(f"gate-{n}", kind=JobKind.GATE, message=text, parents=(jobs[-1].id,)))
    spec = RunSpec("nasty", tuple(jobs))
    accepted = cluster.client.submit(spec)
    assert cluster.client.run_spec(accepted.run_id).spec.jobs == spec.jobs
    for text in NASTY.values():  # the run's own texts, on runs of a gate that waits
        named = RunSpec(text, (JobSpec("g", kind=JobKind.GATE),), agent_run_id=text[:200])
        back = cluster.client.run_spec(cluster.client.submit(named).run_id).spec
        assert (back.name, back.agent_run_id) == (text, text[:200])
    for n, text in enumerate(NASTY.values()):
        ref = f"{accepted.run_id}/{jobs[2 * n].id}"
        cluster.client.wait_job(ref, JobState.COMPLETED, timeout=15)
        assert cluster.client.log_text(ref) == text.encode() + b"|" + text.encode()
    shown = cluster.client.jobs(accepted.run_id)
    for n, text in enumerate(NASTY.values()):
        assert shown[f"hitl-gate-{jobs[2 * n].id}"].message == text
        assert shown[f"gate-{n}"].message == text


def chain(length: int) -> RunSpec:
    return RunSpec("chain", tuple(
        JobSpec(f"c{n}", command=("true",), requirement="NOBODY",
                parents=(f"c{n - 1}",) if n else ()) for n in range(length)))


def tree(count: int) -> RunSpec:
    """A binary tree of ``count`` jobs: job n waits for job (n - 1) // 2."""
    return RunSpec("tree", tuple(
        JobSpec(f"t{n}", command=("true",), requirement="NOBODY",
                parents=(f"t{(n - 1) // 2}",) if n else ()) for n in range(count)))


def check_big_run(cluster, spec: RunSpec, fits_a_frame: bool) -> None:
    client = cluster.client
    accepted = client.submit(spec)
    run_id, count = accepted.run_id, len(spec.jobs)
    assert len(accepted.job_ids) == count
    summary = client.run(run_id, jobs=False)
    assert summary.jobs == () and sum(summary.run.counts.values()) == count
    last = spec.jobs[-1].id
    assert client.job(f"{run_id}/{last}").job.parents == spec.jobs[-1].parents
    assert len(client.run_spec(run_id).spec.jobs) == count
    if fits_a_frame:
        detail = client.run(run_id)
        drawn = graph(detail)  # the web console's graph view of it
        assert len(drawn["nodes"]) == count and len(drawn["edges"]) == sum(
            len(j.parents) for j in spec.jobs)
    else:
        with pytest.raises(EncodeError, match="the reply RunDetail is .* bytes, above the "
                                              "frame limit"):
            client.run(run_id)
    assert client.ping(b"link ok").payload == b"link ok"  # a refused reply left it usable
    client.cancel(run_id)  # cascades over every job, without recursion
    after = client.run(run_id, jobs=False).run
    assert after.state is RunState.CANCELLED and after.counts == {"cancelled": count}


def test_a_10k_deep_chain_goes_through_submission_views_and_cancel(cluster):
    check_big_run(cluster, chain(10_000), fits_a_frame=True)


def test_a_10k_job_tree_goes_through_submission_views_and_cancel(cluster):
    check_big_run(cluster, tree(10_000), fits_a_frame=True)


@pytest.mark.slow
def test_a_100k_job_dag_is_accepted_and_its_too_big_view_refused_alone(cluster):
    check_big_run(cluster, tree(100_000), fits_a_frame=False)


def test_an_ask_too_big_for_a_frame_is_refused_before_it_is_sent(cluster):
    with pytest.raises(EncodeError, match="Ping is .* bytes, above the frame limit"):
        cluster.client.ping(b"x" * (17 << 20))
    assert cluster.client.ping(b"after").payload == b"after"


def test_yaml_gets_the_id_rules_from_validate_and_names_the_line_of_a_nul(tmp_path):
    long_id = "y" * (MAX_ID_BYTES + 1)
    text = (f"name: p\nversion: '1.0'\njobs:\n  - id: {long_id}\n    command: [printf, x]\n"
            "  - id: ok\n    command: ['true']\n    depends_on: [fetc]\n"
            "  - id: fetch\n    command: ['true']\n")
    spec = parse_pipeline(text, tmp_path / "p.yaml")
    with pytest.raises(SubmissionError) as caught:
        check_jobs(spec.jobs, resolve=lambda parent: None)  # what `titanctl validate` runs
    message = str(caught.value)
    assert f"is {MAX_ID_BYTES + 1} bytes long (UTF-8); at most {MAX_ID_BYTES}" in message
    assert "job 'ok': parent 'fetc' is unknown" in message and "did you mean 'fetch'" in message
    with pytest.raises(PipelineError, match=r"p\.yaml:5: job 'nul': 'command' holds a NUL"):
        parse_pipeline("name: p\nversion: '1.0'\njobs:\n  - id: nul\n"
                       "    command: [printf, \"a\\0b\"]\n", tmp_path / "p.yaml")
