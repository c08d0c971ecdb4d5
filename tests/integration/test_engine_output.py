"""Layer 3: job output reaches the master's log whole, byte for byte, and capped."""

from __future__ import annotations

import sys

from support.cluster import run_spec
from titan_actors.execution.output import TRUNCATION_MARKER as WORKER_MARKER
from titan_actors.master.logs import TRUNCATION_MARKER as MASTER_MARKER
from titan_actors.scheduler import JobSpec, JobState

LINES = 5 * 1024 * 1024 // 9 + 1   # "%08d\n": a little over 5 MiB


def python_job(job_id: str, code: str, **fields) -> JobSpec:
    return JobSpec(job_id, command=(sys.executable, "-c", code), retries=0, **fields)


def test_five_megabytes_of_output_arrive_whole(cluster):
    cluster.add_worker("w1")
    code = ("import sys\nout = sys.stdout.buffer\n"
            f"for i in range({LINES}):\n    out.write(b'%08d\\n' % i)\n")
    accepted = cluster.client.submit(run_spec("big", python_job("big", code)))
    ref = f"{accepted.run_id}/big"

    cluster.client.wait_job(ref, JobState.COMPLETED, timeout=15)
    text = cluster.client.log_text(ref)

    assert len(text) == LINES * 9 > 5 * 1024 * 1024
    assert text == b"".join(b"%08d\n" % i for i in range(LINES))
    assert not cluster.client.logs(ref).truncated


def test_invalid_utf8_keeps_its_bytes(cluster):
    cluster.add_worker("w1")
    raw = b"ok \xff\xfe \xc3\x28 \xed\xa0\x80 \x00 end\n"
    code = (f"import sys; sys.stdout.buffer.write({raw!r}); "
            "sys.stderr.buffer.write(b'\\x80\\n')")
    accepted = cluster.client.submit(run_spec("bytes", python_job("bytes", code)))
    ref = f"{accepted.run_id}/bytes"

    cluster.client.wait_job(ref, JobState.COMPLETED)
    text = cluster.client.log_text(ref)

    err = b"\x80\n"
    assert text in (raw + err, err + raw)  # no order between the two streams to keep


def test_the_master_s_log_cap_cuts_with_a_marker(make_cluster):
    cluster = make_cluster(master_options={"log_cap": 4096})
    cluster.start_master()
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "capped", python_job("capped", "import sys; sys.stdout.write('y' * 20000)")))
    ref = f"{accepted.run_id}/capped"

    cluster.client.wait_job(ref, JobState.COMPLETED)
    text = cluster.client.log_text(ref)

    assert text == b"y" * 4096 + MASTER_MARKER
    assert cluster.client.logs(ref).truncated


def test_the_worker_s_output_cap_cuts_with_a_marker(cluster):
    cluster.add_worker("w1", output_cap=1000)
    accepted = cluster.client.submit(run_spec(
        "capped", python_job("capped", "import sys; sys.stdout.write('z' * 5000)")))
    ref = f"{accepted.run_id}/capped"

    cluster.client.wait_job(ref, JobState.COMPLETED)

    assert cluster.client.log_text(ref) == b"z" * 1000 + WORKER_MARKER
