"""Layer 3: DAGs on a master and workers in one process, over real sockets.

Order is checked with a ledger file the jobs append to (a job never starts before its parents
completed), outputs through the master's logs (GetLogs), progress through its event stream.
"""

from __future__ import annotations

from support.cluster import Ledger, job, run_spec
from titan_actors.scheduler import JobState, RunState
from titan_actors.wire.messages.master import EventKind


def test_diamond_runs_parents_first_and_keeps_outputs(cluster):
    cluster.add_worker("w1", slots=2)
    cluster.add_worker("w2", slots=2)
    ledger = Ledger(cluster.root / "ledger")

    def step(job_id: str, *parents: str):
        return job(job_id, f"{ledger.mark('start')}; echo out-$TITAN_JOB_ID; "
                           f"echo err-$TITAN_JOB_ID >&2; {ledger.mark('end')}",
                   parents=parents)

    accepted = cluster.client.submit(run_spec(
        "diamond", step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")))
    jobs = cluster.client.wait_run(accepted.run_id)

    assert {j.state for j in jobs.values()} == {JobState.COMPLETED}
    for child, parents in {"b": "a", "c": "a", "d": "bc"}.items():
        for parent in parents:
            assert ledger.index("end", parent) < ledger.index("start", child)
    for job_id in "abcd":
        assert ledger.count("start", job_id) == 1
        text = cluster.client.log_text(f"{accepted.run_id}/{job_id}")
        assert b"out-" + job_id.encode() in text and b"err-" + job_id.encode() in text
    assert cluster.client.run(accepted.run_id).run.state is RunState.COMPLETED


def test_fan_out_and_join(cluster):
    cluster.add_worker("w1", slots=3)
    cluster.add_worker("w2", slots=3)
    ledger = Ledger(cluster.root / "ledger")
    leaves = [f"leaf{i}" for i in range(6)]
    spec = run_spec("fan", job("root", ledger.mark("start")),
                    *(job(leaf, ledger.mark("start"), parents=("root",)) for leaf in leaves),
                    job("join", ledger.mark("start"), parents=tuple(leaves)))
    accepted = cluster.client.submit(spec)
    assert accepted.job_ids == ("root", *leaves, "join")

    jobs = cluster.client.wait_run(accepted.run_id)

    assert all(j.state is JobState.COMPLETED for j in jobs.values())
    assert {jobs[leaf].worker for leaf in leaves} == {"w1", "w2"}  # spread over both
    order = [entry[1] for entry in ledger.entries()]
    assert order[0] == "root" and order[-1] == "join" and sorted(order[1:-1]) == leaves


def test_event_stream_tells_each_job_s_life_in_order(cluster):
    cluster.add_worker("w1", slots=2)
    client = cluster.client
    start = client.wait_events(1 << 60, 0.0).last_seq
    accepted = client.submit(run_spec("events", job("a", "echo hi"), job("b", parents=("a",))))
    run_id = accepted.run_id

    seen = []
    after = start
    while not any(e.kind is EventKind.RUN and e.run_state is RunState.COMPLETED for e in seen):
        batch = client.wait_events(after, 5.0, run_id)
        assert batch.events, "the event stream went quiet before the run completed"
        assert all(e.seq > after for e in batch.events)
        seen += batch.events
        after = batch.last_seq

    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert all(e.run_id == run_id for e in seen)
    for job_id in "ab":
        states = [e.job_state for e in seen
                  if e.job_id == job_id and e.kind is EventKind.JOB and e.job_state]
        assert states == [JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED] or \
            states == [JobState.PENDING, JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED]
    assert any(e.kind is EventKind.LOG and e.job_id == "a" for e in seen)
    assert seen[0].kind is EventKind.RUN and "submitted" in seen[0].detail
    # a long-poll with nothing new comes back empty at its timeout
    quiet = client.wait_events(after, 0.05, run_id)
    assert quiet.events == () and quiet.last_seq >= after


def test_logs_are_read_by_offset(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "logs", job("a", "for i in 1 2 3 4 5; do echo line$i; done")))
    cluster.client.wait_run(accepted.run_id)
    ref = f"{accepted.run_id}/a"

    whole = cluster.client.logs(ref)
    part = cluster.client.logs(ref, offset=6, limit=6)

    assert whole.data == b"".join(b"line%d\n" % i for i in range(1, 6))
    assert whole.finished and not whole.truncated and whole.next_offset == len(whole.data)
    assert part.data == b"line2\n" and part.next_offset == 12
    assert cluster.client.logs("a").run_id == accepted.run_id  # a bare id: its latest run
