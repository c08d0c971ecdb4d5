"""Layer 3: which job runs where and when: priorities, FIFO, delays, tags, pins, affinity."""

from __future__ import annotations

from support.cluster import Ledger, job, run_spec
from titan_actors.scheduler import JobState

_DONE = JobState.COMPLETED


def test_priorities_then_fifo_on_a_one_slot_worker(cluster):
    ledger = Ledger(cluster.root / "ledger")
    names = [("low1", 1), ("high1", 5), ("mid", 3), ("low2", 1), ("high2", 5), ("low3", 1)]
    accepted = cluster.client.submit(run_spec(
        "prio", *(job(name, ledger.mark("start"), priority=p) for name, p in names)))
    low1 = cluster.client.job(f"{accepted.run_id}/low1").job
    assert low1.state is JobState.QUEUED and low1.reason == "no worker with tag GENERAL"

    cluster.add_worker("w1", slots=1)
    cluster.client.wait_run(accepted.run_id)

    assert [e[1] for e in ledger.entries()] == ["high1", "high2", "mid", "low1", "low2", "low3"]


def test_fifo_across_runs_within_a_priority(cluster):
    ledger = Ledger(cluster.root / "ledger")
    runs = [cluster.client.submit(run_spec(f"r{i}", job(f"j{i}", ledger.mark("start"))))
            for i in range(4)]
    cluster.add_worker("w1", slots=1)
    for accepted in runs:
        cluster.client.wait_run(accepted.run_id)
    assert [e[1] for e in ledger.entries()] == ["j0", "j1", "j2", "j3"]


def test_a_delayed_job_waits_its_delay(cluster):
    cluster.add_worker("w1", slots=2)
    accepted = cluster.client.submit(run_spec("delay", job("later", delay=0.4), job("now")))
    ref = f"{accepted.run_id}/later"
    waiting = cluster.client.job(ref).job
    assert waiting.state is JobState.PENDING and waiting.reason.startswith("delayed until")

    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["later"].state is _DONE
    assert jobs["later"].started_at - jobs["later"].created_at >= 0.4
    assert jobs["now"].started_at < jobs["later"].started_at


def test_a_gpu_job_waits_for_a_gpu_worker_without_blocking_general_jobs(cluster):
    cluster.add_worker("cpu", tags=("GENERAL",), slots=1)
    accepted = cluster.client.submit(run_spec(
        "gpu", job("train", "echo trained", requirement="GPU", priority=9),
        job("prep", "echo prepared", priority=1)))
    run_id = accepted.run_id

    prep = cluster.client.wait_job(f"{run_id}/prep", _DONE)
    train = cluster.client.job(f"{run_id}/train").job
    assert prep.worker == "cpu"
    assert train.state is JobState.QUEUED and train.reason == "no worker with tag GPU"

    cluster.add_worker("gpu", tags=("GPU",), slots=1)
    train = cluster.client.wait_job(f"{run_id}/train", _DONE)
    assert train.worker == "gpu"


def test_a_gpu_only_worker_takes_no_general_job(cluster):
    cluster.add_worker("gpu", tags=("GPU",), slots=1)
    accepted = cluster.client.submit(run_spec("general", job("plain")))
    info = cluster.client.job(f"{accepted.run_id}/plain").job
    assert info.state is JobState.QUEUED and info.reason == "no worker with tag GENERAL"
    cluster.add_worker("cpu", slots=1)
    assert cluster.client.wait_job(f"{accepted.run_id}/plain", _DONE).worker == "cpu"


def test_a_pinned_job_runs_only_on_its_worker(cluster):
    cluster.add_worker("w1", slots=2)
    cluster.add_worker("w2", slots=2)
    accepted = cluster.client.submit(run_spec(
        "pins", job("on-w2", worker="w2"), job("on-w3", worker="w3", requirement="NOTHING")))
    run_id = accepted.run_id

    assert cluster.client.wait_job(f"{run_id}/on-w2", _DONE).worker == "w2"
    waiting = cluster.client.job(f"{run_id}/on-w3").job
    assert waiting.state is JobState.QUEUED
    assert waiting.reason == "pinned worker w3 is not connected"

    cluster.add_worker("w3", tags=("OTHER",), slots=1)  # a pin ignores the requirement tag
    assert cluster.client.wait_job(f"{run_id}/on-w3", _DONE).worker == "w3"


def test_affinity_follows_the_parent_s_worker(cluster):
    cluster.add_worker("w1", slots=2)
    cluster.add_worker("w2", slots=2)
    accepted = cluster.client.submit(run_spec(
        "affinity", job("parent", worker="w2"),
        job("sticky", parents=("parent",), affinity=True),
        job("free", parents=("parent",))))

    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["parent"].worker == "w2"
    assert jobs["sticky"].worker == "w2"   # w1 is less loaded, but affinity wins
    assert jobs["free"].worker == "w1"     # the least-loaded worker
