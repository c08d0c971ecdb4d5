"""Layer 3: human approval gates on a master and a worker in one process, over real sockets.

Decisions through the client API and through Titan's store key (with the role rules), who
decided and why, a deadline, and a decision that survives a master restart.
"""

from __future__ import annotations

import os

import pytest

from support.cluster import job, run_spec
from titan_actors.errors import InvalidTransitionError, PermissionDeniedError
from titan_actors.scheduler import JobKind, JobSpec, JobState
from titan_actors.wire.auth import KeyRing


def test_hitl_message_waits_then_approval_runs_the_rest(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "ml", job("train", "echo trained", hitl_message="Deploy the model?"),
        job("deploy", "echo deployed", parents=("train",))))
    run_id = accepted.run_id
    assert accepted.job_ids == ("train", "deploy")
    gate = cluster.client.wait_job(f"{run_id}/hitl-gate-train", JobState.WAITING)
    assert (gate.kind, gate.message, gate.status) == (JobKind.GATE, "Deploy the model?",
                                                       "RUNNING")
    assert gate.deadline > gate.created_at
    assert cluster.client.job(f"{run_id}/deploy").job.status == "PENDING"
    assert [g.job_id for g in cluster.client.gates()] == ["hitl-gate-train"]

    text = cluster.client.decide_gate("hitl-gate-train", True, "metrics look fine")
    jobs = cluster.client.wait_run(run_id)

    assert text == f"gate {run_id}/hitl-gate-train approved"
    assert jobs["deploy"].state is JobState.COMPLETED
    decided = jobs["hitl-gate-train"]
    assert decided.state is JobState.APPROVED
    assert decided.decided_by == "test (client)" and decided.comment == "metrics look fine"
    with pytest.raises(InvalidTransitionError, match="decided already"):
        cluster.client.decide_gate(f"{run_id}/hitl-gate-train", False)
    assert cluster.client.gates() == ()


def test_rejection_skips_and_a_deadline_times_out(cluster):
    cluster.add_worker("w1")
    rejected = cluster.client.submit(run_spec(
        "r", JobSpec("g", kind=JobKind.GATE, message="ok?"),
        job("after", parents=("g",))))
    cluster.client.wait_job(f"{rejected.run_id}/g", JobState.WAITING)
    cluster.client.decide_gate(f"{rejected.run_id}/g", False, "no")
    jobs = cluster.client.wait_run(rejected.run_id)
    assert (jobs["g"].state, jobs["after"].state) == (JobState.REJECTED, JobState.SKIPPED)

    timed = cluster.client.submit(run_spec(
        "t", JobSpec("g2", kind=JobKind.GATE, max_wait_seconds=0.2),
        job("after2", parents=("g2",))))
    jobs = cluster.client.wait_run(timed.run_id)
    assert (jobs["g2"].state, jobs["after2"].state) == (JobState.TIMED_OUT, JobState.SKIPPED)
    assert jobs["g2"].status == "DEAD"


def test_titan_scripts_decide_by_the_store_key(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "s", JobSpec("gate-a", kind=JobKind.GATE), job("next", parents=("gate-a",))))
    cluster.client.wait_job(f"{accepted.run_id}/gate-a", JobState.WAITING)

    cluster.client.store_put("titan:hitl:status:gate-a", "APPROVED")

    jobs = cluster.client.wait_run(accepted.run_id)
    assert jobs["gate-a"].state is JobState.APPROVED and jobs["next"].state is JobState.COMPLETED
    assert jobs["gate-a"].decided_by == "test (client)"
    assert cluster.client.store_get("titan:hitl:status:gate-a") == "APPROVED"
    cluster.client.store_put("titan:hitl:status:no-such-gate", "APPROVED")  # a plain write
    assert cluster.client.store_get("titan:hitl:status:no-such-gate") == "APPROVED"


def test_a_job_cannot_decide_a_gate_even_through_the_store(make_cluster):
    cluster = make_cluster(keys=KeyRing(os.urandom(32)))
    cluster.start_master()
    cluster.add_worker("w1")
    script = ("from titan_sdk import TitanClient\n"
              "print(TitanClient().store_put('titan:hitl:status:gate-b', 'APPROVED'))\n")
    accepted = cluster.client.submit(run_spec(
        "sneaky", JobSpec("gate-b", kind=JobKind.GATE),
        JobSpec("agent", script_name="agent.py", script=script.encode(), retries=0)))
    cluster.client.wait_job(f"{accepted.run_id}/agent", JobState.COMPLETED)

    out = cluster.client.log_text(f"{accepted.run_id}/agent").decode()
    assert out.startswith("ERROR: ") and "a job may not decide gates" in out, out
    assert cluster.client.job(f"{accepted.run_id}/gate-b").job.state is JobState.WAITING
    cluster.client.decide_gate(f"{accepted.run_id}/gate-b", False, "by a person")


def test_a_waiting_gate_and_a_decision_survive_a_master_restart(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "restart", JobSpec("g1", kind=JobKind.GATE, message="first"),
        JobSpec("g2", kind=JobKind.GATE, message="second"), job("end", parents=("g1", "g2"))))
    run_id = accepted.run_id
    cluster.client.wait_job(f"{run_id}/g2", JobState.WAITING)
    cluster.client.decide_gate(f"{run_id}/g1", True, "before the restart")

    port = cluster.stop_master()[1]
    cluster.start_master(port=port)

    gates = {g.job_id: g for g in cluster.client.gates(all=True)}
    assert gates["g1"].state is JobState.APPROVED and gates["g1"].comment == "before the restart"
    assert gates["g2"].state is JobState.WAITING and gates["g2"].message == "second"
    cluster.client.decide_gate(f"{run_id}/g2", True)
    assert cluster.client.wait_run(run_id)["end"].state is JobState.COMPLETED


def test_deciding_needs_the_right_to_decide(cluster):
    from titan_actors.wire.messages.lifecycle import DecideGate
    from titan_actors.wire.roles import Role
    accepted = cluster.client.submit(run_spec("w", JobSpec("g", kind=JobKind.GATE)))
    cluster.client.wait_job(f"{accepted.run_id}/g", JobState.WAITING)
    worker_like = cluster.new_client(role=Role.WORKER, identity="w9")
    with pytest.raises(PermissionDeniedError, match="may not send DecideGate"):
        worker_like.ask(DecideGate(f"{accepted.run_id}/g", True, ""))
