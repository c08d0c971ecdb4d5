"""The peers (Celery, Dask distributed, Ray) running the same work as bench/bench_e2e.py, each
against bare process spawns measured in the same run (figure 7 of the performance issue).

Run ``python bench/bench_peers.py``. Each peer is installed with pip into a throwaway venv of
its own under ``.bench-peers/<peer>/`` at the repository root (git-ignored; reused while its
pinned requirements, :data:`PEERS`, are unchanged), and measured by a driver kept in
``bench/peers/`` (``drive_<peer>.py``, measurements shared in ``bench/peers/common.py``), run as
a subprocess with that venv's python, in a session of its own, under a hard timeout. The
peers, each at parallelism 2 (our cluster's ``--workers 2 --slots 1``):

* ``celery``: Celery 5 with Debian's ``redis-server`` (started by the driver on a free loopback
  port, no persistence) as broker and result backend, one worker ``-P prefork -c 2``;
* ``dask``: ``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` and a ``Client``;
* ``ray``: ``ray.init(num_cpus=2)``, tasks of 1 CPU each, no dashboard.

A task is one of: ``script``, ``subprocess.run([sys.executable, job.py], check=True,
capture_output=True)`` inside the task, job.py being ``print(1)`` (``sys.executable`` being
the project's interpreter, the one bench_e2e's jobs get, or ``BENCH_PEERS_SCRIPT_PYTHON``);
``true``, the same with ``/bin/true``; ``noop``, an in-process Python function that returns at
once. What is measured, by the same code for every peer (bench/peers/common.py), times on the
client that submits:

1. latency: one task submitted, its result seen by the client, p50 and p99 over
   :data:`ROUNDS` rounds, for ``script`` and for ``noop``; baselines: a bare
   ``subprocess.run`` of the script (for ``script``) and of /bin/true (for ``noop``), rounds
   interleaved with the peer's;
2. fan-out: :data:`FANOUTS` (200 and 1,000) independent tasks submitted, all results seen,
   tasks/s, for ``script``, ``true`` and ``noop``; baselines: the same number of bare
   ``subprocess.run`` calls of the script (for ``script``) or of /bin/true (for ``true`` and
   ``noop``) through a pool of 2 threads, measured right after the peer's;
3. chain: :data:`CHAIN` ``script`` tasks, each taking the previous task's result as argument (a
   dependency the peer resolves: a Celery ``chain``, a Dask future, a Ray ObjectRef), from the
   first submission to the last result seen, ms per link; baseline: the same number of bare
   sequential runs of the script; overhead per link = (chain time - bare time) / CHAIN.

The baselines use the interpreter the script tasks use and run inside the
driver, next to the peer's figure, while the peer's processes are up (same noise). Each figure
is ``{"peer", "baseline", "ratio" (= peer / baseline), "unit", "baseline_is"}``; for ms a ratio
above 1 is slower, for tasks/s below 1 is slower. The machine is shared, so absolute figures
move between runs: compare ratios. :data:`REFERENCE_FROM_ISSUE` holds the figures quoted in the
issue (from the issue, not measured here).

Environment: ``BENCH_PEERS`` (default ``celery,dask,ray``) picks the peers;
``BENCH_PEERS_SKIP_INSTALL=1`` uses existing venvs only (a peer without one is skipped);
``BENCH_PEERS_ROUNDS``, ``BENCH_PEERS_FANOUT`` (comma-separated), ``BENCH_PEERS_CHAIN`` size the
work; ``BENCH_PEERS_SCRIPT_PYTHON`` names the interpreter the script runs with, in the tasks and
in the baselines alike (default: the interpreter running this bench, the project's .venv, which
bench_e2e's jobs get: ~21 ms per ``print(1)`` here, its ``__editable__`` finder imports
pathlib/re/urllib at every start; a clean venv's python takes ~10 ms);
``BENCH_PEERS_TIMEOUT`` is the hard limit per peer run in seconds (default 600),
``BENCH_PEERS_INSTALL_TIMEOUT`` per install (default 900).

A peer whose install or run fails is skipped, with the reason in the results. Whatever happens,
every process a driver started (redis-server, the Celery worker and its pool, Dask's nannies and
workers, Ray's raylet/GCS/workers) is ended afterwards: the driver stops its peer itself, then
anything still alive that carries the run's marker in its environment, or sits in the driver's
session, is terminated and then killed (and reported under ``cleanup``).

:func:`main` returns the figures per peer (also written to bench/results/bench_peers.json);
``_print`` prints them as a table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = REPO / ".bench-peers"
DRIVERS = HERE / "peers"
MARK_VAR = "TITAN_BENCH_PEERS_MARK"
SPEC_FILE = "bench-peers-spec.json"

# What pip installs into each peer's venv (pinned: these install here, Python 3.11, x86_64).
PEERS: dict[str, dict] = {
    "celery": {"requirements": ["celery[redis]==5.7.0"], "needs": ["/usr/bin/redis-server"]},
    "dask": {"requirements": ["dask[distributed]==2026.8.0"], "needs": []},
    "ray": {"requirements": ["ray==2.60.0"], "needs": []},
}
SELECTED = [p.strip() for p in os.environ.get("BENCH_PEERS", "celery,dask,ray").split(",")
            if p.strip()]
SKIP_INSTALL = os.environ.get("BENCH_PEERS_SKIP_INSTALL", "") not in ("", "0")
ROUNDS = int(os.environ.get("BENCH_PEERS_ROUNDS", "30"))
FANOUTS = [int(n) for n in os.environ.get("BENCH_PEERS_FANOUT", "200,1000").split(",") if n]
CHAIN = int(os.environ.get("BENCH_PEERS_CHAIN", "200"))
# The interpreter the script jobs (and their baselines) run with; default: the peer venv's.
# the interpreter bench_e2e's jobs and baselines run the script with: the same process cost
SCRIPT_PYTHON = os.environ.get("BENCH_PEERS_SCRIPT_PYTHON", sys.executable)
RUN_TIMEOUT = float(os.environ.get("BENCH_PEERS_TIMEOUT", "600"))
INSTALL_TIMEOUT = float(os.environ.get("BENCH_PEERS_INSTALL_TIMEOUT", "900"))

# From the issue, not measured here: figures the issue quotes for this kind of 2-core machine.
REFERENCE_FROM_ISSUE = {
    "note": "from the issue, not measured here",
    "original_titan": {
        "one_job_submit_to_completed_ms": 24.6,
        "fanout_200_jobs_per_s": 10.3,
        "chain_ms_per_job": 16.4,
        "master_restart_until_jobs_done_s": 28,
    },
    "peers_fanout_200_script_tasks_per_s": {"ray": 151, "celery": 131, "dask": 127},
    "ray_noop_tasks_per_s": 1504,
    "machine": {
        "clean_venv_python3_c_pass_ms": 9.6,
        "clean_venv_python3_c_pass_per_s_2_in_flight": 190,
        "bin_true_ms": 0.8,
        "bin_true_per_s_2_in_flight": 2100,
        "fork_warm_parent_runpy_ms": 1.8,
        "fork_warm_parent_runpy_per_s_2_in_flight": 930,
        "fork_gevent_patched_parent_per_s_2_in_flight": 640,
    },
}


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def _spec(name: str) -> dict:
    return {"requirements": PEERS[name]["requirements"], "python": sys.version.split()[0]}


def _ensure_venv(name: str) -> tuple[Path | None, str]:
    """The peer venv's python, creating and installing it if needed; (None, why) if it can't be
    had."""
    venv = CACHE / name
    python = venv / "bin" / "python"
    marker = venv / SPEC_FILE
    try:
        if python.exists() and json.loads(marker.read_text()) == _spec(name):
            return python, "reused"
    except (OSError, ValueError):
        pass
    if SKIP_INSTALL:
        return None, (f"BENCH_PEERS_SKIP_INSTALL is set and {venv} holds no venv installed "
                      f"with {_spec(name)}")
    CACHE.mkdir(exist_ok=True)
    log_path = CACHE / f"{name}-install.log"
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [[base, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
              *PEERS[name]["requirements"]]]
    deadline = time.monotonic() + INSTALL_TIMEOUT
    with open(log_path, "wb") as log:
        for argv in steps:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return None, f"install timed out after {INSTALL_TIMEOUT:.0f} s: {_tail(log_path)}"
            if done.returncode != 0:
                return None, f"install failed ({done.returncode}): {_tail(log_path)}"
    marker.write_text(json.dumps(_spec(name)))
    return python, "installed"


def _ours(process: psutil.Process, marker: str, driver_pid: int, started: float,
          ended: float) -> bool:
    """Whether ``process`` was started by the driver's run: it carries the run's marker in its
    environment, or it is in the driver's session and was created while the driver lived (so
    that a later process that reuses the pid is never taken for ours)."""
    try:
        if process.environ().get(MARK_VAR) == marker:
            return True
        return (os.getsid(process.pid) == driver_pid
                and started <= process.create_time() <= ended)
    except (psutil.Error, OSError):
        return False


def _sweep(marker: str, driver_pid: int, started: float, ended: float) -> list[str]:
    """Terminate, then kill, whatever of the run is still alive; returns what was found."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if _ours(process, marker, driver_pid, started, ended):
            found.append(process)
    problems = []
    for process in found:
        try:
            problems.append(f"leftover {process.pid} {' '.join(process.cmdline())[:200]}")
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(found, timeout=10)
    for process in alive:
        try:
            problems.append(f"killed {process.pid} (did not stop on SIGTERM)")
            process.kill()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=5)
    problems += [f"still alive: {p.pid}" for p in alive]
    return problems


