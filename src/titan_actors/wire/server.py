"""Serving an actor on a TCP port, and dialling one: the gevent ends of the bridge.

:class:`ActorServer` accepts connections with a ``gevent.server.StreamServer`` whose pool bounds
the number of connections (it stops accepting while the pool is full), runs the handshake within
a timeout, and serves each connection with an :class:`Endpoint` whose requests go to the target
actor. A connection that sends garbage, fails its handshake or breaks is closed alone; everyone
else goes on being served.

:func:`dial` connects to such a server and returns a started Endpoint whose ``remote`` is a ref to
the server's actor; requests the server sends back go to ``local``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent import ssl as gevent_ssl
from gevent.pool import Pool
from gevent.server import StreamServer

from ..actors.base import Ref
from ..actors.clock import SYSTEM_CLOCK, Clock
from ..config import SealFrames, check_bind_address
from ..config_security import is_loopback_host
from ..errors import (
    AuthError,
    BrokenError,
    ConfigError,
    ConnectionError_,
    ConnectTimeoutError,
    HandshakeError,
    ProtocolError,
)
from .auth import ClientHandshake, JobToken, KeyRing, ServerHandshake
from .bridge import Endpoint, make_send_lock
from .connection import Connection, format_address
from .frame import DEFAULT_MAX_PAYLOAD
from .greeting import client_handshake, server_handshake
from .messages.handshake import JobTokenClaims
from .roles import Role

log = logging.getLogger("titan.wire")


def _wrap_tls(sock: gsocket.socket, context: ssl.SSLContext, *, server_side: bool,
              server_hostname: str | None = None) -> gevent_ssl.SSLSocket:
    """Wrap with gevent's SSLSocket, which cooperates with the loop, whatever the context's
    class (a stdlib SSLContext's own wrap_socket would block the whole process)."""
    return gevent_ssl.SSLSocket(sock=sock, server_side=server_side,
                                server_hostname=server_hostname, _context=context)


def _sender_nowait(sock: gsocket.socket) -> Callable[[bytes | memoryview], int]:
    """``send`` that takes what the socket's buffer takes now and never waits: gevent raises
    BlockingIOError instead of switching when the timeout is 0 (so it is safe in the hub)."""
    def send(data: bytes | memoryview) -> int:
        return sock.send(data, 0, timeout=0.0)
    return send


def should_seal(policy: SealFrames, peer_host: str, over_tls: bool, has_key: bool) -> bool:
    """Whether frames on a connection must carry a MAC (see the ``seal_frames`` setting)."""
    if not has_key or policy is SealFrames.NEVER:
        return False
    if policy is SealFrames.ALWAYS:
        return True
    return not over_tls and not is_loopback_host(peer_host)


class ActorServer:
    """Serve ``target`` to every peer that completes the handshake.

    Args:
        target: the actor that handles requests from peers.
        host, port: where to listen (port 0 picks a free port; see :attr:`address`).
        identity: this server's name, sent in handshakes.
        keys: the cluster key ring; None runs unauthenticated (loopback only).
        seal_frames: when to MAC frames after the handshake.
        tls: an SSL context (server side) to wrap accepted connections with.
        max_payload: the largest frame payload accepted.
        handshake_timeout: seconds a peer gets to finish the handshake.
        max_connections: the pool bound; accepting pauses while it is full.
        allowed_roles: roles accepted on this port.
        token_valid: extra check of job tokens (the attempt is still live).
        on_connect / on_disconnect: called with each Endpoint after its handshake / at its end.
        endpoint_options: keyword arguments for each :class:`Endpoint` (``outgoing_limit``,
            ``send_timeout``, ``delivery_timeout``).
    """

    def __init__(self, target: Ref | None, *, host: str = "127.0.0.1", port: int = 0,
                 identity: str = "titan", keys: KeyRing | None = None,
                 seal_frames: SealFrames = SealFrames.AUTO, tls: ssl.SSLContext | None = None,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, handshake_timeout: float = 10.0,
                 max_connections: int = 1024, allowed_roles: frozenset[Role] = frozenset(Role),
                 token_valid: Callable[[JobTokenClaims], bool] | None = None,
                 on_connect: Callable[[Endpoint], None] | None = None,
                 on_disconnect: Callable[[Endpoint], None] | None = None,
                 clock: Clock = SYSTEM_CLOCK, wall_clock: Callable[[], float] | None = None,
                 endpoint_options: dict | None = None, port_option: str = "--port"):
        check_bind_address(host, keys is not None)
        self._port_option = port_option  # named when the port is taken
        if keys is not None and not keys.is_cluster_key:
            raise ConfigError("a server needs the cluster key file, not a role key file "
                              "(`titanctl key derive` makes keys for clients and workers)")
        self._target = target
        self._identity = identity
        self._keys = keys
        self._seal_policy = seal_frames
        self._tls = tls
        self._max_payload = max_payload
        self._handshake_timeout = handshake_timeout
        self._allowed_roles = allowed_roles
        self.token_valid = token_valid
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._clock = clock
        self._wall_clock = wall_clock or clock.time
        self._endpoint_options = endpoint_options or {}
        self.endpoints: set[Endpoint] = set()
        # a listen backlog as deep as the pool: a burst of connections (a slowloris among them)
        # waits in the kernel's queue, where gevent's 128 would drop SYNs and make every client
        # that dials meanwhile retry a second later
        self._server = StreamServer((host, port), self._handle, spawn=Pool(max_connections),
                                    backlog=max_connections)
        self._host = host

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound: the chosen port when 0 was asked for."""
        return self._server.address[0], self._server.address[1]

    @property
    def target(self) -> Ref | None:
        """The actor that handles peers' requests (settable until :meth:`start`)."""
        return self._target

    @target.setter
    def target(self, ref: Ref | None) -> None:
        self._target = ref

    def listen(self) -> tuple[str, int]:
        """Bind now (without accepting yet) and return the address: the composition root
        learns a chosen port before it builds the actor that serves it."""
        try:
            self._server.init_socket()
        except OSError as error:
            raise ConfigError(f"cannot listen on {self._host}:{self._server.address[1]}: "
                              f"{error.strerror or error} (is another process using it? "
                              f"choose another with {self._port_option})") from error
        return self.address

    def start(self) -> "ActorServer":
        """Bind and start accepting. Raises ConfigError naming the port when it is taken."""
        try:
            self._server.start()
        except OSError as error:
            raise ConfigError(f"cannot listen on {self._host}:{self._server.address[1]}: "
                              f"{error.strerror or error} (is another process using it? "
                              f"choose another with {self._port_option})") from error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, and wait up to ``timeout`` for handlers."""
        self._server.close()
        for endpoint in list(self.endpoints):
            endpoint.close()
        self._server.stop(timeout=timeout)

    def _handle(self, sock: gsocket.socket, address: tuple) -> None:
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        seal = should_seal(self._seal_policy, str(address[0]), self._tls is not None,
                           self._keys is not None)
        connection = None
        # One deadline for TLS and the handshake: an idle peer cannot hold a pool slot.
        try:
            with gevent.Timeout(self._handshake_timeout,
                                ConnectTimeoutError("handshake took too long")):
                if self._tls is not None:
                    sock = _wrap_tls(sock, self._tls, server_side=True)
                # TLS gets no unwaiting writes: a retried SSL write must repeat the same bytes
                connection = Connection(sock, max_payload=self._max_payload,
                                        send_lock=make_send_lock(),
                                        send_nowait=None if self._tls is not None
                                        else _sender_nowait(sock))
                handshake = ServerHandshake(
                    self._identity, self._keys, connection.peer_address, seal=seal,
                    allowed_roles=self._allowed_roles, token_valid=self.token_valid,
                    wall_clock=self._wall_clock)
                session = server_handshake(connection, handshake)
        except (AuthError, ProtocolError, ConnectionError_, ssl.SSLError, OSError) as error:
            log.info("refused %s: %s", format_address(address), error)
            if connection is not None:
                connection.close()
            else:
                sock.close()
            return
        endpoint = Endpoint(connection, session, local=self._target,
                            name=f"{self._identity}<-{session.peer.identity}",
                            clock=self._clock, on_closed=self._closed,
                            **self._endpoint_options)
        self.endpoints.add(endpoint)
        if self.on_connect is not None:
            self.on_connect(endpoint)
        endpoint.serve()

    def _closed(self, endpoint: Endpoint) -> None:
        self.endpoints.discard(endpoint)
        if self.on_disconnect is not None:
            self.on_disconnect(endpoint)


def dial(host: str, port: int, *, role: Role = Role.CLIENT, identity: str = "client",
         keys: KeyRing | None = None, token: JobToken | None = None,
         local: Ref | None = None, tls: ssl.SSLContext | None = None,
         timeout: float = 10.0, max_payload: int = DEFAULT_MAX_PAYLOAD,
         clock: Clock = SYSTEM_CLOCK, **endpoint_options: Any) -> Endpoint:
    """Connect, handshake and return a started Endpoint (``endpoint.remote`` is the server's
    actor; requests from the server go to ``local``).

    Raises:
        ConnectTimeoutError: no connection or no handshake within ``timeout``.
        BrokenError: the connection was refused or broke.
        HandshakeError / VersionMismatchError: the handshake failed (the message says why).
    """
    try:
        sock = gsocket.create_connection((host, port), timeout=timeout)
    except gsocket.timeout as error:
        raise ConnectTimeoutError(f"could not reach {host}:{port} within {timeout} s") from error
    except OSError as error:
        raise BrokenError(f"could not connect to {host}:{port}: {error.strerror or error}") \
            from error
    sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
    connection = None
    try:
        with gevent.Timeout(timeout, ConnectTimeoutError(
                f"{host}:{port} did not finish the handshake within {timeout} s")):
            if tls is not None:
                sock = _wrap_tls(sock, tls, server_side=False, server_hostname=host)
            connection = Connection(sock, max_payload=max_payload, send_lock=make_send_lock(),
                                    send_nowait=None if tls is not None else _sender_nowait(sock))
            session = client_handshake(connection, ClientHandshake(role, identity, keys, token))
    except ssl.SSLError as error:
        sock.close()
        raise HandshakeError(f"TLS with {host}:{port} failed: {error}") from error
    except BaseException:
        if connection is not None:
            connection.close()
        else:
            sock.close()
        raise
    sock.settimeout(None)
    return Endpoint(connection, session, local=local, name=f"{identity}->{host}:{port}",
                    clock=clock, **endpoint_options).start()
