"""End to end through a real local cluster, against bare process spawns in the same run.

Run ``python bench/bench_e2e.py`` (or ``make bench``). It starts ``titanctl up --port 0
--workers 2 --slots 1 --no-web`` over a temporary data directory (burst workers off, so the
cluster's parallelism is exactly 2 workers x 1 slot) and measures, each figure as ours,
baseline and ratio, the baseline measured in the same run right next to ours:

* latency: a one-job run (a ``print(1)`` script job), submit to the run's "finished" event seen
  by the client on the master's event stream (``MasterClient.follow_run``), p50 and p99 over
  :data:`LATENCY_ROUNDS`; baseline: ``subprocess.run([sys.executable, script])``, rounds
  interleaved with ours;
* throughput: a fan-out of :data:`FANOUT` independent script jobs in one run, jobs per second
  from submission to the run's end; baseline: the same script :data:`FANOUT` times through a
  thread pool of :data:`PARALLEL` ``subprocess.run`` calls; the same for ``/bin/true`` command
  jobs against ``/bin/true`` spawned the same way;
* chain: :data:`CHAIN` script jobs each depending on the one before; overhead per link =
  (chain wall time - the same number of bare sequential runs of the script) / CHAIN.

Ratios are ours / baseline (latency: > 1 is slower; jobs/s: < 1 is slower). The machine is
shared, so absolute times move between runs; the ratios are the figures to compare.

:func:`main` returns the figures (also written to bench/results/bench_e2e.json); ``_print``
prints them. The cluster is stopped with ``titanctl down`` whatever happens, and any process of
it still alive afterwards is killed (and reported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from titan_actors.client import MasterClient
from titan_actors.scheduler.model import JobSpec, RunSpec, RunState
from titan_actors.wire.messages.master import Event, EventKind

HERE = Path(__file__).resolve().parent
TITANCTL = str(Path(sys.executable).parent / "titanctl")
SCRIPT = b"print(1)\n"
TRUE = "/bin/true"
WORKERS, SLOTS = 2, 1
PARALLEL = WORKERS * SLOTS
LATENCY_ROUNDS = int(os.environ.get("BENCH_E2E_ROUNDS", "30"))
FANOUT = int(os.environ.get("BENCH_E2E_FANOUT", "200"))
CHAIN = int(os.environ.get("BENCH_E2E_CHAIN", "200"))
# Burst workers off (the parallelism must be exactly WORKERS x SLOTS); no web console.
CLUSTER_ENV = {"TITAN_BURST_MAX_PER_HOST": "0", "TITAN_LOG_LEVEL": "warning"}


def _titanctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([TITANCTL, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def _figure(ours: float, baseline: float, unit: str) -> dict:
    return {"ours": ours, "baseline": baseline, "ratio": ours / baseline, "unit": unit}


class _Cluster:
    """``titanctl up`` over a data directory; :meth:`stop` leaves nothing running."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.env = dict(os.environ, TITAN_DATA_DIR=str(data), **CLUSTER_ENV)
        self.seen: dict[int, psutil.Process] = {}
        self.state: dict = {}

    def start(self) -> tuple[str, int]:
        up = _titanctl("up", "--data-dir", str(self.data), "--port", "0", "--workers",
                       str(WORKERS), "--slots", str(SLOTS), "--no-web", env=self.env)
        if up.returncode != 0:
            raise RuntimeError(f"titanctl up failed ({up.returncode}): {up.stdout}{up.stderr}")
        self.state = json.loads((self.data / "cluster.json").read_text())
        self._remember()
        return self.state["master"]["host"], int(self.state["master"]["port"])

    def _remember(self) -> None:
        if not self.state:
            return
        pids = [self.state["master"]["pid"], *(w["pid"] for w in self.state["workers"])]
        for pid in pids:
            try:
                process = psutil.Process(pid)
                for p in [process, *process.children(recursive=True)]:
                    self.seen.setdefault(p.pid, p)
            except psutil.NoSuchProcess:
                pass

    def stop(self) -> list[str]:
        """``titanctl down``, then kill whatever of the cluster is still alive; returns what had
        to be killed (empty when the cluster stopped by itself)."""
        problems = []
        self._remember()
        if (self.data / "cluster.json").exists() or self.state:
            down = _titanctl("down", "--data-dir", str(self.data), env=self.env)
            if down.returncode != 0:
                problems.append(f"titanctl down: {down.returncode} {down.stderr.strip()}")
        marker = str(self.data)
        found = dict(self.seen)
        for process in psutil.process_iter(["cmdline"]):
            try:
                if marker in " ".join(process.info["cmdline"] or ()):
                    found.setdefault(process.pid, process)
            except psutil.Error:
                continue
        found.pop(os.getpid(), None)
        _, alive = psutil.wait_procs(list(found.values()), timeout=15)
        for process in alive:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                problems.append(f"killed leftover {process.pid} {process.cmdline()}")
                process.kill()
            except psutil.Error:
                pass
        return problems


