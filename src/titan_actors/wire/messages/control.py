"""Messages every actor endpoint understands (type ids 10-99)."""

from __future__ import annotations

from ..registry import Message, message
from ..roles import Capability


@message(10, requires=Capability.PING)
class Ping(Message):
    """Are you there? Answered with :class:`Pong`."""

    payload: bytes = b""


@message(11)
class Pong(Message):
    """The answer to :class:`Ping`: the same payload, and who answered; ``degraded`` says what
    does not work as it should (the master or the store cannot persist), "" when all is well."""

    payload: bytes
    identity: str
    software: str
    degraded: str = ""


@message(12)
class ErrorReply(Message):
    """A handler's exception, carried back to a remote asker.

    ``error_type`` is the exception's class name: the asker re-raises that class when it is a
    known TitanError, and RemoteError otherwise.
    """

    error_type: str
    message: str
