"""What happens to an actor that crashes.

A crash is an exception from ``on_start``, from a handler of a ``tell`` (an ``ask``'s exception
goes back to the asker instead: it is the asker's answer), or from a greenlet the actor owns.
The crash is logged with its traceback, ``on_failure`` runs, and then the policy decides:
restart a fresh instance on the same mailbox (pending messages are kept and the ref stays valid),
or stop (every pending ``ask`` is answered with ActorDeadError).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class Directive(enum.Enum):
    """The decision taken after a crash."""

    RESTART = "restart"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Supervision:
    """A restart policy: restart at most ``max_restarts`` times within ``within`` seconds.

    ``Supervision.stop()`` never restarts. ``Supervision.restart(n, within)`` restarts until the
    ``n+1``-th crash inside a sliding window of ``within`` seconds, and then stops the actor.
    """

    directive: Directive = Directive.STOP
    max_restarts: int = 0
    within: float = 60.0

    @classmethod
    def stop(cls) -> "Supervision":
        return cls(Directive.STOP)

    @classmethod
    def restart(cls, max_restarts: int = 3, within: float = 60.0) -> "Supervision":
        if max_restarts < 1 or within <= 0:
            raise ValueError("restart needs max_restarts >= 1 and within > 0")
        return cls(Directive.RESTART, max_restarts, within)


class RestartBudget:
    """Counts the restarts of one actor inside the policy's sliding window."""

    def __init__(self, policy: Supervision) -> None:
        self._policy = policy
        self._times: deque[float] = deque()

    def decide(self, now: float) -> Directive:
        """Record a crash at monotonic time ``now`` and return what to do about it."""
        if self._policy.directive is Directive.STOP:
            return Directive.STOP
        while self._times and now - self._times[0] > self._policy.within:
            self._times.popleft()
        if len(self._times) >= self._policy.max_restarts:
            return Directive.STOP
        self._times.append(now)
        return Directive.RESTART
