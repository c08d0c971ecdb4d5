"""Messages of the scaler, sent by the master down a worker's connection (type ids 400-499).

The scaler (in the master's process) decides; the master, which holds the workers'
connections, carries the decisions: ``SpawnBurst`` asks a saturated worker to start a burst
worker process on its host, ``Retire`` tells an idle burst or ephemeral worker to drain and exit.
"""

from __future__ import annotations

from ..registry import Message, message
from ..roles import Capability

_D = Capability.DISPATCH


@message(400, requires=_D)
class SpawnBurst(Message):
    """Start a burst worker called ``name`` on your host, with your tags, slots and settings,
    as ``titanctl worker --ephemeral --burst-of YOU``. Answered with :class:`BurstSpawned`."""

    name: str
    reason: str = ""


@message(401)
class BurstSpawned(Message):
    """The burst worker's process started (it registers with the master on its own)."""

    name: str
    pid: int


@message(402, requires=_D)
class Retire(Message):
    """You have been idle too long: drain and exit (only burst and ephemeral workers get it)."""

    reason: str
