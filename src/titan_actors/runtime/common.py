"""What every server process does the same way: patching, logging, signals, ready files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path


def patch() -> None:
    """Monkey-patch this process for gevent. Only the server subcommands call this, first."""
    from gevent import monkey

    with _entry_points_read_once():
        monkey.patch_all()


@contextlib.contextmanager
def _entry_points_read_once() -> Iterator[None]:
    """While gevent patches: read the installed distributions' entry points once.

    gevent looks up its plugins' entry points for every module it patches (about 25 times), and
    each ``importlib.metadata.entry_points(group=...)`` reads the metadata of every installed
    distribution again: measured here, ``patch_all`` took 0.20-0.36 s of a master's start that
    way and 0.09-0.13 s with one read, the time a restarted master is away. The answers are
    the same: nothing is installed while the process starts.
    """
    from importlib import metadata

    original = metadata.entry_points
    everything = original()

    def entry_points(**params):
        return everything.select(**params) if params else everything

    metadata.entry_points = entry_points
    try:
        yield
    finally:
        metadata.entry_points = original


def setup_logging(level: str) -> None:
    """Log lines to stderr with time, level and logger name."""
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arm_failpoints()


def arm_failpoints() -> None:
    """Arm the failpoints ``TITAN_FAILPOINTS`` names (tests only), refusing a bad setting at
    start rather than at the first place it names."""
    from .. import failpoints
    armed = failpoints.load()
    if armed:
        logging.getLogger("titan_actors.failpoints").warning("failpoints armed: %s", armed)


def on_signals(handler, signums=(signal.SIGTERM, signal.SIGINT)) -> None:
    """Run ``handler(signum)`` in a greenlet for each of ``signums``."""
    import gevent

    for signum in signums:
        gevent.signal_handler(signum, handler, signum)


def write_ready_file(path: Path | None, info: dict) -> None:
    """Write ``info`` as JSON to ``path`` atomically (readers never see half a file)."""
    if path is None:
        return
    path = Path(path)
    temp = path.with_name(path.name + f".{os.getpid()}.tmp")
    temp.write_text(json.dumps(info))
    os.replace(temp, path)
