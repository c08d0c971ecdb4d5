"""The actor system: starts actors and owns their greenlets (one per process, at the root)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Group

from .base import Actor, ActorRef
from .cell import _Cell
from .clock import SYSTEM_CLOCK, Clock
from .mailbox import Mailbox
from .supervision import Supervision

log = logging.getLogger("titan.actors")

_names = itertools.count(1)


class ActorSystem:
    """Starts actors and owns their greenlets; the composition root holds one per process.

    Args:
        clock: the clock used for supervision windows (actors get theirs in their constructor).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self._group = Group()
        self._cells: dict[str, _Cell] = {}

    def spawn(self, factory: Callable[..., Actor], *args: Any, name: str | None = None,
              supervision: Supervision | None = None, mailbox_size: int = 1000,
              bulk_mailbox_size: int = 1000, **kwargs: Any) -> ActorRef:
        """Start ``factory(*args, **kwargs)`` as an actor and return its ref.

        ``factory`` is called again for each restart. Names are unique within the system.
        """
        name = name or f"{getattr(factory, '__name__', 'actor')}-{next(_names)}"
        if name in self._cells:
            raise ValueError(f"an actor named {name!r} is already running")
        cell = _Cell(self, name, lambda: factory(*args, **kwargs),
                     supervision or Supervision.stop(),
                     Mailbox(name, mailbox_size, bulk_mailbox_size))
        self._cells[name] = cell
        cell.greenlet = self._group.spawn(cell.run)
        cell.greenlet.link_exception(self._loop_failed)
        return cell.ref

    def get(self, name: str) -> ActorRef | None:
        """The ref of the running actor called ``name``, or None."""
        cell = self._cells.get(name)
        return cell.ref if cell else None

    @property
    def refs(self) -> list[ActorRef]:
        return [cell.ref for cell in self._cells.values()]

    def stop_all(self, timeout: float = 10.0) -> bool:
        """Stop every actor (each after its queued messages). True when all stopped in time."""
        for cell in list(self._cells.values()):
            cell.request_stop()
        self._group.join(timeout)
        left = [g for g in self._group if not g.dead]
        if left:
            self._group.kill(block=True, timeout=1.0)
        return not left

    @staticmethod
    def _loop_failed(greenlet: gevent.Greenlet) -> None:
        # Handlers' errors are handled inside the loop; reaching here is a bug in the actor
        # system itself, so it is logged loudly (and fails any test, through the hub).
        log.critical("an actor loop died: %r", greenlet.exception)

    def _forget(self, cell: _Cell) -> None:
        if self._cells.get(cell.name) is cell:
            del self._cells[cell.name]
