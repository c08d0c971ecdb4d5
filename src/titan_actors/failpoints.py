"""Failpoints: named places at the persistence and dispatch boundaries where a test makes a
real process crash, stall or fail, switched on by an environment variable.

``TITAN_FAILPOINTS`` holds ``NAME=ACTION`` entries separated by ``;``::

    TITAN_FAILPOINTS="aof.before_fsync=kill@40;master.finish.before_ack=sleep:0.5"

ACTION is one of

- ``kill``: the process sends itself SIGKILL (after one line on stderr naming the failpoint);
- ``raise``: :class:`FailpointError` (an ``OSError``, so I/O paths treat it as a failed write);
- ``sleep:SECONDS``: ``time.sleep`` (which yields in a monkey-patched server process);
- ``off``.

and may end with ``@N`` (only the N-th time the place is reached, counted from 1), ``@N+``
(the N-th time and every time after) or ``%P`` (each time with probability P, drawn from a
``random.Random`` seeded by ``TITAN_FAILPOINTS_SEED``, default 0, so a run can be repeated).
Without a suffix the action fires every time.

Every name is declared in :data:`FAILPOINTS`; an unknown name or a malformed action is refused
with the list of what would be right (:func:`load` raises :class:`~titan_actors.errors.UsageError`,
and the server subcommands call it before they start). With the variable unset, :func:`hit`
costs one dictionary lookup on an empty dict.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass

from titan_actors.errors import UsageError

ENV_VAR = "TITAN_FAILPOINTS"
SEED_VAR = "TITAN_FAILPOINTS_SEED"

FAILPOINTS = {
    "aof.before_fsync": "an AOF batch is written, its fsync not yet done (master and store)",
    "aof.rewrite.temp_written": "compaction: the new base file is written, not yet fsynced",
    "aof.rewrite.temp_fsynced": "compaction: the new base file is fsynced, not yet renamed",
    "aof.rewrite.replaced": "compaction: the new file is renamed over the live one, the "
                            "directory not yet fsynced",
    "aof.rewrite.dir_fsynced": "compaction: every step done, the writer not yet switched",
    "master.submit.before_ack": "a submitted run is durable, the client not yet answered",
    "master.dispatch.before_send": "a dispatch is durable, not yet sent to the worker",
    "master.finish.before_record": "a worker's result arrived, not yet appended to the AOF",
    "master.finish.before_ack": "a result is durable, the worker not yet answered",
    "worker.finish.before_report": "a job exited, the worker not yet reporting it",
    "store.write.before_ack": "a store write is durable, the client not yet answered",
}

_ACTION = re.compile(r"^(?P<what>kill|raise|off|sleep:(?P<secs>[0-9]*\.?[0-9]+))"
                     r"(?:@(?P<nth>[1-9][0-9]*)(?P<on>\+)?|%(?P<p>0?\.[0-9]+|1(?:\.0*)?))?$")


class FailpointError(OSError):
    """The error a ``raise`` failpoint injects."""


@dataclass
class _Point:
    name: str
    what: str
    seconds: float = 0.0
    nth: int = 0            # 0: not counted
    onwards: bool = False
    probability: float = 1.0
    hits: int = 0

    def due(self, rng: random.Random) -> bool:
        self.hits += 1
        if self.nth:
            return self.hits == self.nth or (self.onwards and self.hits > self.nth)
        return self.probability >= 1.0 or rng.random() < self.probability


_active: dict[str, _Point] = {}
_rng = random.Random(0)
_loaded = False


def parse(text: str) -> dict[str, _Point]:
    """The failpoints described by ``text`` (the format of ``TITAN_FAILPOINTS``).

    Raises:
        UsageError: an unknown name or a malformed action, saying which and what is allowed.
    """
    points: dict[str, _Point] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, action = (s.strip() for s in entry.partition("="))
        if name not in FAILPOINTS:
            raise UsageError(f"{ENV_VAR}: unknown failpoint {name!r} in {entry!r}; known: "
                             f"{', '.join(sorted(FAILPOINTS))}")
        match = _ACTION.match(action) if sep else None
        if match is None:
            raise UsageError(f"{ENV_VAR}: bad action {action!r} for {name}; expected kill, "
                             f"raise, off or sleep:SECONDS, optionally followed by @N, @N+ or "
                             f"%PROBABILITY (e.g. {name}=kill@3)")
        what = match["what"].split(":")[0]
        if what == "off":
            points.pop(name, None)
            continue
        points[name] = _Point(name, what, float(match["secs"] or 0),
                              int(match["nth"] or 0), bool(match["on"]),
                              float(match["p"]) if match["p"] else 1.0)
    return points


def load(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Read ``TITAN_FAILPOINTS`` (and the seed) from ``environ`` (default ``os.environ``) and
    arm what it names; return ``{name: action}`` of the armed ones (empty when unset)."""
    global _active, _rng, _loaded
    env = os.environ if environ is None else environ
    points = parse(env.get(ENV_VAR, ""))
    try:
        seed = int(env.get(SEED_VAR, "0"))
    except ValueError:
        raise UsageError(f"{SEED_VAR} must be an integer, not {env.get(SEED_VAR)!r}") from None
    _active, _rng, _loaded = points, random.Random(seed), True
    return {name: point.what for name, point in points.items()}


def armed(name: str) -> bool:
    """Whether the failpoint ``name`` has an action (due or not)."""
    if not _loaded:
        load()
    return name in _active


def hit(name: str) -> None:
    """Reach the failpoint ``name``: do its action if it is armed and due, else nothing."""
    if not _loaded:
        load()
    point = _active.get(name)
    if point is None or not point.due(_rng):
        return
    if point.what == "sleep":
        time.sleep(point.seconds)
    elif point.what == "raise":
        raise FailpointError(f"failpoint {name} (hit {point.hits})")
    else:
        try:
            sys.stderr.write(f"failpoint {name}: kill (hit {point.hits}, pid {os.getpid()})\n")
            sys.stderr.flush()
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
