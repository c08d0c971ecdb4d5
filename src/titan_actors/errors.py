"""The one error tree of Titan Actors.

Every error the runtime raises descends from :class:`TitanError`. The branches say who is to
blame, in the manner of trio: ``UsageError`` (the user's input is invalid), ``ProtocolError`` (the
bytes a peer sent are bad), ``ClosedError`` (we closed it) and ``BrokenError`` (the peer broke it),
``AuthError`` (the peer could not prove who it is, or may not do this), ``ActorError`` (the actor
system refused or lost a message) and ``PersistenceError`` (an append-only file is damaged or
cannot be written).

Errors that cross the wire are re-raised on the other side as the same class when the name is
known here (see :func:`error_class`), so a client catches ``PermissionDeniedError`` whether the
actor it asked is local or remote.
"""

from __future__ import annotations

_BY_NAME: dict[str, type["TitanError"]] = {}


class TitanError(Exception):
    """Base of every error raised by Titan Actors."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _BY_NAME[cls.__name__] = cls


def error_class(name: str) -> type[TitanError] | None:
    """Return the TitanError subclass called ``name``, or None when no such class exists."""
    return _BY_NAME.get(name)


_BY_NAME["TitanError"] = TitanError


# -- the user's input is invalid -------------------------------------------------------------

class UsageError(TitanError):
    """The user's input (a flag, a setting, a file, a field) is invalid; the message says how."""


class LocalFileError(UsageError):
    """A file or folder on this machine cannot be read or written (a missing folder, no
    permission, a full disk). The message names the local path and what is wrong; it is not a
    connection failure, and the connection to the master stays usable."""


class ConfigError(UsageError):
    """A setting has an invalid value, or a combination of settings is unsafe."""


class DataDirLockedError(UsageError):
    """Another process already owns this data directory."""


# -- the bytes are bad -------------------------------------------------------------------------

class ProtocolError(TitanError):
    """A peer sent bytes that do not follow the wire protocol."""


class IncompleteFrameError(ProtocolError):
    """The bytes end before the frame does (more bytes may complete it)."""


class BadMagicError(ProtocolError):
    """A frame does not start with the protocol's magic bytes: the peer is not a Titan peer."""


class VersionMismatchError(ProtocolError):
    """The peer speaks another version of the protocol."""


class FrameTooLargeError(ProtocolError):
    """A frame announces a payload longer than the configured maximum."""


class UnknownMessageTypeError(ProtocolError):
    """A frame carries a message type id that no registered message has."""


class DuplicateMessageIdError(TitanError):
    """Two message classes claim the same type id (raised at import: a programming error)."""


class DecodeError(ProtocolError):
    """A payload cannot be decoded into its message."""


class TruncatedPayloadError(DecodeError):
    """A payload ends before all fields of its message were read."""


class TrailingBytesError(DecodeError):
    """A payload has bytes left over after all fields of its message were read."""


class BadUtf8Error(DecodeError):
    """A string field is not valid UTF-8."""


class BadFieldValueError(DecodeError):
    """A field holds a value outside its type (an unknown enum value, a bad presence flag)."""


class EncodeError(TitanError):
    """A message cannot be encoded: a field holds a value its declared type cannot carry."""


# -- authentication and permission -------------------------------------------------------------

class AuthError(TitanError):
    """A peer could not prove who it is, or may not do what it asked."""


class HandshakeError(AuthError):
    """The handshake failed: wrong key, wrong role, replayed nonce, or a refused peer."""


class PermissionDeniedError(AuthError):
    """The peer's role may not send this message."""


class FrameAuthError(AuthError):
    """A sealed frame failed its MAC or sequence check: it was forged, altered or replayed."""


# -- connections -------------------------------------------------------------------------------

class ConnectionError_(TitanError):
    """Base for connection failures (named with a trailing underscore to keep the builtin)."""


class ClosedError(ConnectionError_):
    """We closed this connection (or this side stopped) and then tried to use it."""


class BrokenError(ConnectionError_):
    """The peer closed or broke the connection; pending requests on it have failed."""


class ConnectTimeoutError(ConnectionError_):
    """The peer could not be reached within the timeout."""


