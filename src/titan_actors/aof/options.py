"""The settings of an append-only file and its life states (gevent-free)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from titan_actors.aof import rewrite as _rw
from titan_actors.config import AofFsync
from titan_actors.errors import ConfigError

__all__ = ["AofState", "FsyncPolicy"]


# One enum for the setting and the writer: the policy is declared once, in config.
FsyncPolicy = AofFsync


class AofState(enum.Enum):
    """Life of an :class:`AppendOnlyFile`: open, then closed; degraded after a write failure."""

    OPEN = "open"
    DEGRADED = "degraded"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclasses.dataclass(frozen=True, slots=True)
class _Options:
    """The settings of :meth:`AppendOnlyFile.open`, validated once (see its docstring)."""

    policy: FsyncPolicy
    max_record_size: int
    rewrite_min_size: int
    rewrite_percentage: int
    everysec_interval: float
    max_pending_bytes: int
    rewrite_buffer_limit: int
    append_timeout: float
    clock: Callable[[], float]
    fsync: _rw.FsyncFn
    write: _rw.WriteFn
    step_hook: _rw.StepHook | None
    inline_io: bool = True  # small batches written in the hub's thread (see writer._inline_ok)

    def __post_init__(self) -> None:
        for name, low in (("max_record_size", 1), ("rewrite_min_size", 0),
                          ("rewrite_percentage", 0), ("max_pending_bytes", 1),
                          ("rewrite_buffer_limit", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
        for name in ("everysec_interval", "append_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


def _policy(value: FsyncPolicy | str) -> FsyncPolicy:
    try:
        return FsyncPolicy(value)
    except ValueError:
        choices = ", ".join(p.value for p in FsyncPolicy)
        raise ConfigError(f"fsync policy {value!r} is not one of {choices}") from None
