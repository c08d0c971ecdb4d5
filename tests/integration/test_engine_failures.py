"""Layer 3: failing jobs: retries with backoff, dead jobs and skipped descendants, timeouts and
cancels that kill the whole process tree, retry by hand."""

from __future__ import annotations

from pathlib import Path

import psutil

from support import wait_until
from support.cluster import SHORT_BACKOFF, Ledger, job, run_spec
from titan_actors.scheduler import JobState, RunState


def fail_until(counter: Path, success_at: int, times: Path | None = None) -> str:
    """Shell that counts its runs in ``counter`` and fails until run ``success_at``; with
    ``times``, each run appends its start and end times (epoch seconds) there."""
    clock = f'echo "$(date +%s.%N)" >> {times}; ' if times else ""
    return (f'{clock}n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; '
            f'echo "run $n"; {clock}[ "$n" -ge {success_at} ] || exit 7')


def tree(root: Path, name: str) -> str:
    """Shell that starts a grandchild, writes both pids and waits for ever."""
    return (f"sleep 60 & echo $! > {root}/{name}.grandchild; echo $$ > {root}/{name}.child; "
            "wait")


def pids_of(root: Path, name: str) -> list[int]:
    files = [root / f"{name}.child", root / f"{name}.grandchild"]
    wait_until(lambda: all(f.exists() and f.read_text().strip() for f in files),
               what=f"the pid files of {name}")
    return [int(f.read_text()) for f in files]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_job_failing_twice_is_retried_with_backoff_and_completes(cluster):
    cluster.add_worker("w1")
    counter, times = cluster.root / "counter", cluster.root / "times"
    accepted = cluster.client.submit(run_spec(
        "flaky", job("flaky", fail_until(counter, 3, times), retries=3)))
    ref = f"{accepted.run_id}/flaky"

    info = cluster.client.wait_job(ref, JobState.COMPLETED)

    assert info.attempt == 3 and counter.read_text().strip() == "3"
    history = cluster.client.job(ref).history
    failed = [e for e in history if e.job_state is JobState.FAILED]
    assert [e.attempt for e in failed] == [1, 2]
    assert all("exit code 7" in e.detail for e in failed)
    stamps = [float(line) for line in times.read_text().split()]  # start, end per run
    for number in (1, 2):  # the pause between the end of run n and the start of run n + 1
        pause = stamps[2 * number] - stamps[2 * number - 1]
        assert pause >= SHORT_BACKOFF.base * 2 ** (number - 1)
    assert cluster.client.log_text(ref).endswith(b"run 3\n")


def test_a_job_out_of_attempts_is_dead_and_its_descendants_skipped(cluster):
    cluster.add_worker("w1", slots=2)
    accepted = cluster.client.submit(run_spec(
        "doomed", job("bad", "exit 3", retries=1), job("child", parents=("bad",)),
        job("grandchild", parents=("child",)), job("bystander")))

    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["bad"].state is JobState.DEAD and jobs["bad"].attempt == 2
    assert jobs["bad"].exit_code == 3 and "no attempts left" in jobs["bad"].reason
    assert jobs["child"].state is JobState.SKIPPED and "bad" in jobs["child"].reason
    assert jobs["grandchild"].state is JobState.SKIPPED
    assert jobs["bystander"].state is JobState.COMPLETED
    assert cluster.client.run(accepted.run_id).run.state is RunState.FAILED


def test_a_timeout_kills_the_whole_process_tree(cluster):
    cluster.add_worker("w1")
    root = cluster.root
    accepted = cluster.client.submit(run_spec(
        "slow", job("slow", tree(root, "slow"), timeout=0.5),
        job("after", parents=("slow",))))
    pids = pids_of(root, "slow")

    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["slow"].state is JobState.DEAD and "timed out" in jobs["slow"].reason
    assert jobs["after"].state is JobState.SKIPPED
    wait_until(lambda: all(gone(pid) for pid in pids), what="the job's tree to be gone")


def test_cancelling_a_running_job_kills_its_tree_and_cancels_descendants(cluster):
    cluster.add_worker("w1", slots=2)
    root = cluster.root
    accepted = cluster.client.submit(run_spec(
        "cancel", job("long", tree(root, "long")), job("next", parents=("long",)),
        job("last", parents=("next",)), job("other")))
    run_id = accepted.run_id
    pids = pids_of(root, "long")
    cluster.client.wait_job(f"{run_id}/other", JobState.COMPLETED)

    text = cluster.client.cancel(f"{run_id}/long")

    assert "cancelled" in text
    jobs = cluster.client.wait_run(run_id)
    assert jobs["long"].state is JobState.CANCELLED
    assert jobs["next"].state is JobState.CANCELLED and jobs["last"].state is JobState.CANCELLED
    assert jobs["other"].state is JobState.COMPLETED
    wait_until(lambda: all(gone(pid) for pid in pids), what="the cancelled tree to be gone")
    assert cluster.client.run(run_id).run.state is RunState.CANCELLED
    # the killed attempt's late report did not resurrect it, and the slot is free again
    again = cluster.client.submit(run_spec("again", job("x"), job("y")))
    assert all(j.state is JobState.COMPLETED
               for j in cluster.client.wait_run(again.run_id).values())
    assert cluster.client.job(f"{run_id}/long").job.state is JobState.CANCELLED


def test_cancelling_a_whole_run(cluster):
    cluster.add_worker("w1", slots=1)
    root = cluster.root
    accepted = cluster.client.submit(run_spec(
        "whole", job("busy", tree(root, "busy")), job("queued"), job("child", parents=("busy",))))
    pids = pids_of(root, "busy")

    cluster.client.cancel(accepted.run_id)

    jobs = cluster.client.wait_run(accepted.run_id)
    assert {j.state for j in jobs.values()} == {JobState.CANCELLED}
    wait_until(lambda: all(gone(pid) for pid in pids), what="the run's processes to be gone")


def test_retrying_a_dead_job_runs_it_and_its_skipped_descendants(cluster):
    cluster.add_worker("w1")
    counter = cluster.root / "counter"
    ledger = Ledger(cluster.root / "ledger")
    accepted = cluster.client.submit(run_spec(
        "retry", job("once", fail_until(counter, 2)),
        job("child", ledger.mark("start"), parents=("once",))))
    run_id = accepted.run_id
    jobs = cluster.client.wait_run(run_id)
    assert jobs["once"].state is JobState.DEAD and jobs["child"].state is JobState.SKIPPED

    text = cluster.client.retry(f"{run_id}/once")

    assert "retrying" in text
    jobs = cluster.client.wait_run(run_id)
    assert jobs["once"].state is JobState.COMPLETED and jobs["child"].state is JobState.COMPLETED
    assert ledger.count("start", "child") == 1
    assert cluster.client.run(run_id).run.state is RunState.COMPLETED
