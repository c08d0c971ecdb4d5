"""Layer 3: what a job's process is told (TITAN_*), and the scoped token it calls back with."""

from __future__ import annotations

import json
import os
import sys

from support.cluster import job, run_spec
from titan_actors.scheduler import JobSpec, JobState, RunState
from titan_actors.wire.auth import JobToken, KeyRing

_ENV_DUMP = ("import json, os, sys; "
             "sys.stdout.write(json.dumps(dict(os.environ)))")

# A job that calls the master with its token: ping, submit a run, read it, and try to act on
# a run that is not its own. Prints what happened as JSON.
_CALL_BACK = """
import json, os
from titan_actors.client import MasterClient
from titan_actors.errors import PermissionDeniedError
from titan_actors.scheduler import JobSpec, RunSpec

found = {}
with MasterClient.from_environment(timeout=10, identity="job") as client:
    found["pong"] = client.ping(b"hi").identity
    accepted = client.submit(RunSpec("from-a-job", (JobSpec("inner", command=("true",)),)))
    found["child_run"] = accepted.run_id
    found["own_state"] = client.job(os.environ["TITAN_RUN_ID"] + "/caller").job.state.value
    try:
        client.add_jobs(os.environ["OTHER_RUN"], (JobSpec("intruder", command=("true",)),))
        found["other_run"] = "allowed"
    except PermissionDeniedError as error:
        found["other_run"] = "refused: " + str(error)
print(json.dumps(found))
"""


def env_of(cluster, ref: str) -> dict[str, str]:
    cluster.client.wait_job(ref, JobState.COMPLETED)
    return json.loads(cluster.client.log_text(ref))


def test_a_job_is_told_who_it_is_and_where_the_master_is(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "env", JobSpec("dump", command=(sys.executable, "-c", _ENV_DUMP), retries=0)))

    env = env_of(cluster, f"{accepted.run_id}/dump")

    host, port = cluster.address
    assert env["TITAN_JOB_ID"] == "dump" and env["TITAN_RUN_ID"] == accepted.run_id
    assert env["TITAN_ATTEMPT"] == "1"
    assert (env["TITAN_HOST"], int(env["TITAN_PORT"])) == (host, port)
    assert env["TITAN_TOKEN"] == ""  # no cluster key: nothing to prove


def test_a_job_calls_the_master_with_its_token_and_never_sees_the_key(make_cluster, tmp_path,
                                                                       monkeypatch):
    secret = os.urandom(32)
    key_file = tmp_path / "cluster.key"
    key_file.write_text(secret.hex() + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("TITAN_KEY_FILE", str(key_file))  # in the worker's own environment
    cluster = make_cluster(keys=KeyRing(secret))
    cluster.start_master()
    cluster.add_worker("w1", slots=2)
    other = cluster.client.submit(run_spec("other", job("first")))
    cluster.client.wait_run(other.run_id)

    accepted = cluster.client.submit(run_spec(
        "caller", JobSpec("caller", script_name="call.py", script=_CALL_BACK.encode(),
                          env={"OTHER_RUN": other.run_id}, retries=0),
        JobSpec("dump", command=(sys.executable, "-c", _ENV_DUMP), retries=0)))
    run_id = accepted.run_id

    found = env_of(cluster, f"{run_id}/caller")
    env = env_of(cluster, f"{run_id}/dump")

    assert found["pong"] == "master"
    assert found["own_state"] == "running"
    assert found["other_run"].startswith("refused: ") and run_id in found["other_run"]
    child = cluster.client.wait_run(found["child_run"])
    assert child["inner"].state is JobState.COMPLETED
    assert cluster.client.run(found["child_run"]).run.state is RunState.COMPLETED
    token = JobToken.parse(env["TITAN_TOKEN"])
    assert (token.claims.run_id, token.claims.job_id, token.claims.attempt) == \
        (run_id, "dump", 1)
    assert "TITAN_KEY_FILE" not in env
    assert not [name for name, value in env.items()
                if secret.hex() in value or str(key_file) in value]
