"""Measurements shared by the peer drivers (run with the peer's own venv python; stdlib only).

A driver gives :func:`run` an adapter with three blocking calls, each returning when the client
has seen the result(s):

* ``one(kind)``: one task of ``kind`` submitted and its result seen;
* ``fanout(kind, n)``: ``n`` independent tasks of ``kind`` submitted, all results seen;
* ``chain(n)``: ``n`` script tasks, each taking the previous one's result as its argument (so
  each depends on the one before), the last result seen.

``kind`` is ``"script"`` (the task runs ``subprocess.run([exe, job.py])`` where job.py is
``print(1)`` and ``exe`` is the driver's ``sys.executable``, the peer venv's python, unless
``--script-python`` names another), ``"true"`` (the task runs ``subprocess.run(["/bin/true"])``) or
``"noop"`` (an in-process Python function that returns at once). The baselines are measured
here, with the same interpreter the tasks use and right next to the peer's figure: the bare
``subprocess.run`` of the script or of /bin/true, sequentially and through a pool of
:data:`PARALLEL` threads, exactly as bench/bench_e2e.py does for our cluster.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCRIPT = b"print(1)\n"
TRUE = "/bin/true"
PARALLEL = 2
KINDS = ("script", "true", "noop")


def run_kind(kind: str, exe: str, script: str) -> int:
    """The body of every task: what a task of ``kind`` does (0 on success)."""
    if kind == "script":
        return subprocess.run([exe, script], check=True, capture_output=True).returncode
    if kind == "true":
        return subprocess.run([TRUE], check=True, capture_output=True).returncode
    return 0


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100), as bench_e2e."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def figure(peer: float, baseline: float, unit: str, baseline_is: str) -> dict:
    return {"peer": peer, "baseline": baseline, "ratio": peer / baseline, "unit": unit,
            "baseline_is": baseline_is}


def _bare(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _pool(argv: list[str], count: int) -> float:
    """Seconds to run ``argv`` ``count`` times, PARALLEL at once (bench_e2e's baseline)."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        return timed(lambda: list(pool.map(lambda _: _bare(argv), range(count))))


def measure(adapter, exe: str, script: str, rounds: int, fanouts: list[int],
            chain: int) -> dict:
    bare_script = [exe, script]
    figures: dict = {}

    # warm up both sides: the peer's workers (first import, first spawn) and the page cache
    for kind in KINDS:
        adapter.fanout(kind, 2 * PARALLEL)
    _bare(bare_script)
    _bare([TRUE])

    # 1. latency, one task at a time, rounds interleaved with the baselines (same noise)
    samples: dict[str, list[float]] = {k: [] for k in ("script", "noop", "bare", "bare_true")}
    for _ in range(rounds):
        samples["script"].append(timed(lambda: adapter.one("script")))
        samples["bare"].append(timed(lambda: _bare(bare_script)))
        samples["noop"].append(timed(lambda: adapter.one("noop")))
        samples["bare_true"].append(timed(lambda: _bare([TRUE])))
    for q in (50, 99):
        figures[f"latency_script_p{q}"] = figure(
            percentile(samples["script"], q) * 1000, percentile(samples["bare"], q) * 1000, "ms",
            "bare subprocess.run of the script")
        figures[f"latency_noop_p{q}"] = figure(
            percentile(samples["noop"], q) * 1000, percentile(samples["bare_true"], q) * 1000,
            "ms", "bare subprocess.run of /bin/true")

    # 2. fan-out throughput at parallelism PARALLEL, each right before its baseline
    for n in fanouts:
        peer = n / timed(lambda n=n: adapter.fanout("script", n))
        figures[f"fanout_{n}_script_per_s"] = figure(
            peer, n / _pool(bare_script, n), "tasks/s",
            f"pool of {PARALLEL} subprocess.run of the script")
        peer = n / timed(lambda n=n: adapter.fanout("true", n))
        true_rate = n / _pool([TRUE], n)
        figures[f"fanout_{n}_true_per_s"] = figure(
            peer, true_rate, "tasks/s", f"pool of {PARALLEL} subprocess.run of /bin/true")
        peer = n / timed(lambda n=n: adapter.fanout("noop", n))
        figures[f"fanout_{n}_noop_per_s"] = figure(
            peer, n / _pool([TRUE], n), "tasks/s",
            f"pool of {PARALLEL} subprocess.run of /bin/true")

    # 3. chain of dependent script tasks vs the same number of bare sequential runs
    seconds = timed(lambda: adapter.chain(chain))

    def sequential() -> None:
        for _ in range(chain):
            _bare(bare_script)

    bare_seconds = timed(sequential)
    figures["chain_per_link"] = figure(seconds / chain * 1000, bare_seconds / chain * 1000, "ms",
                                       "bare sequential subprocess.run of the script")
    overhead = (seconds - bare_seconds) / chain * 1000
    figures["chain_overhead_per_link"] = figure(
        overhead, bare_seconds / chain * 1000, "ms",
        "bare sequential run (ratio = overhead / the process's own cost)")
    return figures


def main(name: str, make_adapter: Callable[[str, str, Path], object],
         packages: tuple[str, ...]) -> int:
    """Parse the driver's arguments, run ``make_adapter(exe, script, tmp)`` (a context manager
    whose value is the adapter; its exit must stop everything it started) and write the
    result JSON to ``--out``: ``{"ok": true, "figures": ..., "versions": ...}`` or
    ``{"ok": false, "error": ...}``."""
    parser = argparse.ArgumentParser(prog=f"drive_{name}")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--fanout", default="200,1000")
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--script-python", default="",
                        help="interpreter that runs the script (default: this one)")
    args = parser.parse_args()
    exe = args.script_python or sys.executable
    from importlib.metadata import version

    result: dict = {"ok": False, "peer": name,
                    "versions": {p: version(p) for p in packages},
                    "python": sys.version.split()[0], "executable": sys.executable,
                    "script_python": exe}
    tmp = Path(tempfile.mkdtemp(prefix=f"bp-{name}-"))
    try:
        script = tmp / "job.py"
        script.write_bytes(SCRIPT)
        started = time.perf_counter()
        with make_adapter(exe, str(script), tmp) as adapter:
            result["startup_s"] = time.perf_counter() - started
            result["figures"] = measure(adapter, exe, str(script), args.rounds,
                                        [int(n) for n in args.fanout.split(",") if n],
                                        args.chain)
        result["ok"] = True
    except BaseException as exc:  # reported to the orchestrator, then re-raised if not an Exception
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-4000:]
        if not isinstance(exc, Exception):
            raise
    finally:
        Path(args.out).write_text(json.dumps(result, indent=2))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if result["ok"] else 1