def _run_and_wait(client: MasterClient, spec: RunSpec, timeout: float) -> tuple[float, object]:
    """Submit ``spec``; return (seconds from submission to the run's end event seen on the
    stream, the run's final summary)."""
    ended_at: list[float] = []

    def on_event(event: Event) -> None:
        if (not ended_at and event.kind is EventKind.RUN and event.run_state is not None
                and event.run_state is not RunState.ACTIVE):
            ended_at.append(time.perf_counter())

    start = time.perf_counter()
    accepted = client.submit(spec)
    summary = client.follow_run(accepted.run_id, timeout, on_event, after_seq=accepted.last_seq)
    end = ended_at[0] if ended_at else time.perf_counter()
    if summary.state is not RunState.COMPLETED:
        raise RuntimeError(f"run {spec.name} ended {summary.state.value}: {summary}")
    return end - start, summary


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pool(argv: list[str], count: int) -> float:
    """Seconds to run ``argv`` ``count`` times, PARALLEL at once."""
    def one(_: int) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return _timed(lambda: list(pool.map(one, range(count))))


def _measure(client: MasterClient, script: Path) -> dict:
    bare = [sys.executable, str(script)]
    job = JobSpec("one", script_name="job.py", script=SCRIPT)
    figures: dict = {}

    # warm up both sides (imports, page cache, the workers' first spawn)
    _run_and_wait(client, RunSpec("bench-warm", (job, JobSpec("two", command=(TRUE,)))), 60)
    subprocess.run(bare, check=True, capture_output=True)

    # 1. latency, rounds interleaved so that both sides see the same noise
    ours, base = [], []
    for _ in range(LATENCY_ROUNDS):
        ours.append(_run_and_wait(client, RunSpec("bench-one", (job,)), 60)[0])
        base.append(_timed(lambda: subprocess.run(bare, check=True, capture_output=True)))
    for q in (50, 99):
        figures[f"latency_p{q}"] = _figure(_percentile(ours, q) * 1000,
                                           _percentile(base, q) * 1000, "ms")

    # 2. fan-out throughput, script jobs and /bin/true command jobs
    fan_py = RunSpec("bench-fanout-py", tuple(
        JobSpec(f"j{n:03d}", script_name="job.py", script=SCRIPT) for n in range(FANOUT)))
    seconds, _ = _run_and_wait(client, fan_py, 600)
    figures["fanout_py_jobs_per_s"] = _figure(FANOUT / seconds, FANOUT / _pool(bare, FANOUT),
                                              "jobs/s")
    fan_true = RunSpec("bench-fanout-true", tuple(
        JobSpec(f"t{n:03d}", command=(TRUE,)) for n in range(FANOUT)))
    seconds, _ = _run_and_wait(client, fan_true, 600)
    figures["fanout_true_jobs_per_s"] = _figure(FANOUT / seconds, FANOUT / _pool([TRUE], FANOUT),
                                                "jobs/s")

    # 3. chain of dependent script jobs vs the same number of bare sequential runs
    chain = RunSpec("bench-chain", tuple(
        JobSpec(f"c{n:03d}", script_name="job.py", script=SCRIPT,
                parents=(f"c{n - 1:03d}",) if n else ()) for n in range(CHAIN)))
    seconds, _ = _run_and_wait(client, chain, 600)

    def sequential() -> None:
        for _ in range(CHAIN):
            subprocess.run(bare, check=True, capture_output=True)

    bare_seconds = _timed(sequential)
    figures["chain_per_link"] = _figure(seconds / CHAIN * 1000, bare_seconds / CHAIN * 1000, "ms")
    figures["chain_overhead_per_link_ms"] = (seconds - bare_seconds) / CHAIN * 1000
    return figures


def main() -> dict:
    with tempfile.TemporaryDirectory(prefix="titan-bench-") as tmp:
        root = Path(tmp)
        script = root / "job.py"
        script.write_bytes(SCRIPT)
        cluster = _Cluster(root / "data")
        problems: list[str] = []
        try:
            host, port = cluster.start()
            with MasterClient(host, port, timeout=60) as client:
                figures = _measure(client, script)
        finally:
            problems = cluster.stop()
    if problems:
        print("bench_e2e: the cluster did not stop cleanly:\n  " + "\n  ".join(problems),
              file=sys.stderr)
    figures["setup"] = {"workers": WORKERS, "slots": SLOTS, "latency_rounds": LATENCY_ROUNDS,
                        "fanout": FANOUT, "chain": CHAIN, "cleanup_problems": problems}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_e2e.json").write_text(json.dumps(figures, indent=2))
    return figures


def _print(r: dict) -> None:
    rows = [
        ("1-job run, submit->end seen, p50", "latency_p50", "bare subprocess.run"),
        ("1-job run, submit->end seen, p99", "latency_p99", "bare subprocess.run"),
        (f"{FANOUT} py jobs fan-out, {WORKERS}x{SLOTS}", "fanout_py_jobs_per_s",
         f"pool of {PARALLEL} subprocess.run"),
        (f"{FANOUT} /bin/true jobs fan-out, {WORKERS}x{SLOTS}", "fanout_true_jobs_per_s",
         f"pool of {PARALLEL} subprocess.run"),
        (f"chain of {CHAIN} py jobs, per link", "chain_per_link", "bare sequential run"),
    ]
    print(f"{'figure':38} {'ours':>10} {'baseline':>10} {'unit':>7} {'ratio':>7}   baseline is")
    for label, key, what in rows:
        f = r[key]
        print(f"{label:38} {f['ours']:10.1f} {f['baseline']:10.1f} {f['unit']:>7} "
              f"{f['ratio']:7.2f}   {what}")
    print(f"{'chain overhead per link':38} {r['chain_overhead_per_link_ms']:10.1f} "
          f"{'':10} {'ms':>7}")
    print("ratio = ours / baseline (ms: higher is slower; jobs/s: lower is slower)")


if __name__ == "__main__":
    _print(main())