def _run_peer(name: str, python: Path) -> dict:
    """Run the peer's driver under the hard timeout; its result dict, with ``cleanup``."""
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out, log_path = logs / f"{name}.json", logs / f"{name}.log"
    out.unlink(missing_ok=True)
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({MARK_VAR: marker, "RAY_USAGE_STATS_ENABLED": "0",
                "PATH": f"{python.parent}{os.pathsep}{env.get('PATH', '')}"})
    argv = [str(python), str(DRIVERS / f"drive_{name}.py"), "--out", str(out),
            "--rounds", str(ROUNDS), "--fanout", ",".join(map(str, FANOUTS)),
            "--chain", str(CHAIN), "--script-python", SCRIPT_PYTHON]
    result: dict = {}
    timed_out = False
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        driver = subprocess.Popen(argv, cwd=DRIVERS, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            started = psutil.Process(driver.pid).create_time()
        except psutil.Error:
            started = time.time() - 1
        try:
            try:
                driver.wait(RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                timed_out = True
                driver.send_signal(signal.SIGINT)  # KeyboardInterrupt: its finally stops the peer
                try:
                    driver.wait(60)
                except subprocess.TimeoutExpired:
                    driver.kill()
                    driver.wait(30)
        except BaseException:
            if driver.poll() is None:
                driver.kill()
                driver.wait(30)
            raise
        finally:
            ended = time.time()
            problems = _sweep(marker, driver.pid, started, ended)
    seconds = time.perf_counter() - start
    try:
        result = json.loads(out.read_text())
    except (OSError, ValueError):
        result = {"ok": False}
    if timed_out:
        result["ok"] = False
        result["error"] = f"timed out after {RUN_TIMEOUT:.0f} s; {result.get('error', '')}"
    elif not result.get("ok") and "error" not in result:
        result["error"] = f"driver exited {driver.returncode} without a result"
    if not result.get("ok"):
        result["log_tail"] = _tail(log_path)
    result["seconds"] = seconds
    result["cleanup"] = problems
    return result


def main() -> dict:
    began = time.perf_counter()
    results: dict = {"setup": {"parallelism": 2, "latency_rounds": ROUNDS, "fanouts": FANOUTS,
                               "chain": CHAIN, "peers": SELECTED,
                               "script_python": SCRIPT_PYTHON,
                               "loadavg_before": os.getloadavg()},
                     "peers": {}, "reference_from_issue": REFERENCE_FROM_ISSUE}
    for name in SELECTED:
        if name not in PEERS:
            results["peers"][name] = {"status": "skipped", "reason": f"unknown peer {name!r}"}
            continue
        missing = [p for p in PEERS[name]["needs"] if not Path(p).exists()]
        if missing:
            results["peers"][name] = {"status": "skipped", "reason": f"missing {missing}"}
            continue
        python, how = _ensure_venv(name)
        if python is None:
            results["peers"][name] = {"status": "skipped", "reason": how}
            continue
        run = _run_peer(name, python)
        entry = {"status": "ok" if run.get("ok") else "skipped", "venv": how,
                 "requirements": PEERS[name]["requirements"], **run}
        entry.pop("ok", None)
        if not run.get("ok"):
            entry["reason"] = f"run failed: {run.get('error')}"
        results["peers"][name] = entry
    results["setup"]["loadavg_after"] = os.getloadavg()
    results["setup"]["seconds"] = time.perf_counter() - began
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_peers.json").write_text(json.dumps(results, indent=2))
    return results


def _print(r: dict) -> None:
    print(f"{'peer':7} {'figure':42} {'peer':>9} {'baseline':>9} {'unit':>8} {'ratio':>6}"
          "   baseline is")
    for name, entry in r["peers"].items():
        if entry.get("status") != "ok":
            reason = " ".join(str(entry.get("reason", "")).split())[:300]
            print(f"{name:7} SKIPPED: {reason}")
            continue
        figures = entry["figures"]
        labels = {f"latency_script_p{q}": f"1 script task, submit->result, p{q}"
                  for q in (50, 99)}
        labels |= {f"latency_noop_p{q}": f"1 no-op function, submit->result, p{q}"
                   for q in (50, 99)}
        for n in r["setup"]["fanouts"]:
            labels[f"fanout_{n}_script_per_s"] = f"fan-out {n} script tasks"
            labels[f"fanout_{n}_true_per_s"] = f"fan-out {n} /bin/true tasks"
            labels[f"fanout_{n}_noop_per_s"] = f"fan-out {n} no-op functions"
        chain = r["setup"]["chain"]
        labels["chain_per_link"] = f"chain of {chain} script tasks, per link"
        labels["chain_overhead_per_link"] = "chain overhead per link (beyond bare)"
        for key, label in labels.items():
            f = figures.get(key)
            if f is None:
                continue
            print(f"{name:7} {label:42} {f['peer']:9.1f} {f['baseline']:9.1f} {f['unit']:>8} "
                  f"{f['ratio']:6.2f}   {f['baseline_is']}")
        versions = ", ".join(f"{k} {v}" for k, v in entry.get("versions", {}).items())
        cleanup = f"; cleanup: {'; '.join(entry['cleanup'])}" if entry["cleanup"] else ""
        print(f"{name:7} ({versions}; startup {entry.get('startup_s', 0):.1f} s, run "
              f"{entry['seconds']:.0f} s{cleanup})")
    print("ratio = peer / baseline (ms: higher is slower; tasks/s: lower is slower); baselines "
          "measured in the same run with the same interpreter")
    ref = r["reference_from_issue"]
    print(f"from the issue, not measured here: original Titan 1 job "
          f"{ref['original_titan']['one_job_submit_to_completed_ms']} ms, 200 fan-out "
          f"{ref['original_titan']['fanout_200_jobs_per_s']} jobs/s, chain "
          f"{ref['original_titan']['chain_ms_per_job']} ms/job; peers 200 script tasks/s "
          + ", ".join(f"{k} {v}" for k, v in ref["peers_fanout_200_script_tasks_per_s"].items())
          + f"; Ray no-op {ref['ray_noop_tasks_per_s']}/s")
    print(f"total {r['setup']['seconds']:.0f} s")


if __name__ == "__main__":
    _print(main())
