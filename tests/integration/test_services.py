"""Layer 3: services on a worker, real sockets and real processes through the launcher: ready
before their children run, restarts with a growing backoff, the end when restarts run out, stop
and cancel (the process gone, the port free again), a taken port, a readiness timeout, and the
reports sent again after the master comes back."""

from __future__ import annotations

import os
import signal
import socket
import sys

import psutil
import pytest

from support import wait_until
from support.cluster import job, run_spec
from titan_actors.execution import workspace
from titan_actors.execution.services import RestartPolicy, free_port, port_in_use
from titan_actors.scheduler import JobKind, JobSpec, JobState

# jitter 0: the delays are exact; healthy_after long: no reset within a test
FAST_RESTARTS = RestartPolicy(base=0.05, cap=0.4, jitter=0.0, healthy_after=600.0)

# A TCP service: counts its starts in ./starts-<job> (its working directory is the run's),
# writes its pid to ./pid-<job>, exits with 3 at once for its first `crash` starts, else answers
# every connection with "pong <what it got>".
SERVER = b"""\
import os, socket, sys
job = os.environ["TITAN_JOB_ID"]
crash = int(sys.argv[1]) if len(sys.argv) > 1 else 0
try:
    with open(f"starts-{job}") as f:
        n = int(f.read()) + 1
except FileNotFoundError:
    n = 1
with open(f"starts-{job}", "w") as f:
    f.write(str(n))
with open(f"pid-{job}", "w") as f:
    f.write(str(os.getpid()))
port = int(os.environ["PORT"])
assert os.environ["TITAN_SERVICE_PORT"] == str(port)
print(f"start {n} on port {port}", flush=True)
if n <= crash:
    sys.exit(3)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen()
while True:
    conn, _ = server.accept()
    try:
        data = conn.recv(100)
        if data:
            conn.sendall(b"pong " + data)
    except OSError:
        pass
    conn.close()
"""

# A child of the service "api": reaches it through TITAN_SERVICE_API (host:port).
CLIENT = b"""\
import os, socket
host, port = os.environ["TITAN_SERVICE_API"].rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=5) as conn:
    conn.sendall(b"hello")
    print(conn.recv(100).decode())
"""

# A health command: ready when PORT accepts a connection.
HEALTH = (sys.executable, "-c",
          "import os, socket; socket.create_connection(('127.0.0.1', int(os.environ['PORT'])),"
          " timeout=1).close()")


def service(job_id: str, crash: int = 0, **fields) -> JobSpec:
    fields.setdefault("retries", 0)
    return JobSpec(job_id, kind=JobKind.SERVICE, script_name="server.py", script=SERVER,
                   args=(str(crash),), **fields)


@pytest.fixture(name="cluster")
def services_cluster(make_cluster):
    made = make_cluster(worker_options=dict(service_restart=FAST_RESTARTS))
    made.start_master()
    return made


def run_file(cluster, run_id: str, name: str, worker: str = "w1") -> str:
    path = workspace.run_dir(cluster.workers[worker].options.data_dir, run_id) / name
    return path.read_text() if path.exists() else ""


def history(cluster, ref: str, state: JobState) -> list:
    return [e for e in cluster.client.job(ref).history if e.job_state is state]


def worker_idle(cluster) -> None:
    """Wait until the worker reported the end of every attempt (no restart can follow)."""
    wait_until(lambda: all(w.running == 0 for w in cluster.client.workers()), 5.0,
               interval=0.02, what="the worker to report the end of its attempts")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_child_runs_once_the_service_is_ready_and_reaches_it_on_its_port(cluster):
    cluster.add_worker("w1", slots=2)
    accepted = cluster.client.submit(run_spec(
        "serve", service("api"),
        JobSpec("client", script_name="client.py", script=CLIENT, parents=("api",), retries=0)))
    run_id = accepted.run_id

    client = cluster.client.wait_job(f"{run_id}/client", JobState.COMPLETED, JobState.DEAD)

    assert client.state is JobState.COMPLETED, client.reason
    assert cluster.client.log_text(f"{run_id}/client").strip() == b"pong hello"
    api = cluster.client.job(f"{run_id}/api").job
    assert api.state is JobState.READY and api.port and api.restarts == 0
    [ready] = history(cluster, f"{run_id}/api", JobState.READY)
    [started] = history(cluster, f"{run_id}/client", JobState.RUNNING)
    assert ready.seq < started.seq  # dispatched only once the service was ready
    assert run_file(cluster, run_id, "starts-api") == "1"


def test_a_crashing_service_restarts_with_a_growing_backoff_then_serves(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("flaky", service("api", crash=3)))
    ref = f"{accepted.run_id}/api"

    info = cluster.client.wait_job(ref, JobState.READY, timeout=10.0)

    assert info.restarts == 3 and info.port
    reasons = [e.detail for e in history(cluster, ref, JobState.RESTARTING)]
    assert reasons == ["exit code 3; restart 1 in 0.05 s", "exit code 3; restart 2 in 0.1 s",
                       "exit code 3; restart 3 in 0.2 s"]
    assert run_file(cluster, accepted.run_id, "starts-api") == "4"
    cluster.client.stop_service(ref)
    worker_idle(cluster)
    log = cluster.client.log_text(ref).decode()
    assert log.count(f"on port {info.port}") == 4  # the same port for every process
    assert "[titan: the service exited (exit code 3); restart 2 in 0.1 s]" in log
    assert log.index("start 2 on") < log.index("restart 2 in") < log.index("start 3 on")


