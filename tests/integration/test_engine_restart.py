"""Layer 3: the master restarts on its data directory and port while workers keep running.

Workers reconnect and report what they run and what finished while the master was away; every
job completes exactly once (the ledger), and late or stale reports are refused.
"""

from __future__ import annotations

import time
from pathlib import Path

from support import wait_until
from support.cluster import LEASE, Ledger, job, run_spec
from titan_actors.scheduler import JobState, RunState
from titan_actors.wire.messages import worker as w
from titan_actors.wire.messages.master import EventKind
from titan_actors.wire.roles import Role
from titan_actors.wire.server import dial


def step(ledger: Ledger, go: Path | None = None) -> str:
    hold = f"while [ ! -e {go} ]; do sleep 0.02; done; " if go else ""
    return f"{ledger.mark('start')}; {hold}{ledger.mark('end')}"


def test_a_restarted_master_resumes_the_dag_and_runs_every_job_once(cluster):
    ledger = Ledger(cluster.root / "ledger")
    go_b, go_e = cluster.root / "go-b", cluster.root / "go-e"
    cluster.add_worker("w1", slots=2)
    cluster.add_worker("w2", slots=2)
    accepted = cluster.client.submit(run_spec(
        "restart", job("a", step(ledger)), job("b", step(ledger, go_b), parents=("a",)),
        job("c", step(ledger), parents=("a",)), job("d", step(ledger), parents=("b", "c")),
        job("e", step(ledger, go_e), parents=("d",)), job("f", step(ledger), parents=("e",))))
    run_id = accepted.run_id
    cluster.client.wait_job(f"{run_id}/c", JobState.COMPLETED)
    assert cluster.client.job(f"{run_id}/b").job.state is JobState.RUNNING

    # b finishes while there is no master: its worker keeps the result for the next master
    port = cluster.stop_master()[1]
    go_b.touch()
    wait_until(lambda: ledger.count("end", "b") == 1, what="b to finish without a master")
    cluster.start_master(port=port)

    # e is running when the master goes away again, and still running when it is back
    cluster.client.wait_job(f"{run_id}/e", JobState.RUNNING, timeout=10)
    wait_until(lambda: ledger.count("start", "e") == 1, what="e to start")
    cluster.stop_master()
    cluster.start_master(port=port)
    cluster.client.wait_workers("w1", "w2")
    cluster.client.follow(lambda c: sum(w.running for w in c.workers()) == 1,
                          what="e to be re-attached to its worker")
    go_e.touch()

    jobs = cluster.client.wait_run(run_id, timeout=10)

    assert {j.state for j in jobs.values()} == {JobState.COMPLETED}
    assert all(j.attempt == 1 for j in jobs.values()), {j.job_id: j.attempt for j in jobs.values()}
    for job_id in "abcdef":
        assert ledger.count("start", job_id) == 1 and ledger.count("end", job_id) == 1
    for child, parents in {"b": "a", "c": "a", "d": "bc", "e": "d", "f": "e"}.items():
        for parent in parents:
            assert ledger.index("end", parent) < ledger.index("start", child)
    assert cluster.client.run(run_id).run.state is RunState.COMPLETED


def test_an_attempt_no_worker_claims_after_a_restart_runs_again(cluster):
    ledger = Ledger(cluster.root / "ledger")
    cluster.add_worker("gone", tags=("SPECIAL",))
    accepted = cluster.client.submit(run_spec(
        "orphan", job("x", f"{ledger.mark('start')}; [ $TITAN_ATTEMPT -ge 2 ] || sleep 60",
                      requirement="SPECIAL", retries=1)))
    ref = f"{accepted.run_id}/x"
    cluster.client.wait_job(ref, JobState.RUNNING)
    wait_until(lambda: ledger.count("start", "x") == 1, what="x to start")

    port = cluster.stop_master()[1]
    cluster.stop_worker("gone")  # it dies with its job while the master is away
    cluster.start_master(port=port)
    started = time.monotonic()
    cluster.add_worker("new", tags=("SPECIAL",))

    info = cluster.client.wait_job(ref, JobState.COMPLETED, timeout=LEASE + 5)

    assert time.monotonic() - started >= LEASE * 0.8  # not before the lease ran out
    assert info.attempt == 2 and info.worker == "new"
    failed = [e for e in cluster.client.job(ref).history if e.job_state is JobState.FAILED]
    assert "no worker claimed it after a restart" in failed[-1].detail


def test_stale_completions_are_refused(cluster):
    ledger = Ledger(cluster.root / "ledger")
    go = cluster.root / "go"
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("stale", job("x", step(ledger, go))))
    run_id = accepted.run_id
    ref = f"{run_id}/x"
    cluster.client.wait_job(ref, JobState.RUNNING)
    ghost = dial(*cluster.address, role=Role.WORKER, identity="ghost", timeout=5)
    try:
        def report(attempt: int, epoch: int, exit_code: int) -> None:
            result = w.AttemptResult(w.AttemptRef(run_id, "x", attempt, epoch), exit_code,
                                     "ghost report", time.time())
            ghost.remote.ask(w.JobFinished(result), timeout=5)

        for attempt, epoch in [(0, 1), (2, 1), (1, 10_000)]:  # no such attempt, or epoch
            report(attempt, epoch, 0)
        assert cluster.client.job(ref).job.state is JobState.RUNNING

        start = cluster.client.last_seq()
        go.touch()
        after = cluster.client.wait_event(
            lambda e: e.job_id == "x" and e.job_state is JobState.COMPLETED, start).seq
        for epoch in range(1, 50):  # the real (attempt, epoch) among them: already recorded
            report(1, epoch, 1)
    finally:
        ghost.close()

    info = cluster.client.job(ref).job
    assert info.state is JobState.COMPLETED and info.exit_code == 0 and info.attempt == 1
    quiet = cluster.client.wait_events(after, 0.2, run_id)
    assert not [e for e in quiet.events if e.kind is EventKind.JOB]
    assert ledger.count("start", "x") == 1


def test_a_client_resuming_the_event_stream_after_a_restart_is_told_to_reset(cluster):
    cluster.add_worker("w1")
    for i in range(3):  # events that are not records (logs, worker news) move the stream on
        cluster.client.wait_run(cluster.client.submit(
            run_spec(f"r{i}", job("talk", "echo hello"))).run_id)
    before = cluster.client.last_seq()

    port = cluster.stop_master()[1]
    cluster.start_master(port=port)
    batch = cluster.client.wait_events(before, 2.0)

    assert batch.reset, "a resumed follower would go on without the events it missed"
    assert cluster.client.wait_events(batch.last_seq, 0.0).reset is False
