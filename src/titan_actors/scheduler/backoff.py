"""Retry backoff: exponential, capped, with jitter drawn from an injected random source."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Backoff"]

_MAX_EXPONENT = 1000  # 2.0 ** 1000 is still a float; anything larger is capped anyway


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base * 2 ** (attempt - 1)`` seconds, capped at ``cap``, then moved by up to
    ``+- jitter`` of itself (0.1: +-10 %).

    Raises ValueError for a base that is not positive, a cap below the base, or a jitter
    outside ``[0, 1)``.
    """

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError(f"backoff base must be a positive number of seconds, got {self.base}")
        if not (math.isfinite(self.cap) and self.cap >= self.base):
            raise ValueError(f"backoff cap must be at least the base ({self.base}), "
                             f"got {self.cap}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"backoff jitter must be in [0, 1), got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The pause after failed attempt number ``attempt`` (1 for the first failure).

        Draws one number from ``rng`` (even with no jitter, so the draws stay in step).
        """
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        nominal = min(self.cap, self.base * 2.0 ** exponent)
        return nominal * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))
