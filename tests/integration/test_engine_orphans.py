"""Layer 3: what a job leaves running is killed when it ends, and its log says so.

An in-process master and worker over real sockets, the worker starting jobs through its own
launcher process. The job double-forks a daemon (``support/daemons.py``) that leaves the job's
session and would outlive it; ``Cluster.close`` checks that no process is left at the end.
"""

from __future__ import annotations

import re

from support import wait_until
from support.cluster import run_spec
from support.daemons import Daemon, daemon_argv
from titan_actors.scheduler import JobSpec, JobState


def test_a_daemon_the_job_double_forked_is_killed_when_the_job_ends(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "daemon", JobSpec("dbl", command=tuple(daemon_argv()), retries=0),
        JobSpec("plain", command=("true",), retries=0)))
    ref = f"{accepted.run_id}/dbl"

    cluster.client.wait_job(ref, JobState.COMPLETED, timeout=10)
    text = cluster.client.log_text(ref)

    daemon = Daemon.find(text)
    assert daemon is not None, text
    wait_until(lambda: not daemon.alive(), timeout=10, what=f"{daemon} to be killed")
    assert text.startswith(b"daemon %d " % daemon.pid)
    assert re.search(rb"\n\[titan: killed 1 process the job left running: %d \(python[^)]*"
                     rb"\)\]\n\Z" % daemon.pid, text), text
    # a job that left nothing running gets no note
    cluster.client.wait_job(f"{accepted.run_id}/plain", JobState.COMPLETED)
    assert b"titan:" not in cluster.client.log_text(f"{accepted.run_id}/plain")
