"""The reliability checker (tests/support/ledger.py) finds each kind of violation it claims to."""

from __future__ import annotations

import pytest

from support.ledger import RunLedger, check

PARENTS = {("r", "a"): [], ("r", "b"): ["a"]}
DONE = {("r", "a"): ("completed", 1), ("r", "b"): ("completed", 1)}


def ledger_of(tmp_path, *lines: str) -> RunLedger:
    ledger = RunLedger(tmp_path / "ledger")
    ledger.path.write_text("".join(line + "\n" for line in lines))
    return ledger


def job(what: str, job_id: str, attempt: int = 1) -> str:
    return f"{what} r {job_id} {attempt} w1 100 1.5"


def problems(tmp_path, lines, final=DONE, **kwargs) -> list[str]:
    return check(ledger_of(tmp_path, *lines), PARENTS, final, **kwargs).problems


def test_a_clean_history_passes(tmp_path):
    verdict = check(ledger_of(tmp_path, "submitted r", job("before", "a"), job("after", "a"),
                              job("before", "b"), job("after", "b")), PARENTS, DONE)
    assert verdict.problems == [] and verdict.runs == 2 and verdict.duplicates == 0


@pytest.mark.parametrize("lines, final, expected", [
    (["submitted r", job("before", "a"), job("after", "a")],
     {("r", "a"): ("completed", 1), ("r", "b"): ("pending", 0)}, "r/b ended pending"),
    (["submitted r", job("before", "a"), job("before", "b"), job("after", "a"),
      job("after", "b")], DONE, "r/b started (line 3) before its parent a completed"),
    (["submitted r", job("before", "a"), job("after", "a"), job("before", "a", 2),
      job("after", "a", 2), job("before", "b"), job("after", "b")],
     {("r", "a"): ("completed", 2), ("r", "b"): ("completed", 1)},
     "nothing crashed after attempt 1"),
    (["submitted r", job("before", "a"), job("after", "a"), job("before", "a", 2),
      job("after", "a", 2), job("before", "b"), job("after", "b")],
     {("r", "a"): ("completed", 1), ("r", "b"): ("completed", 1)},
     "attempt 2 started although the master recorded attempt 1"),
    ([job("before", "a"), job("after", "a"), job("before", "b"), job("after", "b")], DONE,
     "never noted as acknowledged"),
])
def test_each_violation_is_found(tmp_path, lines, final, expected):
    found = problems(tmp_path, lines, final)
    assert any(expected in p for p in found), found


def test_a_rerun_is_in_doubt_only_after_a_crash(tmp_path):
    final = {("r", "a"): ("completed", 2), ("r", "b"): ("completed", 1)}
    crashed = ["submitted r", job("before", "a"), job("after", "a"), "crash master",
               job("before", "a", 2), job("after", "a", 2), job("before", "b"), job("after", "b")]
    killed = ["submitted r", job("before", "a"), "crash worker", job("before", "a", 2),
              job("after", "a", 2), job("before", "b"), job("after", "b")]
    for lines in (crashed, killed):
        verdict = check(ledger_of(tmp_path, *lines), PARENTS, final)
        assert verdict.problems == [] and verdict.duplicates == 1
    concurrent = ["submitted r", job("before", "a"), job("before", "a", 2), job("after", "a"),
                  job("after", "a", 2), job("before", "b"), job("after", "b")]
    found = check(ledger_of(tmp_path, *concurrent), PARENTS, final).problems
    assert any("nothing crashed after attempt 1 started" in p for p in found), found


def test_cancel_and_approval_order(tmp_path):
    final = {("r", "a"): ("cancelled", 1), ("r", "b"): ("completed", 1)}
    lines = ["submitted r", "cancel-acked r a", job("before", "a"), job("before", "b"),
             job("after", "b")]
    found = problems(tmp_path, lines, final, cancelled=[("r", "a")], gated={("r", "b"): "g"})
    assert any("r/a started after its cancel was acknowledged" in p for p in found), found
    assert any("r/b started before its gate g was approved" in p for p in found), found
