"""Errors across the wire: a handler's exception becomes an ErrorReply and back again."""

from __future__ import annotations

from typing import Any

from ..errors import ActorError, ConnectionError_, DecodeError, RemoteError, TitanError, error_class
from . import codec
from .frame import Flag, Frame
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
    RemoteError otherwise.

    Connection and actor errors of the far side (its closed links, its timeouts, its dead actors)
    become RemoteError: re-raised as themselves they would blame this side's connection.
    """
    cls = error_class(reply.error_type)
    if cls is None or cls is RemoteError or issubclass(cls, (ConnectionError_, ActorError)):
        return RemoteError(reply.error_type, reply.message)
    try:
        return cls(reply.message)
    except TypeError:
        return RemoteError(reply.error_type, reply.message)


def reply_value(frame: Frame) -> Any:
    """The value a reply frame carries (None for the empty reply), or raise the error it carries.

    Raises:
        the remote handler's error (see :func:`reply_to_error`), or DecodeError /
        UnknownMessageTypeError when the reply's bytes are bad.
    """
    value = codec.decode_frame_message(frame)
    if frame.flags & Flag.ERROR:
        if not isinstance(value, ErrorReply):
            raise DecodeError("an error reply did not carry an ErrorReply")
        raise reply_to_error(value)
    return value
