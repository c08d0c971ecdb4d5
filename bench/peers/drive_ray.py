"""Ray peer: ``ray.init(num_cpus=2)`` (a local head; tasks take 1 CPU each, so parallelism 2),
no dashboard. Run by bench/bench_peers.py with the peer venv's python."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import common

WAIT = 600  # seconds any one wait for results may take


def task(prev, kind: str, exe: str, script: str) -> int:
    """One task (defined here so that cloudpickle ships it by value); ``prev`` is the previous
    link's result in a chain (Ray resolves an ObjectRef argument before the task runs)."""
    import subprocess

    if kind == "script":
        return subprocess.run([exe, script], check=True, capture_output=True).returncode
    if kind == "true":
        return subprocess.run(["/bin/true"], check=True, capture_output=True).returncode
    return 0


class _Ray:
    def __init__(self, ray, exe: str, script: str) -> None:
        self.ray, self.args = ray, (exe, script)
        self.task = ray.remote(num_cpus=1)(task)

    def one(self, kind: str) -> None:
        self.ray.get(self.task.remote(None, kind, *self.args), timeout=60)

    def fanout(self, kind: str, n: int) -> None:
        self.ray.get([self.task.remote(None, kind, *self.args) for _ in range(n)],
                     timeout=WAIT)

    def chain(self, n: int) -> None:
        ref = None
        for _ in range(n):
            ref = self.task.remote(ref, "script", *self.args)
        self.ray.get(ref, timeout=WAIT)


@contextlib.contextmanager
def _cluster(exe: str, script: str, tmp: Path):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    # a short temp dir of its own (Ray's unix socket paths must stay short)
    ray.init(num_cpus=common.PARALLEL, include_dashboard=False, _temp_dir=str(tmp / "ray"),
             object_store_memory=200 * 1024 * 1024, log_to_driver=False,
             configure_logging=True, logging_level="warning")
    try:
        yield _Ray(ray, exe, script)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(common.main("ray", _cluster, ("ray",)))
