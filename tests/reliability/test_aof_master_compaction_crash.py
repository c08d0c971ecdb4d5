"""Layer 4: a real ``titanctl master`` killed at each step of a compaction of its AOF (the
``aof.rewrite.*`` failpoints with ``kill``), then started again.

A small ``TITAN_AOF_REWRITE_MIN_SIZE`` makes the master compact after a few dozen submissions
(no workers: the runs stay queued). A client submits runs until the failpoint kills the master.
The restarted master (no failpoint) lists every run it acknowledged, no temp file is left, and
the next compaction runs to its end and loses nothing.
"""

from __future__ import annotations

import itertools

import pytest

from support.server_process import MasterProcess
from titan_actors.aof.rewrite import REWRITE_STEPS
from titan_actors.client import MasterClient
from titan_actors.scheduler import JobSpec, RunSpec

COMPACT_SOON = {"TITAN_AOF_FSYNC": "always", "TITAN_AOF_REWRITE_MIN_SIZE": "8k",
                "TITAN_AOF_REWRITE_PERCENTAGE": "100"}


def _client(master: MasterProcess) -> MasterClient:
    return MasterClient(*master.address, timeout=10, identity="test")


def _submit_until(master: MasterProcess, acked: set[str], limit: int,
                  done=lambda: False) -> bool:
    """Submit runs until the connection breaks (True), or ``done()`` / ``limit`` (False)."""
    spec = RunSpec("compact-me", (JobSpec("only", command=("true",)),))
    try:
        with _client(master) as client:
            for _ in itertools.count():
                if len(acked) >= limit or done():
                    return False
                acked.add(client.submit(spec).run_id)
    except Exception:
        return True


def _missing(master: MasterProcess, acked: set[str]) -> set[str]:
    with _client(master) as client:
        return acked - {run.run_id for run in client.runs(100_000)}


def _crash_at(tmp_path, step: str) -> None:
    data = tmp_path / "data"
    master = MasterProcess(data, COMPACT_SOON)
    acked: set[str] = set()
    try:
        master.start({"TITAN_FAILPOINTS": f"aof.rewrite.{step}=kill"})
        assert _submit_until(master, acked, 2000), "the failpoint never fired"
        assert master.wait_exit() == -9
        assert f"failpoint aof.rewrite.{step}: kill" in master.log()
        temp = data / "master" / "master.aof.rewrite.tmp"
        assert temp.exists() == (step in ("temp_written", "temp_fsynced"))

        master.start()
        assert _missing(master, acked) == set()
        assert not temp.exists()
        before = master.log().count("rewrote append-only file")
        assert not _submit_until(master, acked, 4000, done=lambda: master.log().count(
            "rewrote append-only file") > before), "the next compaction did not finish"
        master.kill()
        master.start()
        assert _missing(master, acked) == set()
    finally:
        master.stop()
    print(f"FIGURE master compaction-crash step={step} acked_runs={len(acked)} lost=0")


def test_a_master_killed_after_the_rename_of_a_compaction_recovers(tmp_path):
    _crash_at(tmp_path, "replaced")


@pytest.mark.slow
@pytest.mark.parametrize("step", [s for s in REWRITE_STEPS if s != "replaced"])
def test_a_master_killed_at_every_other_compaction_step_recovers(tmp_path, step):
    _crash_at(tmp_path, step)
