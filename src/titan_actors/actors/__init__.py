"""The actor core: actors, refs, the system that runs them, clocks and supervision."""

from .base import (
                   DEFAULT_ASK_TIMEOUT,
                   DEFAULT_TELL_TIMEOUT,
                   NO_SENDER,
                   Actor,
                   ActorRef,
                   Envelope,
                   Ref,
                   Sender,
                   handles,
)
from .clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock, TimerHandle
from .future import Future
from .supervision import Directive, Supervision
from .system import ActorSystem

__all__ = [
    "DEFAULT_ASK_TIMEOUT", "DEFAULT_TELL_TIMEOUT", "NO_SENDER", "SYSTEM_CLOCK", "Actor",
    "ActorRef", "ActorSystem", "Clock", "Directive", "Envelope", "Future", "ManualClock", "Ref",
    "Sender", "Supervision", "SystemClock", "TimerHandle", "handles",
]
