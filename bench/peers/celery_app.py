"""The Celery app and task for drive_celery.py (imported by the driver and by the worker).

The broker and the result backend are the redis-server the driver starts; its URL comes in
``BENCH_CELERY_REDIS``.
"""

from __future__ import annotations

import os
import subprocess

from celery import Celery

REDIS = os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6379")
app = Celery("bench_peers", broker=f"{REDIS}/0", backend=f"{REDIS}/1")
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_serializer="json", result_serializer="json", accept_content=["json"],
    worker_hijack_root_logger=False,
)


@app.task(name="bench.run")
def run(prev, kind: str, exe: str, script: str) -> int:
    """One task; ``prev`` is the previous link's result in a chain (ignored)."""
    if kind == "script":
        return subprocess.run([exe, script], check=True, capture_output=True).returncode
    if kind == "true":
        return subprocess.run(["/bin/true"], check=True, capture_output=True).returncode
    return 0
