"""Layer 4: a real ``titanctl store`` killed at each step of a compaction (the
``aof.rewrite.*`` failpoints with ``kill``), then started again.

A small ``TITAN_AOF_REWRITE_MIN_SIZE`` makes the store compact after about a hundred writes. A
writer puts keys until the failpoint kills the process (its connection breaks). The restarted
store (no failpoint) holds every acknowledged write, no temp file is left to break anything,
and the next compaction runs to its end (the log says so) and loses nothing either.
"""

from __future__ import annotations

import itertools

import pytest

from support.server_process import StoreProcess
from titan_actors.aof.rewrite import REWRITE_STEPS
from titan_actors.wire.messages import store as s

COMPACT_SOON = {"TITAN_AOF_FSYNC": "always", "TITAN_AOF_REWRITE_MIN_SIZE": "4k",
                "TITAN_AOF_REWRITE_PERCENTAGE": "100"}


def _put_until(store: StoreProcess, acked: dict[str, str], prefix: str, limit: int,
               done=lambda: False) -> bool:
    """Put ``prefix-N`` keys until the connection breaks (True) or ``done()`` / ``limit``."""
    try:
        with store.client(prefix) as client:
            for n in itertools.count():
                if n >= limit or done():
                    return False
                key, value = f"{prefix}-{n}", f"value {n} of {prefix}"
                client.ask(s.StorePut(key, value))
                acked[key] = value
    except Exception:
        return True


def _lost(store: StoreProcess, acked: dict[str, str]) -> list[str]:
    with store.client("checker") as client:
        return [k for k, v in acked.items() if client.ask(s.StoreGet(k)) != s.StoreValue(True, v)]


def _crash_at(tmp_path, step: str) -> None:
    data = tmp_path / "data"
    store = StoreProcess(data, COMPACT_SOON)
    acked: dict[str, str] = {}
    try:
        store.start({"TITAN_FAILPOINTS": f"aof.rewrite.{step}=kill"})
        assert _put_until(store, acked, "before", 5000), "the failpoint never fired"
        assert store.wait_exit() == -9
        assert f"failpoint aof.rewrite.{step}: kill" in store.log()
        temp = data / "store" / "store.aof.rewrite.tmp"
        assert temp.exists() == (step in ("temp_written", "temp_fsynced"))

        store.start()
        assert _lost(store, acked) == []
        assert not temp.exists()
        compactions = store.log().count("rewrote append-only file")
        assert not _put_until(store, acked, "after", 5000,
                              done=lambda: store.log().count("rewrote append-only file")
                              > compactions), "the next compaction did not finish"
        store.kill()
        store.start()
        assert _lost(store, acked) == []
    finally:
        store.stop()
    print(f"FIGURE store compaction-crash step={step} acked={len(acked)} lost=0")


@pytest.mark.parametrize("step", ["temp_written", "replaced"])
def test_a_store_killed_during_compaction_recovers(tmp_path, step):
    _crash_at(tmp_path, step)


@pytest.mark.slow
@pytest.mark.parametrize("step", [s for s in REWRITE_STEPS
                                  if s not in ("temp_written", "replaced")])
def test_a_store_killed_at_every_other_compaction_step_recovers(tmp_path, step):
    _crash_at(tmp_path, step)
