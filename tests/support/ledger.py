"""The reliability ledger: one file that jobs and the test append to, and the checker that
compares it with the client's history and the master's final state.

Jobs append ``before RUN JOB ATTEMPT WORKER PID TIME`` before their side effect and ``after RUN
JOB ATTEMPT WORKER PID TIME`` after it (TIME: bash's ``$EPOCHREALTIME``). A short line appended
with ``O_APPEND`` is atomic, so the file is the true order of events across processes. The
test appends what it did and what it was told, in the same file, so that they are ordered
against the jobs:

- ``crash WHAT``: the test killed something (a master, a worker, a link);
- ``submitted RUN``: a submission was acknowledged (client history);
- ``cancel-acked RUN JOB``: a cancel was acknowledged; nothing of that job may start after it;
- ``approve-asked RUN GATE``: the test is about to approve a gate; no job behind it may start
  before this line.

:func:`check` returns a :class:`Verdict`: every violation, with the counts the reliability
report publishes. Rules:

1. no acknowledged job lost: every job of every acknowledged run ended in the expected state;
2. no job started before every parent completed (an ``after`` of each parent precedes it);
3. nothing started after an acknowledged cancel, nor before its gate's approval was asked;
4. a job ran more than once only where the earlier run was really in doubt: a crash (of a
   master, a worker, a link) came between its ``before`` and the next ``before``;
5. never a start after the completion was acknowledged: no attempt above the one the master
   finally recorded as completed started.
"""

from __future__ import annotations

import os
import shlex
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    index: int          # position in the file: the order of events
    what: str
    fields: tuple[str, ...]


@dataclass
class Verdict:
    """What :func:`check` found. ``problems`` empty: every rule holds."""

    problems: list[str] = field(default_factory=list)
    jobs: int = 0
    runs: int = 0            # process starts (``before`` lines)
    duplicates: int = 0      # starts beyond the first, each one in doubt (else a problem)
    crashes: int = 0

    def assert_ok(self) -> None:
        assert not self.problems, "ledger check failed:\n" + "\n".join(self.problems[:50])


class RunLedger:
    """The ledger file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def note(self, *words: str) -> None:
        """Append a line of the test's own (``crash``, ``submitted``, ...)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (" ".join(words) + "\n").encode())
        finally:
            os.close(fd)

    def command(self, body: str = "") -> list[str]:
        """A job's argv: ``before``, say so on stdout, ``body``, ``after``."""
        ledger = shlex.quote(str(self.path))
        who = '$TITAN_RUN_ID $TITAN_JOB_ID $TITAN_ATTEMPT $TITAN_WORKER $$ $EPOCHREALTIME'
        return ["bash", "-c",
                f'echo "before {who}" >> {ledger}; echo "$TITAN_JOB_ID started"; '
                f'{body + "; " if body else ""}echo "after {who}" >> {ledger}']

    def entries(self) -> list[Entry]:
        return [Entry(i, words[0], tuple(words[1:]))
                for i, words in enumerate(line.split() for line in
                                          self.path.read_text().splitlines()) if words]

    def count(self, what: str) -> int:
        return sum(1 for e in self.entries() if e.what == what)

    def last_index(self) -> int:
        return len(self.entries()) - 1


def check(ledger: RunLedger, parents: Mapping[tuple[str, str], Iterable[str]],
          final: Mapping[tuple[str, str], tuple[str, int]], *,
          expected_state: str = "completed",
          cancelled: Iterable[tuple[str, str]] = (), gated: Mapping[tuple[str, str], str] = {},
          ) -> Verdict:
    """Check the ledger against the runs' shape and the master's final state.

    Args:
        parents: ``(run, job) -> parent job ids`` of every job of every acknowledged run.
        final: ``(run, job) -> (state, attempt)`` as the master reports them at the end.
        expected_state: the state every job not cancelled must end in.
        cancelled: jobs whose cancel the test expects to have taken effect.
        gated: ``(run, job) -> gate id`` for jobs that must not start before their gate's
            ``approve-asked`` line.
    """
    entries = ledger.entries()
    verdict = Verdict(jobs=len(parents))
    p = verdict.problems
    submitted = {e.fields[0] for e in entries if e.what == "submitted"}
    for run in sorted({run for run, _ in parents} - submitted):
        p.append(f"run {run} was never noted as acknowledged (the test must note submissions)")
    crashes = [e.index for e in entries if e.what == "crash"]
    verdict.crashes = len(crashes)
    cancel_at = {(e.fields[0], e.fields[1]): e.index for e in entries if e.what == "cancel-acked"}
    approve_at = {(e.fields[0], e.fields[1]): e.index for e in entries
                  if e.what == "approve-asked"}
    befores: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    afters: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        if e.what in ("before", "after"):
            (befores if e.what == "before" else afters)[(e.fields[0], e.fields[1])].append(e)
    verdict.runs = sum(map(len, befores.values()))
    for key in befores.keys() - parents.keys():
        p.append(f"{key[0]}/{key[1]} ran but is in no acknowledged run")

    cancelled = set(cancelled)
    for key, ups in parents.items():
        run, job = key
        state, attempt = final.get(key, ("missing", 0))
        want = "cancelled" if key in cancelled else expected_state
        if state != want:
            p.append(f"{run}/{job} ended {state}, expected {want} (acknowledged work lost?)")
        starts = befores.get(key, [])
        for start in starts:
            if int(start.fields[2]) > attempt:
                p.append(f"{run}/{job} attempt {start.fields[2]} started although the master "
                         f"recorded attempt {attempt} as its last")
            for parent in ups:
                done = afters.get((run, parent))
                if not done or done[0].index > start.index:
                    p.append(f"{run}/{job} started (line {start.index + 1}) before its parent "
                             f"{parent} completed")
            if key in cancel_at and start.index > cancel_at[key]:
                p.append(f"{run}/{job} started after its cancel was acknowledged")
            gate = gated.get(key)
            asked = approve_at.get((run, gate)) if gate is not None else None
            if gate is not None and (asked is None or start.index < asked):
                p.append(f"{run}/{job} started before its gate {gate} was approved")
        if state == "completed" and not starts:
            p.append(f"{run}/{job} completed but never ran")
        for earlier, later in zip(starts, starts[1:], strict=False):
            verdict.duplicates += 1
            if not any(earlier.index < c < later.index for c in crashes):
                p.append(f"{run}/{job} ran again (attempt {later.fields[2]}, line "
                         f"{later.index + 1}) although nothing crashed after attempt "
                         f"{earlier.fields[2]} started: not in doubt")
    return verdict
