"""Celery 5 peer: Debian's redis-server as broker and result backend, one prefork worker with
``-c 2`` (parallelism 2). Run by bench/bench_peers.py with the peer venv's python."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
REDIS_SERVER = os.environ.get("BENCH_REDIS_SERVER", "/usr/bin/redis-server")
WAIT = 600  # seconds any one wait for results may take


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen, grace: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _start_redis(port: int, tmp: Path) -> subprocess.Popen:
    """redis-server without persistence; returns once it logged that it accepts connections."""
    redis = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp), "--logfile", "", "--daemonize", "no"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    seen = b""
    with selectors.DefaultSelector() as sel:
        sel.register(redis.stdout, selectors.EVENT_READ)
        while b"Ready to accept connections" not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or redis.poll() is not None:
                _stop(redis, 5)
                raise RuntimeError(f"redis-server did not start: {seen[-2000:]!r}")
            if sel.select(left):
                chunk = os.read(redis.stdout.fileno(), 65536)
                if not chunk:
                    continue
                seen += chunk
    # keep draining its log so that it never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in redis.stdout], daemon=True).start()
    return redis


class _Celery:
    def __init__(self, exe: str, script: str) -> None:
        from celery_app import run

        self.run, self.args = run, (exe, script)

    def one(self, kind: str) -> None:
        self.run.delay(None, kind, *self.args).get(timeout=60)

    def fanout(self, kind: str, n: int) -> None:
        # n separate tasks and a get() each: faster here than a group, whose get() waits in
        # 0.5 s intervals
        results = [self.run.delay(None, kind, *self.args) for _ in range(n)]
        deadline = time.monotonic() + WAIT
        for result in results:
            result.get(timeout=max(1.0, deadline - time.monotonic()))

    def chain(self, n: int) -> None:
        from celery import chain

        links = [self.run.si(None, "script", *self.args)]
        links += [self.run.s("script", *self.args) for _ in range(n - 1)]
        chain(*links).apply_async().get(timeout=WAIT)


@contextlib.contextmanager
def _cluster(exe: str, script: str, tmp: Path):
    port = _free_port()
    url = f"redis://127.0.0.1:{port}"
    os.environ["BENCH_CELERY_REDIS"] = url  # read by celery_app, here and in the worker
    redis = _start_redis(port, tmp)
    worker = None
    try:
        with open(tmp / "worker.log", "wb") as log:
            env = dict(os.environ, PYTHONPATH=str(HERE))
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "celery_app", "worker",
                 "-c", str(common.PARALLEL), "-P", "prefork", "--loglevel", "WARNING",
                 "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-n", f"bench{os.getpid()}@%h"],
                cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
        from celery.exceptions import TimeoutError as CeleryTimeout

        adapter = _Celery(exe, script)
        # ready when a task went through; poll the result with a deadline, watching the worker
        pending = adapter.run.delay(None, "noop", exe, script)
        deadline = time.monotonic() + 120
        while True:
            try:
                pending.get(timeout=1)
                break
            except CeleryTimeout:
                if worker.poll() is not None or time.monotonic() > deadline:
                    log_text = (tmp / "worker.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"celery worker not ready (rc={worker.poll()}): "
                                       f"{log_text}") from None
        yield adapter
    finally:
        if worker is not None:
            _stop(worker, 30)  # SIGTERM: warm shutdown, the pool processes go with it
        _stop(redis, 10)


if __name__ == "__main__":
    sys.exit(common.main("celery", _cluster, ("celery", "kombu", "billiard", "redis")))
