"""End to end through a real local cluster, against bare process spawns in the same run.

Run ``python bench/bench_e2e.py`` (or ``make bench``). It starts ``titanctl up --port 0
--workers 2 --slots 1 --no-web`` over a temporary data directory (burst workers off, so the
cluster's parallelism is exactly 2 workers x 1 slot) and measures, each figure as ours,
baseline and ratio, the baseline measured in the same run right next to ours:

Python jobs run two ways in the same cluster: from the warm executor (the default: forked from
the worker's launcher, which has the common modules imported) and spawned (the job's env says
``TITAN_WARM=0``: a fresh ``sys.executable``). Command jobs run ``/bin/true``.

* latency: a one-job run (a ``print(1)`` script job), submit to the run's "finished" event seen
  by the client on the master's event stream (``MasterClient.follow_run``), p50 and p99 over
  :data:`LATENCY_ROUNDS`, warm and spawned; baseline: ``subprocess.run([sys.executable,
  script])``, rounds interleaved with ours;
* throughput: a fan-out of N independent jobs in one run for each N of :data:`FANOUTS` (200 and
  1,000), jobs per second from submission to the run's end, for warm Python jobs, spawned
  Python jobs and ``/bin/true``; baseline: the same script (or ``/bin/true``) N times through a
  thread pool of :data:`PARALLEL` ``subprocess.run`` calls (the cluster's parallelism);
* chain: :data:`CHAIN` jobs each depending on the one before, of each kind; per link against
  the same number of bare sequential runs, and the overhead per link = (chain wall time - the
  bare sequential runs) / CHAIN (negative for warm jobs when a fork costs less than a spawn).

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
from _support import remember, sweep

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
FANOUTS = tuple(int(n) for n in os.environ.get("BENCH_E2E_FANOUT", "200,1000").split(","))
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
        for pid in [self.state["master"]["pid"], *(w["pid"] for w in self.state["workers"])]:
            remember(pid, self.seen)

    def stop(self) -> list[str]:
        """``titanctl down``, then kill whatever of the cluster is still alive; returns what had
        to be killed (empty when the cluster stopped by itself)."""
        problems = []
        self._remember()
        if (self.data / "cluster.json").exists() or self.state:
            down = _titanctl("down", "--data-dir", str(self.data), env=self.env)
            if down.returncode != 0:
                problems.append(f"titanctl down: {down.returncode} {down.stderr.strip()}")
        return problems + sweep(str(self.data), self.seen)


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


_COLD = {"TITAN_WARM": "0"}  # the job opts out of the warm executor: a fresh interpreter


def _py_job(job_id: str, warm: bool, parents: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(job_id, script_name="job.py", script=SCRIPT, parents=parents,
                   env={} if warm else dict(_COLD))


def _true_job(job_id: str, parents: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(job_id, command=(TRUE,), parents=parents)


_KINDS: dict[str, Callable[..., JobSpec]] = {
    "py_warm": lambda job_id, parents=(): _py_job(job_id, True, parents),
    "py_spawn": lambda job_id, parents=(): _py_job(job_id, False, parents),
    "true": _true_job,
}


def _measure(client: MasterClient, script: Path) -> dict:
    bare = [sys.executable, str(script)]
    figures: dict = {}

    # warm up both sides (imports, page cache, the workers' first spawn and fork)
    _run_and_wait(client, RunSpec("bench-warm", tuple(
        make(f"w-{kind}") for kind, make in _KINDS.items())), 60)
    subprocess.run(bare, check=True, capture_output=True)

    # 1. latency, rounds interleaved so that every side sees the same noise
    times: dict[str, list[float]] = {"py_warm": [], "py_spawn": [], "bare": []}
    for _ in range(LATENCY_ROUNDS):
        for kind in ("py_warm", "py_spawn"):
            times[kind].append(_run_and_wait(client, RunSpec(
                "bench-one", (_KINDS[kind]("one"),)), 60)[0])
        times["bare"].append(_timed(lambda: subprocess.run(bare, check=True,
                                                           capture_output=True)))
    for kind in ("py_warm", "py_spawn"):
        for q in (50, 99):
            figures[f"latency_{kind}_p{q}"] = _figure(_percentile(times[kind], q) * 1000,
                                                      _percentile(times["bare"], q) * 1000,
                                                      "ms")

    # 2. fan-out throughput against a pool of bare runs at the same parallelism
    for count in FANOUTS:
        pool = {"py": count / _pool(bare, count), "true": count / _pool([TRUE], count)}
        for kind, make in _KINDS.items():
            spec = RunSpec(f"bench-fanout-{kind}", tuple(make(f"j{n:04d}")
                                                        for n in range(count)))
            seconds, _ = _run_and_wait(client, spec, 600)
            baseline = pool["true" if kind == "true" else "py"]
            figures[f"fanout_{count}_{kind}_jobs_per_s"] = _figure(count / seconds, baseline,
                                                                    "jobs/s")

    # 3. chains of dependent jobs vs the same number of bare sequential runs
    def sequential(argv: list[str]) -> float:
        return _timed(lambda: [subprocess.run(argv, check=True, capture_output=True)
                               for _ in range(CHAIN)])

    bare_link = {"py": sequential(bare) / CHAIN, "true": sequential([TRUE]) / CHAIN}
    for kind, make in _KINDS.items():
        spec = RunSpec(f"bench-chain-{kind}", tuple(
            make(f"c{n:04d}", (f"c{n - 1:04d}",) if n else ()) for n in range(CHAIN)))
        seconds, _ = _run_and_wait(client, spec, 600)
        link = bare_link["true" if kind == "true" else "py"]
        figures[f"chain_{kind}_per_link"] = _figure(seconds / CHAIN * 1000, link * 1000, "ms")
        figures[f"chain_{kind}_overhead_per_link_ms"] = (seconds / CHAIN - link) * 1000
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
                        "fanouts": FANOUTS, "chain": CHAIN, "cleanup_problems": problems}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_e2e.json").write_text(json.dumps(figures, indent=2))
    return figures


def _print(r: dict) -> None:
    what = {"py_warm": "py job, warm executor", "py_spawn": "py job, spawned",
            "true": "/bin/true command job"}
    rows = []
    for kind in ("py_warm", "py_spawn"):
        for q in (50, 99):
            rows.append((f"1-job run p{q}, {what[kind]}", f"latency_{kind}_p{q}",
                         "bare subprocess.run"))
    for count in r["setup"]["fanouts"]:
        for kind in _KINDS:
            rows.append((f"{count} fan-out, {what[kind]}", f"fanout_{count}_{kind}_jobs_per_s",
                         f"pool of {PARALLEL} subprocess.run"))
    for kind in _KINDS:
        rows.append((f"chain of {CHAIN}, {what[kind]}", f"chain_{kind}_per_link",
                     "bare sequential run"))
    print(f"{'figure':44} {'ours':>9} {'baseline':>9} {'unit':>7} {'ratio':>6}   baseline is")
    for label, key, baseline in rows:
        f = r[key]
        print(f"{label:44} {f['ours']:9.1f} {f['baseline']:9.1f} {f['unit']:>7} "
              f"{f['ratio']:6.2f}   {baseline}")
    for kind in _KINDS:
        print(f"{'chain overhead per link, ' + what[kind]:44} "
              f"{r[f'chain_{kind}_overhead_per_link_ms']:9.2f} {'':9} {'ms':>7}")
    print("ratio = ours / baseline (ms: higher is slower; jobs/s: lower is slower)")


if __name__ == "__main__":
    _print(main())
