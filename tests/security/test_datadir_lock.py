"""Two masters or two stores on one data directory: the second refuses to start, names the
holder, exits non-zero, and the first keeps working. Real ``titanctl`` processes.

(A second master beside a ``titanctl up`` cluster: tests/e2e/test_cluster.py::
test_up_records_the_cluster_refuses_twice_and_down_stops_exactly_it; a second store beside a
store process that is then killed: tests/e2e/test_store_process.py::
test_acknowledged_writes_survive_a_sigkill_of_the_store_process. Here the first one is checked
to go on working after the refusal, and a store process is refused the store directory that a
master's embedded store holds.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.processes import TITANCTL, stop_and_check, titanctl, wait_for_file
from titan_actors.client import MasterClient
from titan_actors.scheduler.model import JobKind, JobSpec, RunSpec
from titan_actors.wire.blocking import BlockingClient
from titan_actors.wire.messages.store import StoreGet, StorePut
from titan_actors.wire.roles import Role


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, dict]:
    ready = tmp_path / f"{args[0]}.ready"
    with open(tmp_path / f"{args[0]}.log", "ab") as log:
        process = subprocess.Popen([TITANCTL, *args, "--ready-file", str(ready)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return process, json.loads(wait_for_file(ready, process))


@pytest.fixture
def first(tmp_path, monkeypatch):
    monkeypatch.delenv("TITAN_KEY_FILE", raising=False)
    started = []

    def start(*args: str) -> dict:
        process, info = _start(tmp_path, *args)
        started.append(process)
        return info
    yield start
    for process in started:
        stop_and_check(process)


def _refused(result: subprocess.CompletedProcess, directory: Path, pid: int) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"data directory {directory} is in use" in result.stderr, result.stderr
    assert f"pid {pid}" in result.stderr and "Traceback" not in result.stderr


def test_a_second_master_and_a_store_on_a_masters_directory_are_refused(tmp_path, first):
    data = tmp_path / "data"
    master = first("master", "--data-dir", str(data), "--port", "0")
    aof = data / "master" / "master.aof"
    with MasterClient(master["host"], master["port"], timeout=10) as client:
        client.ping()  # answered once the master actor started (its AOF is open)
    before = aof.stat().st_size

    _refused(titanctl("master", "--data-dir", str(data), "--port", "0"), data / "master",
             master["pid"])
    # the master's embedded store holds <data>/store: a store process may not take it
    _refused(titanctl("store", "--data-dir", str(data), "--store-port", "0"), data / "store",
             master["pid"])

    with MasterClient(master["host"], master["port"], timeout=10) as client:
        assert client.ping().identity == "master"
        run = client.submit(RunSpec("after", (JobSpec("g", kind=JobKind.GATE),))).run_id
        client.store_put("after", "the refusals")
        assert client.store_get("after") == "the refusals"
        assert [r.run_id for r in client.runs()] == [run]
    assert aof.stat().st_size > before  # its AOF still takes records


def test_a_second_store_is_refused_and_the_first_keeps_serving(tmp_path, first):
    data = tmp_path / "data"
    store = first("store", "--data-dir", str(data), "--store-port", "0")

    _refused(titanctl("store", "--data-dir", str(data), "--store-port", "0"), data / "store",
             store["pid"])

    with BlockingClient(store["host"], store["port"], role=Role.ADMIN, timeout=10) as client:
        client.ask(StorePut("after", "the refusal"))
        assert client.ask(StoreGet("after")).value == "the refusal"
