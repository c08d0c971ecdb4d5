"""Dask distributed peer: ``LocalCluster(n_workers=2, threads_per_worker=1)`` (worker processes,
parallelism 2) and a ``Client``. Run by bench/bench_peers.py with the peer venv's python."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import common

WAIT = 600  # seconds any one wait for results may take


def task(prev, kind: str, exe: str, script: str) -> int:
    """One task (defined here so that cloudpickle ships it by value); ``prev`` is the previous
    link's result in a chain."""
    import subprocess

    if kind == "script":
        return subprocess.run([exe, script], check=True, capture_output=True).returncode
    if kind == "true":
        return subprocess.run(["/bin/true"], check=True, capture_output=True).returncode
    return 0


class _Dask:
    def __init__(self, client, exe: str, script: str) -> None:
        self.client, self.args = client, (exe, script)

    def one(self, kind: str) -> None:
        self.client.submit(task, None, kind, *self.args, pure=False).result(timeout=60)

    def fanout(self, kind: str, n: int) -> None:
        from distributed import wait

        exe, script = self.args
        futures = self.client.map(task, [None] * n, [kind] * n, [exe] * n, [script] * n,
                                  pure=False)  # one batch: faster than n submit() calls
        wait(futures, timeout=WAIT)  # gather() has no timeout of its own
        self.client.gather(futures)  # raises a task's error, if any

    def chain(self, n: int) -> None:
        future = None
        for _ in range(n):
            future = self.client.submit(task, future, "script", *self.args, pure=False)
        future.result(timeout=WAIT)


@contextlib.contextmanager
def _cluster(exe: str, script: str, tmp: Path):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=common.PARALLEL, threads_per_worker=1, processes=True,
                           dashboard_address=None, local_directory=str(tmp),
                           silence_logs=logging.WARNING)
    try:
        with Client(cluster, timeout=120) as client:
            client.wait_for_workers(common.PARALLEL, timeout=120)
            yield _Dask(client, exe, script)
    finally:
        cluster.close(timeout=60)


if __name__ == "__main__":
    sys.exit(common.main("dask", _cluster, ("dask", "distributed")))
