"""Layer 3: ``GetRunSpec`` over real sockets to a master with a cluster key: a client gets a
run's spec (without the jobs a job of the run added), submits it again as a new run; a job's
token reaches only its own run's spec."""

from __future__ import annotations

import os
import time

import pytest

from support.cluster import job, run_spec
from titan_actors.errors import PermissionDeniedError
from titan_actors.wire.auth import JobToken, KeyRing
from titan_actors.wire.messages.handshake import JobTokenClaims


def _job_client(cluster, keys: KeyRing, run_id: str, job_id: str):
    claims = JobTokenClaims(run_id, job_id, 1, time.time() + 600, os.urandom(8))
    token = JobToken.parse(keys.mint_job_token(claims))
    return cluster.new_client(keys=None, token=token, identity=f"job-{job_id}")


def test_a_runs_spec_comes_back_without_added_jobs_and_a_job_sees_only_its_own(make_cluster):
    keys = KeyRing(os.urandom(32))
    cluster = make_cluster(keys=keys)
    cluster.start_master()  # no worker: the jobs wait in the queue
    first = cluster.client.submit(run_spec("first", job("a", hitl_message="Go?"),
                                           job("b", parents=("a",)))).run_id
    other = cluster.client.submit(run_spec("other", job("c"))).run_id

    adder = _job_client(cluster, keys, first, "b")
    adder.add_jobs(first, (job("added", parents=("b",)),))
    assert cluster.client.jobs(first)["added"].added_by == "b"

    found = cluster.client.run_spec(first)
    assert found.run_id == first and found.spec.name == "first"
    assert [(j.id, j.parents) for j in found.spec.jobs] == [("a", ()), ("b", ("a",))]
    assert adder.run_spec("latest").run_id == first  # a job's "latest" is its own run
    with pytest.raises(PermissionDeniedError, match=f"scoped to run '{first}'"):
        adder.run_spec(other)

    again = cluster.client.rerun(first)
    assert again.run_id not in (first, other) and again.name == "first"
    assert list(cluster.client.jobs(again.run_id)) == ["a", "hitl-gate-a", "b"]
