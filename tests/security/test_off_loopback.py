"""Off loopback, no component starts without the cluster key; none starts with a key of a role
it cannot play. Real ``titanctl`` commands: each exits 2 at once, says why and what to do, and
(off loopback) leaves the data directory untouched.

(``titanctl web --host 0.0.0.0`` is tests/e2e/test_web.py::test_passwd_and_the_bind_rule.)
Nothing here listens off loopback or reaches the network: the refusals come first; 192.0.2.0/24
is TEST-NET-1, never routed.
"""

from __future__ import annotations

import os
import time

import pytest

from support.processes import titanctl
from titan_actors.config_security import generate_key_file
from titan_actors.keys import derive_role_key_file
from titan_actors.wire.roles import Role

FAR = "192.0.2.10"
NO_KEY = "pass --key-file / TITAN_KEY_FILE"


@pytest.fixture
def clean_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("TITAN_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize("args, said", [
    pytest.param(["master", "--host", "0.0.0.0"], "refusing to bind 0.0.0.0", id="master-any"),
    pytest.param(["master", "--host", FAR], f"refusing to bind {FAR}", id="master-address"),
    pytest.param(["master", "--store-address", f"{FAR}:6379"],
                 f"refusing to connect to the store at {FAR}:6379", id="master-store"),
    pytest.param(["store", "--host", "::", "--store-port", "0"], "refusing to bind ::",
                 id="store-any"),
    pytest.param(["worker", "--master", f"{FAR}:9090", "--name", "w"],
                 f"refusing to connect to the master at {FAR}:9090", id="worker"),
    pytest.param(["web", "--master", f"{FAR}:9090", "--web-port", "0"],
                 f"refusing to connect to the master at {FAR}:9090", id="web-master"),
])
def test_off_loopback_without_a_key_nothing_starts(tmp_path, clean_env, args, said):
    data = tmp_path / "data"
    started = time.monotonic()
    result = titanctl(*args, "--data-dir", str(data), timeout=30)
    took = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr and NO_KEY in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not data.exists(), "the data directory was touched before the refusal"
    assert took < 10, f"{args[0]} took {took:.1f} s to refuse"


@pytest.mark.parametrize("component, role, said", [
    pytest.param("master", Role.CLIENT, "needs the cluster key file, not a role key file",
                 id="master-client-key"),
    pytest.param("worker", Role.CLIENT, "a worker needs the cluster key or the worker key",
                 id="worker-client-key"),
    pytest.param("web", Role.WORKER,
                 "the web console needs the cluster key or the client or admin key",
                 id="web-worker-key"),
])
def test_a_key_of_another_role_is_refused_at_start(tmp_path, clean_env, component, role, said):
    cluster = generate_key_file(tmp_path / "cluster.key")
    key = derive_role_key_file(cluster, role, tmp_path / "role.key")
    port = {"master": ["--port", "0"], "store": ["--store-port", "0"], "web": ["--web-port", "0"],
            "worker": ["--name", "w", "--master", "127.0.0.1:9"]}[component]
    result = titanctl(component, "--key-file", str(key), "--data-dir", str(tmp_path / "data"),
                      *port, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
