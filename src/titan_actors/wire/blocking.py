"""A blocking client of an actor server, for code that runs without gevent (the SDK, titanctl).

Same protocol, handshake and error mapping as the gevent bridge, over a plain socket: one
request at a time, each bounded by a timeout. Requests the server sends to this client are
answered with PermissionDeniedError: a blocking client serves no actor.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

from ..errors import (
    AskTimeoutError,
    BrokenError,
    ConnectTimeoutError,
    HandshakeError,
    PermissionDeniedError,
)
from . import codec
from .auth import ClientHandshake, JobToken, KeyRing, Session
from .connection import Connection, RequestIds
from .frame import DEFAULT_MAX_PAYLOAD, Flag
from .greeting import client_handshake
from .remote_errors import error_to_reply, reply_value
from .roles import Role


class BlockingClient:
    """A connection to an actor server that blocks the calling thread.

    Args:
        host, port: the server's address.
        role, identity: what to claim in the handshake.
        keys: the key ring (None when the cluster runs without a key).
        token: a job token (inside a job) instead of keys.
        timeout: seconds for connecting, the handshake and each request.
        tls: a client SSL context, when the server speaks TLS.

    Raises (from the constructor): ConnectTimeoutError, BrokenError (refused or unreachable),
    HandshakeError, VersionMismatchError.
    """

    def __init__(self, host: str, port: int, *, role: Role = Role.CLIENT,
                 identity: str = "client", keys: KeyRing | None = None,
                 token: JobToken | None = None, timeout: float = 10.0,
                 tls: ssl.SSLContext | None = None,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.timeout = timeout
        self._ids = RequestIds()
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as error:
            raise ConnectTimeoutError(f"could not reach {host}:{port} within {timeout} s") \
                from error
        except OSError as error:
            raise BrokenError(f"could not connect to {host}:{port}: "
                              f"{error.strerror or error}") from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError) as error:
                sock.close()
                raise HandshakeError(f"TLS with {host}:{port} failed: {error}") from error
        self._sock = sock
        self.connection = Connection(sock, max_payload=max_payload)
        try:
            self.session: Session = client_handshake(
                self.connection, ClientHandshake(role, identity, keys, token))
        except BaseException:
            self.connection.close()
            raise

    def __enter__(self) -> "BlockingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; closing twice does nothing."""
        self.connection.close()

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting for it to be handled."""
        self._sock.settimeout(self.timeout)
        self.connection.send(message)

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Send ``message`` and return the reply (None for an empty reply).

        Raises the handler's error (same class when it is a known TitanError, RemoteError
        otherwise), AskTimeoutError when no reply came within ``timeout`` (one deadline for the
        whole exchange), BrokenError / ClosedError when the connection is gone.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        request_id = self._ids.next()
        self._sock.settimeout(timeout)
        self.connection.send(message, request_id=request_id)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AskTimeoutError(f"no reply to {type(message).__name__} within {timeout} s")
            self._sock.settimeout(remaining)
            try:
                frame = self.connection.recv()
            except ConnectTimeoutError:
                raise AskTimeoutError(f"no reply to {type(message).__name__} within "
                                      f"{timeout} s") from None
            if not frame.flags & Flag.REPLY:
                self._refuse_request(frame.request_id)
                continue
            if frame.request_id != request_id:
                continue  # a late reply to an earlier request that timed out
            return reply_value(frame)

    def _refuse_request(self, request_id: int) -> None:
        if request_id:
            error = error_to_reply(PermissionDeniedError("this client serves no requests"))
            type_id, payload = codec.encode_any(error)
            self.connection.send_raw(type_id, payload, flags=Flag.REPLY | Flag.ERROR,
                                     request_id=request_id)

    @property
    def closed(self) -> bool:
        return self.connection.closed

