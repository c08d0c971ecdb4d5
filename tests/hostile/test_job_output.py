"""Hostile output from jobs, through a real cluster (``titanctl up``, layer 4).

A job that floods stdout (300 MB by default, 2 GB in the slow run), one that writes a 100 MB
line without a newline, and one that writes invalid UTF-8: the worker reads and drops what is
past the log cap (``log_cap``), so the job never blocks and no process buffers it; the master
stores the cap's worth and a visible truncation marker; ``titanctl logs`` prints the stored
bytes verbatim, marker included, and ``--json`` replaces what is not UTF-8; the RSS of the
master and of the workers stays bounded (sampled with psutil all along); and a small DAG run
meanwhile finishes about as fast as it does on an idle cluster.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pytest

from support.local_cluster import LocalCluster, write_pipeline
from titan_actors.master.logs import TRUNCATION_MARKER

CAP = 8 << 20
BAD_UTF8 = "ok \\377\\376 \\303( \\355\\240\\200 end"  # printf escapes: invalid sequences


class RssSampler:
    """Samples the RSS of processes (and their launchers) in a thread until stopped."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.first = self._sample()
        self.peak = dict(self.first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[str, int]:
        out = {}
        for name, process in self._processes.items():
            try:
                out[name] = process.memory_info().rss
                for child in process.children():  # the worker's launcher (not the jobs)
                    if "launcher" in " ".join(child.cmdline()):
                        out[f"{name} launcher"] = child.memory_info().rss
            except psutil.Error:
                pass
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.02):  # a sampling period, not a wait for something
            for name, rss in self._sample().items():
                self.peak[name] = max(self.peak.get(name, 0), rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.last = self._sample()

    def report(self) -> str:
        return "; ".join(f"{name} {self.first.get(name, 0) >> 20}/{self.peak[name] >> 20}/"
                         f"{self.last.get(name, 0) >> 20} MiB" for name in sorted(self.peak))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    made = LocalCluster(tmp_path_factory.mktemp("hostile-output") / "cluster",
                        env={"TITAN_LOG_CAP": str(CAP)})
    made.up(workers=2, slots=2)
    yield made
    made.down_and_check()


def small_dag(cluster: LocalCluster, root: Path, name: str) -> float:
    """Seconds a 6-job DAG of quick jobs takes from submission to its end."""
    jobs = [{"id": "a", "command": ["true"]}, {"id": "b", "command": ["true"], "depends_on": ["a"]},
            {"id": "c", "command": ["true"], "depends_on": ["a"]},
            {"id": "d", "command": ["true"], "depends_on": ["b", "c"]},
            {"id": "e", "command": ["true"], "depends_on": ["d"]},
            {"id": "f", "command": ["true"], "depends_on": ["e"]}]
    started = time.monotonic()
    run_id = cluster.submit(write_pipeline(root / f"{name}.yaml", name, jobs))
    status = cluster.wait_run(run_id, timeout=120)
    assert status["run"]["state"] == "completed", status
    return time.monotonic() - started


def flood(cluster: LocalCluster, root: Path, flood_bytes: int) -> None:
    pids = {"master": cluster.state["master"]["pid"],
            **{w["name"]: w["pid"] for w in cluster.state["workers"]}}
    idle = small_dag(cluster, root, "idle")
    jobs = [{"id": "flood", "command": ["sh", "-c", f"yes | head -c {flood_bytes}"],
             "retries": 0},
            {"id": "line", "command": ["sh", "-c", "head -c 100000000 /dev/zero | tr '\\0' x"],
             "retries": 0},
            {"id": "badutf8", "command": ["sh", "-c", f"printf '{BAD_UTF8}'"], "retries": 0}]
    with RssSampler(pids) as rss:
        started = time.monotonic()
        run_id = cluster.submit(write_pipeline(root / "hostile.yaml", "hostile", jobs))
        busy = small_dag(cluster, root, "busy")
        status = cluster.wait_run(run_id, timeout=600)
        took = time.monotonic() - started
    assert status["run"]["state"] == "completed", status
    print(f"\n{flood_bytes >> 20} MiB flood + 100 MB line: run done in {took:.1f} s; small DAG "
          f"{idle:.2f} s idle, {busy:.2f} s meanwhile; RSS first/peak/last: {rss.report()}")
    assert busy < idle * 5 + 3, f"the small DAG took {busy:.1f} s beside the flood"
    for name, peak in rss.peak.items():
        assert peak - rss.first.get(name, peak) < 150 << 20, rss.report()

    for job, body in (("flood", b"y\n"), ("line", b"x")):
        shown = cluster.ctl_bytes("logs", f"{run_id}/{job}")
        assert shown.returncode == 0, shown.stderr
        assert len(shown.stdout) == CAP + len(TRUNCATION_MARKER)
        assert shown.stdout.endswith(TRUNCATION_MARKER)
        assert shown.stdout[:CAP] == (body * (CAP // len(body) + 1))[:CAP]
        as_json = cluster.ctl_bytes("logs", f"{run_id}/{job}", "--json")
        assert json.loads(as_json.stdout)["truncated"] is True

    raw = cluster.ctl_bytes("logs", f"{run_id}/badutf8")
    assert raw.returncode == 0 and raw.stdout == b"ok \xff\xfe \xc3( \xed\xa0\x80 end"
    decoded = json.loads(cluster.ctl_bytes("logs", f"{run_id}/badutf8", "--json").stdout)
    assert decoded["output"] == "ok \ufffd\ufffd \ufffd( \ufffd\ufffd\ufffd end"
    assert decoded["truncated"] is False


def test_a_300mb_flood_a_100mb_line_and_bad_utf8_are_capped_and_shown(cluster, tmp_path):
    flood(cluster, tmp_path, 300 << 20)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_2gb_flood_is_capped_with_every_process_bounded(cluster, tmp_path):
    flood(cluster, tmp_path, 2 << 30)

