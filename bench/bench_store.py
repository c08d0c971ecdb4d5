"""Store operations per second through the master, against a no-op request in the same run.

Run ``python bench/bench_store.py``. It starts ``titanctl up --workers 0`` (the master with its
embedded store, ``everysec``) in a temporary directory and measures, with blocking clients:
``store_put`` and ``store_get`` per second for 1 client and for 8 clients (threads), against
``Ping`` (a request the master answers without touching the store) with the same clients.
Debian's redis-server is not compared here: no Redis client is among the project's packages.
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

OPS = 2000


def _rate(address: tuple[str, int], clients: int, op: str) -> float:
    def work(index: int) -> None:
        with MasterClient(*address, timeout=30) as client:
            for n in range(OPS // clients):
                if op == "put":
                    client.store_put(f"bench:{index}:{n}", "x" * 64)
                elif op == "get":
                    client.store_get(f"bench:{index}:{n}")
                else:
                    client.ping()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    return (OPS // clients) * clients / (time.perf_counter() - start)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="titan-store-bench-") as tmp:
        env = dict(os.environ, TITAN_DATA_DIR=tmp)
        cli = [sys.executable, "-m", "titan_actors.cli"]
        up = subprocess.run(cli + ["up", "--port", "0", "--workers", "0"], env=env,
                            capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            raise RuntimeError(up.stdout + up.stderr)
        try:
            master = json.loads((Path(tmp) / "cluster.json").read_text())["master"]
            address = (master["host"], master["port"])
            figures = {}
            for clients in (1, 8):
                ping = _rate(address, clients, "ping")
                for op in ("put", "get"):
                    rate = _rate(address, clients, op)
                    figures[f"{op}_{clients}"] = rate
                    figures[f"{op}_{clients}_ratio"] = rate / ping
                figures[f"ping_{clients}"] = ping
        finally:
            subprocess.run(cli + ["down"], env=env, capture_output=True, timeout=120)
    return figures


def _print(r: dict[str, float]) -> None:
    for clients in (1, 8):
        print(f"{clients} client(s): ping {r[f'ping_{clients}']:7.0f}/s   "
              f"put {r[f'put_{clients}']:7.0f}/s (ratio {r[f'put_{clients}_ratio']:.2f})   "
              f"get {r[f'get_{clients}']:7.0f}/s (ratio {r[f'get_{clients}_ratio']:.2f})")


if __name__ == "__main__":
    _print(main())