def test_a_service_out_of_restarts_is_dead_and_its_children_skipped(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec(
        "doomed", service("api", crash=99, max_restarts=1), job("child", parents=("api",))))

    jobs = cluster.client.wait_run(accepted.run_id)

    api = jobs["api"]
    assert api.state is JobState.DEAD and api.exit_code == 3 and api.restarts == 1
    assert api.reason == "exit code 3; exited 2 times; max_restarts 1 reached"
    assert jobs["child"].state is JobState.SKIPPED
    assert run_file(cluster, accepted.run_id, "starts-api") == "2"


def test_stopping_a_service_kills_it_for_good_and_frees_its_port(cluster):
    cluster.add_worker("w1")
    port = free_port()
    accepted = cluster.client.submit(run_spec("stop", service("api", port=port)))
    ref = f"{accepted.run_id}/api"
    info = cluster.client.wait_job(ref, JobState.READY)
    assert info.port == port and port_in_use(port)
    pid = int(run_file(cluster, accepted.run_id, "pid-api"))

    assert cluster.client.stop_service(ref) == "STOPPED: DAG-api"

    assert cluster.client.job(ref).job.state is JobState.STOPPED
    worker_idle(cluster)
    wait_until(lambda: gone(pid), what="the service's process to end")
    wait_until(lambda: not port_in_use(port), what="the port to be free")
    assert run_file(cluster, accepted.run_id, "starts-api") == "1"  # not restarted
    assert cluster.client.job(ref).job.state is JobState.STOPPED


def test_cancelling_a_ready_service_kills_it(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("cancel", service("api", health=HEALTH)))
    ref = f"{accepted.run_id}/api"
    port = cluster.client.wait_job(ref, JobState.READY).port
    pid = int(run_file(cluster, accepted.run_id, "pid-api"))

    cluster.client.cancel(ref)

    assert cluster.client.job(ref).job.state is JobState.CANCELLED
    worker_idle(cluster)
    wait_until(lambda: gone(pid), what="the service's process to end")
    wait_until(lambda: not port_in_use(port), what="the port to be free")
    assert run_file(cluster, accepted.run_id, "starts-api") == "1"


def test_a_port_in_use_ends_the_service_at_once(cluster):
    cluster.add_worker("w1")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        accepted = cluster.client.submit(run_spec("taken", service("api", port=port)))

        jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["api"].state is JobState.DEAD
    assert f"port {port} is already in use on w1" in jobs["api"].reason
    assert run_file(cluster, accepted.run_id, "starts-api") == ""  # never started


def test_a_service_not_ready_in_time_is_killed_and_counts_as_an_exit(cluster):
    cluster.add_worker("w1")
    silent = JobSpec("api", kind=JobKind.SERVICE, command=("sleep", "30"), timeout=0.3,
                     max_restarts=0, retries=0)
    accepted = cluster.client.submit(run_spec("silent", silent))

    jobs = cluster.client.wait_run(accepted.run_id)

    assert jobs["api"].state is JobState.DEAD
    assert jobs["api"].reason == "not ready within 0.3 s; exited once; max_restarts 0 reached"


def test_a_service_keeps_running_without_the_master_and_reports_again(cluster):
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("away", service("api")))
    ref = f"{accepted.run_id}/api"
    port = cluster.client.wait_job(ref, JobState.READY).port
    pid = int(run_file(cluster, accepted.run_id, "pid-api"))

    address = cluster.stop_master()
    os.kill(pid, signal.SIGKILL)  # it exits while nobody listens to its worker's reports
    wait_until(lambda: run_file(cluster, accepted.run_id, "starts-api") == "2",
               what="the worker to restart the service")
    cluster.start_master(port=address[1])

    info = cluster.client.follow(
        lambda c: (lambda j: j if j.restarts == 1 and j.state is JobState.READY else None)(
            c.job(ref).job), what="the service's state to be reported again")
    assert info.port == port and info.attempt == 1


def test_a_service_stopped_during_its_backoff_ends_at_once(make_cluster):
    slow = RestartPolicy(base=30.0, cap=30.0, jitter=0.0)
    cluster = make_cluster(worker_options=dict(service_restart=slow))
    cluster.start_master()
    cluster.add_worker("w1")
    accepted = cluster.client.submit(run_spec("backoff", service("api", crash=99)))
    ref = f"{accepted.run_id}/api"
    info = cluster.client.wait_job(ref, JobState.RESTARTING)
    assert info.reason == "exit code 3; restart 1 in 30.0 s"

    cluster.client.stop_service(ref)

    worker_idle(cluster)  # well before the 30 s backoff
    assert cluster.client.job(ref).job.state is JobState.STOPPED
    assert run_file(cluster, accepted.run_id, "starts-api") == "1"


def test_a_nonsense_service_report_is_refused_and_the_master_goes_on(cluster):
    """A worker reporting a plain job as a ready service (a bug, another version): logged and
    ignored, never a crash of the master."""
    from titan_actors.wire.messages import worker as w
    cluster.add_worker("w1")
    go = cluster.root / "go-nonsense"
    accepted = cluster.client.submit(run_spec(
        "nonsense", job("a", f"while [ ! -e {go} ]; do sleep 0.02; done")))
    cluster.client.wait_job(f"{accepted.run_id}/a", JobState.RUNNING)
    worker = cluster.workers["w1"].ref._cell.instance
    [ref] = list(worker.attempts)
    worker.master.tell(w.ServiceState(ref, JobState.READY, 1234, 0, ""), timeout=1)
    worker.master.tell(w.Heartbeat(tuple(worker.attempts)), timeout=1)  # after it, in order

    assert cluster.client.workers()[0].name == "w1"  # the master answers: it is alive
    assert cluster.master.ref.is_alive
    go.touch()
    assert cluster.client.wait_run(accepted.run_id)["a"].state is JobState.COMPLETED
