"""Errors across the wire: a handler's exception becomes an ErrorReply and back again."""

from __future__ import annotations

from ..errors import RemoteError, TitanError, error_class
from .messages.control import ErrorReply

_MAX_TEXT = 64 * 1024


def error_to_reply(error: BaseException) -> ErrorReply:
    """The ErrorReply that carries ``error`` to a remote asker (its text capped at 64 KiB)."""
    text = str(error)
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + " [...]"
    return ErrorReply(type(error).__name__, text)


def reply_to_error(reply: ErrorReply) -> TitanError:
    """The exception to raise for an ErrorReply: the same TitanError class when known here,
    RemoteError otherwise."""
    cls = error_class(reply.error_type)
    if cls is None or cls is RemoteError:
        return RemoteError(reply.error_type, reply.message)
    try:
        return cls(reply.message)
    except TypeError:
        return RemoteError(reply.error_type, reply.message)
