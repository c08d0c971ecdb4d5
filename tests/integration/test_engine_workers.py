"""Layer 3: workers that die, blink or drain while they run jobs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from support import wait_until
from support.cluster import LEASE, Ledger, job, run_spec
from titan_actors.scheduler import JobState
from titan_actors.wire.messages.master import EventKind


def hold_until(go: Path, ledger: Ledger) -> str:
    """Shell: note the start, then run until the file ``go`` exists."""
    return f"{ledger.mark('start')}; while [ ! -e {go} ]; do sleep 0.02; done; echo done"


def hang_first_time(ledger: Ledger, pid_file: Path) -> str:
    """Shell: the first run (by the ledger) hangs, writing its pid; later runs succeed."""
    return (f"{ledger.mark('start')}; if [ $(grep -c . {ledger}) -le 1 ]; then "
            f"echo $$ > {pid_file}; sleep 60; fi; echo finished")


def worker_event(name: str, detail: str):
    return lambda e: e.kind is EventKind.WORKER and e.worker == name and e.detail == detail


def test_a_killed_worker_s_job_is_dispatched_again_after_the_lease(cluster):
    ledger = Ledger(cluster.root / "ledger")
    pid_file = cluster.root / "first.pid"
    cluster.spawn_worker_process("doomed")
    accepted = cluster.client.submit(run_spec(
        "lost", job("work", hang_first_time(ledger, pid_file), retries=1)))
    ref = f"{accepted.run_id}/work"
    running = cluster.client.wait_job(ref, JobState.RUNNING)
    assert running.worker == "doomed" and running.attempt == 1
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the job's pid")
    first_pid = int(pid_file.read_text())
    cluster.add_worker("spare")
    after = cluster.client.last_seq()

    cluster.kill_worker_process("doomed")

    lost = cluster.client.wait_event(worker_event("doomed", "lost"), after, timeout=LEASE + 3)
    info = cluster.client.wait_job(ref, JobState.COMPLETED)
    assert info.attempt == 2 and info.worker == "spare"
    assert lost.at - cluster.client.wait_event(worker_event("doomed", "disconnected"),
                                               after).at >= LEASE * 0.8
    failed = [e for e in cluster.client.job(ref).history if e.job_state is JobState.FAILED]
    assert len(failed) == 1 and "worker doomed was lost" in failed[0].detail
    assert not psutil.pid_exists(first_pid) or \
        psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
    assert ledger.count("start", "work") == 2


def test_a_worker_that_reconnects_quickly_keeps_its_running_job(cluster):
    ledger = Ledger(cluster.root / "ledger")
    go = cluster.root / "go"
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("blink", job("work", hold_until(go, ledger))))
    run_id = accepted.run_id
    ref = f"{run_id}/work"
    cluster.client.wait_job(ref, JobState.RUNNING)
    wait_until(lambda: ledger.count("start", "work") == 1, what="the job to start")
    after = cluster.client.last_seq()

    cluster.master.drop_connection("w1")

    cluster.client.wait_event(worker_event("w1", "disconnected"), after)
    cluster.client.wait_event(worker_event("w1", "connected"), after)
    cluster.client.follow(lambda c: any(w.name == "w1" and w.connected and w.running == 1
                                        for w in c.workers()),
                          what="w1 to report its running job again")
    # a whole lease passes without the job being declared lost
    quiet = cluster.client.wait_events(cluster.client.last_seq(), LEASE * 1.5, run_id)
    assert not [e for e in quiet.events if e.kind is EventKind.JOB]
    go.touch()
    info = cluster.client.wait_job(ref, JobState.COMPLETED)
    assert info.attempt == 1 and info.worker == "w1"
    assert ledger.count("start", "work") == 1
    assert cluster.client.log_text(ref) == b"done\n"


def test_a_drained_worker_finishes_its_job_and_stops(cluster):
    ledger = Ledger(cluster.root / "ledger")
    go = cluster.root / "go"
    drained = cluster.add_worker("w1", slots=2, drain_timeout=5.0)
    accepted = cluster.client.submit(run_spec("drain", job("work", hold_until(go, ledger))))
    ref = f"{accepted.run_id}/work"
    cluster.client.wait_job(ref, JobState.RUNNING)

    drained.drain()
    cluster.client.follow(lambda c: any(w.name == "w1" and w.draining for w in c.workers()),
                          what="the master to see w1 draining")
    # no new work for w1 while it drains (not even offered and handed back)
    other = cluster.client.submit(run_spec("more", job("other")))
    waiting = cluster.client.job(f"{other.run_id}/other").job
    assert waiting.state is JobState.QUEUED and waiting.reason == "no worker with tag GENERAL"
    cluster.add_worker("w2")
    assert cluster.client.wait_job(f"{other.run_id}/other", JobState.COMPLETED).worker == "w2"
    assert not [e for e in cluster.client.job(f"{other.run_id}/other").history
                if "handed back" in e.detail]
    go.touch()

    info = cluster.client.wait_job(ref, JobState.COMPLETED)
    assert info.attempt == 1 and info.worker == "w1"
    assert drained.ref.join(5.0), "the drained worker did not stop"
    assert ledger.count("start", "work") == 1


def test_a_short_drain_hands_the_job_back_without_counting_an_attempt(cluster):
    ledger = Ledger(cluster.root / "ledger")
    pid_file = cluster.root / "first.pid"
    drained = cluster.add_worker("w1", drain_timeout=0.2)
    accepted = cluster.client.submit(run_spec(
        "handback", job("work", hang_first_time(ledger, pid_file), retries=0)))
    ref = f"{accepted.run_id}/work"
    assert cluster.client.wait_job(ref, JobState.RUNNING).worker == "w1"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the job's pid")
    cluster.add_worker("w2")

    drained.drain()

    info = cluster.client.wait_job(ref, JobState.COMPLETED)
    assert info.attempt == 1 and info.worker == "w2"
    assert drained.ref.join(5.0), "the drained worker did not stop"
    history = cluster.client.job(ref).history
    assert any("handed back by worker w1" in e.detail for e in history)
    assert not [e for e in history if e.job_state in (JobState.FAILED, JobState.DEAD)]
    assert ledger.count("start", "work") == 2


def test_a_worker_restarted_within_its_lease_gets_its_lost_job_run_again(make_cluster):
    lease = 8.0  # longer than the restart takes
    cluster = make_cluster(master_options={"lease": lease})
    cluster.start_master()
    ledger = Ledger(cluster.root / "ledger")
    pid_file = cluster.root / "first.pid"
    cluster.spawn_worker_process("phoenix")
    accepted = cluster.client.submit(run_spec(
        "phoenix", job("work", hang_first_time(ledger, pid_file), retries=1)))
    ref = f"{accepted.run_id}/work"
    cluster.client.wait_job(ref, JobState.RUNNING)
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the job's pid")

    cluster.kill_worker_process("phoenix")
    started = time.monotonic()
    cluster.spawn_worker_process("phoenix")  # back under the same name, without the job

    info = cluster.client.wait_job(ref, JobState.COMPLETED, timeout=lease)
    assert time.monotonic() - started < lease  # its registration said the job was gone
    assert info.attempt == 2 and info.worker == "phoenix"
    failed = [e for e in cluster.client.job(ref).history if e.job_state is JobState.FAILED]
    assert len(failed) == 1 and "phoenix" in failed[0].detail
    assert ledger.count("start", "work") == 2


def test_jobs_dispatched_as_their_worker_registers_are_reported_from_the_start(cluster):
    accepted = cluster.client.submit(run_spec(
        "queued", *(job(f"j{i}", "echo first") for i in range(3))))
    cluster.add_worker("w1", slots=3)  # the master dispatches all three while registering it

    cluster.client.wait_run(accepted.run_id)

    for i in range(3):
        ref = f"{accepted.run_id}/j{i}"
        history = cluster.client.job(ref).history
        assert any(e.detail.startswith("process ") and e.detail.endswith(" started")
                   for e in history), history
        assert cluster.client.log_text(ref) == b"first\n"


def test_a_worker_whose_launcher_died_starts_a_new_one(cluster):
    handle = cluster.add_worker("w1", slots=1)
    launcher = handle.ref._cell.instance.launcher
    os.kill(launcher.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(launcher.pid)], timeout=5)
    accepted = cluster.client.submit(run_spec("after-launcher", job("a", "echo alive")))
    jobs = cluster.client.wait_run(accepted.run_id, timeout=10)
    assert jobs["a"].state is JobState.COMPLETED and jobs["a"].attempt == 1
    assert b"alive" in cluster.client.log_text(f"{accepted.run_id}/a")
