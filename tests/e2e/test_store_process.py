"""Layer 4: the store as its own process (``titanctl up --separate-store``), as users run it.

The store process is SIGKILLed after acknowledged writes (values, a set, expiries) and started
again on the same port and data directory: everything acknowledged is there, read through the
master, which reconnected by itself. While the store is down a ``kv`` request fails with a clear
message and exit code 3 instead of hanging; a second store on the same data directory refuses
to start, naming the holder. The end checks that no process is left (``titanctl down`` stops
the store too).
"""

from __future__ import annotations

import time

import psutil
import pytest

from support import wait_until
from support.local_cluster import LocalCluster, wait_gone
from support.processes import titanctl, wait_for_file


@pytest.fixture
def cluster(tmp_path):
    made = LocalCluster(tmp_path / "cluster")
    try:
        yield made
    finally:
        made.down_and_check()


def _connections(cluster: LocalCluster) -> int:
    """How many times the master connected to the store (from its log)."""
    log = (cluster.root / "logs" / "master.log").read_text(errors="replace")
    return log.count("connected to the store at")


def test_acknowledged_writes_survive_a_sigkill_of_the_store_process(cluster):
    started = cluster.up(0, 1, "--separate-store", "--store-port", "0")
    store = cluster.state["store"]
    address = f"{store['host']}:{store['port']}"
    assert f"store    {address}" in started.stdout

    assert cluster.ctl("kv", "put", "short", "gone soon", "--ttl", "1").returncode == 0
    short_acked = time.time()
    for n in range(3):
        assert cluster.ctl("kv", "put", f"k{n}", f"v{n}|;\n✓").returncode == 0
    assert cluster.ctl("kv", "put", "long", "kept", "--ttl", "3600").returncode == 0
    assert cluster.ctl("kv", "sadd", "members", "a").stdout == "1\n"
    assert cluster.ctl("kv", "sadd", "members", "b").stdout == "1\n"

    second = titanctl("store", "--data-dir", str(cluster.root), "--store-port", "0",
                      env=cluster.env)
    assert second.returncode != 0
    assert "is in use" in second.stderr and f"pid {store['pid']}" in second.stderr

    cluster.kill(store["pid"])
    down = cluster.ctl("kv", "get", "k0", timeout=30)
    assert down.returncode == 3, down.stdout + down.stderr
    assert f"the store at {address} is unreachable" in down.stderr

    ready = cluster.root / "store-again.ready"
    again = cluster.spawn(["store", "--store-port", str(store["port"]), "--data-dir",
                           str(cluster.root), "--ready-file", str(ready)], "store-again.log")
    wait_for_file(ready, again)
    wait_until(lambda: _connections(cluster) == 2, 15, interval=0.05,
               what="the master to reconnect to the restarted store")

    for n in range(3):
        got = cluster.ctl("kv", "get", f"k{n}")
        assert (got.returncode, got.stdout) == (0, f"v{n}|;\n✓\n"), got.stderr
    assert cluster.ctl("kv", "get", "long").stdout == "kept\n"
    assert time.time() > short_acked + 1  # its expiry, persisted, has passed
    assert cluster.ctl("kv", "get", "short").returncode == 1
    assert cluster.ctl("kv", "smembers", "members").stdout.split() == ["a", "b"]
    assert cluster.ctl("kv", "sadd", "members", "a").stdout == "0\n"


def test_down_stops_the_store_process_too(cluster):
    cluster.up(0, 1, "--separate-store", "--store-port", "0")
    store = psutil.Process(cluster.state["store"]["pid"])
    master = psutil.Process(cluster.state["master"]["pid"])
    assert "store" in store.cmdline()
    result = cluster.down()
    assert result.returncode == 0, result.stderr
    assert not wait_gone([master, store], 10)
