"""Spawn and reap a process through the launcher, against ``subprocess.run``, in the same run.

Run ``python bench/bench_spawn.py`` (about 10 s). Measured in this process, one process at a
time, best of three rounds:

* baseline: ``subprocess.run(argv)`` (the stdlib's fork/vfork + exec + waitpid, blocking);
* ours: ``Launcher.launch(...)`` then ``wait`` for the reported exit, without output pipes, and
  with pipes read by an ``OutputCapture`` to EOF (the path a worker takes);
* for reference, ``gevent.subprocess.run`` (what a worker would use without the launcher).

for ``/bin/true`` (the pure cost of process management) and ``python -c pass`` (a typical job's
floor, dominated by the interpreter's start). Also: ``/bin/true`` processes per second with 16
launched concurrently. The ratios are ours / baseline. :func:`main` returns the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import gevent
import gevent.subprocess

from titan_actors.execution.launcher_client import Launcher
from titan_actors.execution.output import OutputCapture, finish

TRUE = ["/bin/true"]
PYTHON = [sys.executable, "-c", "pass"]
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
CONCURRENT = 16


def _best_ms(run_once, count: int, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            run_once()
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e3


def _counter():
    n = 0

    def next_key() -> str:
        nonlocal n
        n += 1
        return f"bench-{n}"
    return next_key


def _launcher_runs(launcher: Launcher, argv: list[str]):
    key = _counter()

    def bare() -> None:
        proc = launcher.launch(key(), argv, ENV, "/", capture=False)
        assert proc.wait(30) == 0

    def captured() -> None:
        proc = launcher.launch(key(), argv, ENV, "/")
        capture = OutputCapture(proc.stdout_fd, proc.stderr_fd, lambda s, d: None).start()
        assert finish(proc, capture, timeout=30).code == 0

    return bare, captured


def _concurrent_per_s(launcher: Launcher, total: int) -> float:
    key = _counter()

    def worker(count: int) -> None:
        for _ in range(count):
            assert launcher.launch(key(), TRUE, ENV, "/", capture=False).wait(30) == 0

    start = time.perf_counter()
    gevent.joinall([gevent.spawn(worker, total // CONCURRENT) for _ in range(CONCURRENT)],
                   raise_error=True)
    return (total // CONCURRENT * CONCURRENT) / (time.perf_counter() - start)


def main() -> dict[str, float]:
    """Measure and return the figures (milliseconds per spawn-and-reap, processes per second)."""
    figures: dict[str, float] = {}
    launcher = Launcher.start()
    try:
        for name, argv, count in (("true", TRUE, 200), ("python", PYTHON, 25)):
            bare, captured = _launcher_runs(launcher, argv)
            bare()  # warm up
            base = _best_ms(lambda argv=argv: subprocess.run(argv, check=True), count)
            ours = _best_ms(bare, count)
            ours_captured = _best_ms(captured, count)
            figures.update({f"{name}_subprocess_ms": base, f"{name}_launcher_ms": ours,
                            f"{name}_ratio": ours / base,
                            f"{name}_launcher_captured_ms": ours_captured,
                            f"{name}_captured_ratio": ours_captured / base})
        figures["true_concurrent_per_s"] = _concurrent_per_s(launcher, 800)
    finally:
        launcher.close()
    # last: gevent.subprocess installs a SIGCHLD child watcher in this process
    for name, argv, count in (("true", TRUE, 100), ("python", PYTHON, 15)):
        gevent_ms = _best_ms(lambda argv=argv: gevent.subprocess.run(argv, check=True), count,
                             rounds=2)
        figures[f"{name}_gevent_subprocess_ms"] = gevent_ms
    return figures


def _print(r: dict[str, float]) -> None:
    for name, what in (("true", "/bin/true"), ("python", "python -c pass")):
        print(f"{what:15s} subprocess.run           {r[f'{name}_subprocess_ms']:7.2f} ms  "
              "(baseline)")
        print(f"{what:15s} launcher                 {r[f'{name}_launcher_ms']:7.2f} ms  "
              f"ratio {r[f'{name}_ratio']:.2f}")
        print(f"{what:15s} launcher + output pipes  {r[f'{name}_launcher_captured_ms']:7.2f} ms"
              f"  ratio {r[f'{name}_captured_ratio']:.2f}")
        print(f"{what:15s} gevent.subprocess.run    {r[f'{name}_gevent_subprocess_ms']:7.2f} ms"
              "  (reference)")
    print(f"/bin/true, {CONCURRENT} concurrent launches   {r['true_concurrent_per_s']:7.0f} "
          "processes/s")


if __name__ == "__main__":
    _print(main())