# -- actors ------------------------------------------------------------------------------------

class ActorError(TitanError):
    """The actor system refused or lost a message."""


class ActorDeadError(ActorError):
    """The actor stopped (or was never started) before it could handle the message."""


class MailboxFullError(ActorError):
    """The actor's mailbox stayed full for the whole timeout of a ``tell``."""


class AskTimeoutError(ActorError):
    """No reply came within the timeout of an ``ask``."""


class NoHandlerError(ActorError):
    """The actor has no handler for this message type."""


class RemoteError(ActorError):
    """A remote handler raised an error whose class is not known on this side."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.remote_message = message


# -- persistence -------------------------------------------------------------------------------

class PersistenceError(TitanError):
    """An append-only file cannot be read or written."""


class AofFormatError(PersistenceError):
    """The file is not an append-only file of a format version this release can read."""


class AofCorruptError(PersistenceError):
    """A record before the end of the file is damaged; loading is refused."""


class AofTornTailError(PersistenceError):
    """The last record is incomplete (a torn write); refused in strict mode only."""


class SettingDeclarationError(TitanError):
    """A setting is declared wrong: a name, env key or flag is malformed or claimed twice (raised
    at import: a programming error)."""


class AofRecordTooLargeError(PersistenceError):
    """A record is longer than the configured maximum record size; nothing was written."""


class AofWriteError(PersistenceError):
    """A record could not be made durable (a write or fsync failed); the AOF is degraded."""


class AofClosedError(PersistenceError):
    """We closed this append-only file and then tried to append to it or rewrite it."""


class AofTimeoutError(PersistenceError):
    """A durability barrier did not resolve within the timeout; the record is not acknowledged."""


class AofRewriteError(PersistenceError):
    """A rewrite (compaction) failed or was refused; the message says whether appends go on."""


# -- wire framing (appended by the wire codec) -------------------------------------------------

class UnknownFlagsError(ProtocolError):
    """A frame header sets flag bits that this protocol version does not define."""


class TrailingFrameBytesError(ProtocolError):
    """Bytes follow the one frame that was expected (see ``wire.frame.decode_frame``)."""


# -- pipelines (appended by the pipeline loader) -----------------------------------------------

class PipelineError(UsageError):
    """A YAML pipeline is invalid. The message lists every problem found, one per line, each
    naming the file, the line and the key, and what would be right."""


# -- the scheduler (appended by the scheduler) -------------------------------------------------

class SubmissionError(UsageError):
    """A submission (a run, or jobs added to one) was refused; nothing of it was kept.

    The message lists every problem, each naming the job and field at fault; ``problems`` holds
    them one by one (empty when the error was re-raised from a remote message).
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class StaleReportError(UsageError):
    """A report about an attempt that is no longer current (an old attempt, a lost lease, or a
    completion already recorded); it changed nothing."""


class UnknownRunError(UsageError):
    """No run has this id (it never existed, or it was forgotten)."""


class UnknownJobError(UsageError):
    """No job matches this reference (``RUN/JOB``, ``JOB`` or ``DAG-JOB``)."""


class InvalidTransitionError(UsageError):
    """The job or run is not in a state that allows this request (e.g. retrying a running job)."""


class InconsistentRecordError(PersistenceError):
    """A replayed scheduler record does not fit the state built so far (records out of order,
    or from another history)."""


# -- job processes (appended by the execution package) -----------------------------------------

class LaunchError(TitanError):
    """A job's process could not be started; the message names the program and says why (no such
    file, permission denied, exec format error...). ``errno`` is the OS error number, or 0."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


class LauncherBrokenError(BrokenError):
    """The launcher process exited or broke its pipe protocol; launches and waits pending on it
    have failed, and the process groups it had started were killed."""


class LauncherClosedError(ClosedError):
    """We closed the launcher (``Launcher.close``) and then asked it to launch or kill."""


# -- the store link (appended by the separate store) -------------------------------------------

class StoreUnavailableError(TitanError):
    """The master's separate store process could not be reached within the bounded wait, or went
    away before it answered (a write may then have been applied or not). The message names the
    store's address. Not a ConnectionError_: it crosses the wire to clients as itself, and the
    client's own connection (to the master) is fine."""
