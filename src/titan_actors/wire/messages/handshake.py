"""Messages of the handshake that opens every connection (type ids 1-9).

The exchange (see ``wire.auth``)::

    client                                   server
    Hello(role, identity, nonce, token) ──▶
                                         ◀── Challenge(nonce, proof, authenticated)
    Proof(proof)                        ──▶
                                         ◀── Welcome(sealed, identity)  or  HandshakeRejected
"""

from __future__ import annotations

from ..registry import Message, message
from ..roles import Role


@message(1)
class Hello(Message):
    """The client's opening: who it claims to be and a fresh nonce.

    ``token`` is the public part of a job token (role JOB), empty otherwise.
    """

    role: Role
    identity: str
    nonce: bytes
    token: bytes
    software: str


@message(2)
class Challenge(Message):
    """The server's nonce and, when a key is configured, its proof over the client's nonce."""

    nonce: bytes
    proof: bytes
    authenticated: bool
    server_identity: str


@message(3)
class Proof(Message):
    """The client's proof over the server's nonce (empty when no key is configured)."""

    proof: bytes


@message(4)
class Welcome(Message):
    """The handshake succeeded; ``sealed`` says whether frames from now on carry a MAC.

    ``proof`` (with a key) binds ``sealed`` to the handshake, so nobody on the path can switch
    sealing off.
    """

    sealed: bool
    peer_identity: str
    proof: bytes


@message(5)
class HandshakeRejected(Message):
    """The server refused the handshake; ``reason`` says why and what would be right."""

    reason: str


@message(6)
class JobTokenClaims(Message):
    """What a job token grants: the attempt it belongs to, and until when (epoch seconds)."""

    run_id: str
    job_id: str
    attempt: int
    expires_at: float
    nonce: bytes
