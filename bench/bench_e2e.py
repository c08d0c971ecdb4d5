"""End to end through a real local cluster, against bare process spawns in the same run.

Run ``python bench/bench_e2e.py``. It starts ``titanctl up`` (a master and two workers with two
slots each) in a temporary data directory and measures:

* latency: submit a one-job pipeline (a Python script printing a line) and wait for its
  completion, one at a time; baseline: ``subprocess.run`` of the same script;
* throughput: a 200-job fan-out (independent jobs) on the two workers, jobs per second from
  submission to the run's end; baseline: the same 200 scripts through a pool of 4 concurrent
  ``subprocess.run`` calls (the cluster's parallelism).

:func:`main` returns the figures; ``_print`` prints them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from titan_actors.client import MasterClient
from titan_actors.scheduler.model import JobSpec, RunSpec

SCRIPT = b"print('hello from a benchmark job')\n"
LATENCY_ROUNDS = 15
FANOUT = 200
PARALLEL = 4


def _titanctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "titan_actors.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _bare(script: Path) -> None:
    subprocess.run([sys.executable, "-u", str(script)], check=True, capture_output=True)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="titan-bench-") as tmp:
        root = Path(tmp)
        script = root / "job.py"
        script.write_bytes(SCRIPT)
        env = dict(os.environ, TITAN_DATA_DIR=str(root / "data"))
        up = _titanctl("up", "--port", "0", "--workers", "2", "--slots", "2", env=env)
        if up.returncode != 0:
            raise RuntimeError(f"titanctl up failed: {up.stdout}{up.stderr}")
        try:
            state = json.loads((root / "data" / "cluster.json").read_text())
            master = state["master"]
            with MasterClient(master["host"], master["port"], timeout=60) as client:
                one = RunSpec("bench-one", (JobSpec("one", script_name="job.py",
                                                    script=SCRIPT),))
                client.follow_run(client.submit(one).run_id, 60)  # warm up
                start = time.perf_counter()
                for _ in range(LATENCY_ROUNDS):
                    client.follow_run(client.submit(one).run_id, 60)
                ours_latency = (time.perf_counter() - start) / LATENCY_ROUNDS
                fan = RunSpec("bench-fanout", tuple(
                    JobSpec(f"j{n}", script_name="job.py", script=SCRIPT)
                    for n in range(FANOUT)))
                start = time.perf_counter()
                summary = client.follow_run(client.submit(fan).run_id, 600)
                ours_rate = FANOUT / (time.perf_counter() - start)
                assert summary.state.value == "completed", summary
        finally:
            _titanctl("down", env=env)
        _bare(script)
        start = time.perf_counter()
        for _ in range(LATENCY_ROUNDS):
            _bare(script)
        bare_latency = (time.perf_counter() - start) / LATENCY_ROUNDS
        start = time.perf_counter()
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(lambda _: _bare(script), range(FANOUT)))
        bare_rate = FANOUT / (time.perf_counter() - start)
    return {"latency_ms": ours_latency * 1000, "bare_latency_ms": bare_latency * 1000,
            "latency_ratio": ours_latency / bare_latency, "jobs_per_s": ours_rate,
            "bare_jobs_per_s": bare_rate, "throughput_ratio": ours_rate / bare_rate}


def _print(r: dict[str, float]) -> None:
    print(f"one-job pipeline, submit to completion  {r['latency_ms']:7.1f} ms   bare spawn "
          f"{r['bare_latency_ms']:6.1f} ms   ratio {r['latency_ratio']:.2f}")
    print(f"{FANOUT}-job fan-out on 2 workers x 2 slots    {r['jobs_per_s']:7.1f} jobs/s  bare "
          f"{r['bare_jobs_per_s']:6.1f} jobs/s ({PARALLEL} at once)   ratio "
          f"{r['throughput_ratio']:.2f}")


if __name__ == "__main__":
    _print(main())
