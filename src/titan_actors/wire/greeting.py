"""Run a handshake over a :class:`Connection`: the I/O around ``wire.auth``.

gevent-free (the SDK uses it with a blocking socket); the caller bounds the time, with a socket
timeout or a gevent.Timeout.
"""

from __future__ import annotations

from ..errors import HandshakeError, VersionMismatchError
from .auth import ClientHandshake, ServerHandshake, Session
from .connection import Connection
from .messages.handshake import HandshakeRejected


def client_handshake(connection: Connection, handshake: ClientHandshake) -> Session:
    """Greet the server and return the session; seals the connection if the server says so.

    Raises:
        HandshakeError: either side refused (the message says why).
        VersionMismatchError: the server speaks another protocol version.
        BrokenError / ConnectTimeoutError: the connection failed or the server did not answer.
    """
    connection.send(handshake.hello())
    challenge, _ = connection.recv_message()
    if isinstance(challenge, HandshakeRejected):
        raise HandshakeError(f"the server refused the handshake: {challenge.reason}")
    connection.send(handshake.on_challenge(challenge))
    reply, _ = connection.recv_message()
    session = handshake.on_reply(reply, connection.peer_address)
    if session.sealed:
        if session.session_key is None:
            raise HandshakeError("the server asks for sealed frames but no key was exchanged")
        connection.enable_sealing(session.session_key, is_client=True)
    return session


def server_handshake(connection: Connection, handshake: ServerHandshake) -> Session:
    """Answer a client's greeting and return the session, or refuse it.

    On refusal a HandshakeRejected with the reason is sent before the error is raised, so the
    client learns why; the caller closes the connection.

    Raises:
        HandshakeError: the client is refused.
        ProtocolError: the client sent bytes that are not frames (nothing is sent back).
    """
    try:
        hello, _ = connection.recv_message()
    except VersionMismatchError as error:
        _refuse(connection, str(error))
        raise
    try:
        connection.send(handshake.on_hello(hello))
        proof, _ = connection.recv_message()
        welcome, session = handshake.on_proof(proof)
    except HandshakeError as error:
        _refuse(connection, str(error))
        raise
    connection.send(welcome)
    if session.sealed:
        connection.enable_sealing(session.session_key, is_client=False)
    return session


def _refuse(connection: Connection, reason: str) -> None:
    try:
        connection.send(HandshakeRejected(reason))
    except Exception:  # the peer may be gone already; the refusal is best effort
        pass
