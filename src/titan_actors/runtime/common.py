"""What every server process does the same way: patching, logging, signals, ready files."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path


def patch() -> None:
    """Monkey-patch this process for gevent. Only the server subcommands call this, first."""
    from gevent import monkey

    monkey.patch_all()


def setup_logging(level: str) -> None:
    """Log lines to stderr with time, level and logger name."""
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
