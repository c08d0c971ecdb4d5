"""What the launcher client (``launcher_client.Launcher``) records of its jobs for the
worker's next life, and the kill of what the jobs of a launcher that died left running.

With a :class:`~titan_actors.execution.orphans.ChildRegistry`, each launch is recorded before the
request leaves (marker), then with its pid and start time, and forgotten once the launcher
reports its leftovers gone (``CleanupDone``), so that the worker's next life can kill what a
SIGKILL of worker and launcher left behind. A launcher that dies alone leaves its jobs to the
client, which kills, in a thread, everything the records name.

A mixin of ``Launcher``: it uses its ``_registry`` (None: nothing is recorded) and ``_markers``
(the markers of the launches recorded and not forgotten yet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from titan_actors.execution.orphans import ChildRegistry, kill_records
from titan_actors.offload import run_in_thread

_log = logging.getLogger("titan_actors.execution.launcher_client")  # the client's logger


class ChildRecords:
    """The registry side of the launcher client (see the module docstring)."""

    _registry: ChildRegistry | None
    _markers: set[str]

    def _record(self, key: str, marker: str) -> None:
        if self._registry is not None:
            self._registry.expect(key, marker)
            self._markers.add(marker)

    def _forget(self, marker: str) -> None:
        if marker in self._markers:
            self._markers.discard(marker)
            self._update(self._registry.forget, marker)

    def _update(self, change: Callable[..., object], *args: object) -> None:
        """Change the registry from the reader greenlet: a failure to write the file is
        logged (the file then lags behind), never taken for a broken launcher."""
        try:
            change(*args)
        except Exception as error:
            _log.error("cannot update the record of the worker's processes: %s", error)

    def _kill_escaped(self) -> None:
        """The launcher died, and its jobs run on in their sessions, with what they started
        outside them (daemons that double-forked): kill everything the records name (the
        leaders by pid and create time, their groups, their markers), with one scan of every
        process, in a thread. No longer our children, their pids may be reused meanwhile."""
        mine = [r for r in self._registry.records if r.marker in self._markers]
        try:
            killed = run_in_thread(kill_records, mine)
        except Exception:
            _log.exception("could not kill what the jobs of the dead launcher left running")
            return
        _log.warning("killed what %d jobs of the dead launcher left running", len(killed))
        for record in mine:
            self._forget(record.marker)
