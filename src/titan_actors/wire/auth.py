"""The handshake: versions, role and identity, and mutual HMAC challenge-response.

Pure logic, no sockets and no gevent: a connection feeds the decoded messages in and sends what
comes out. Keys:

* The cluster key (32 random bytes in a 0600 file) never crosses the wire. Each role has its own
  key, ``HMAC(cluster_key, "titan-actors/v1/role/<role>")``; a :class:`KeyRing` built from the
  cluster key can act as any role, one built from a role key file (``titanctl key derive``) only
  as that role, so a worker's key cannot submit work or decide gates.
* A job token is minted by the master for one attempt: public claims (run, job, attempt, expiry)
  plus a secret ``HMAC(job_role_key, claims)``. The job proves with the secret; the server
  recomputes it from the claims, so the job never sees the cluster key.

Both sides prove knowledge of the key over the other side's fresh nonce, so a recorded handshake
cannot be replayed; comparisons are constant-time. Without any key the handshake still checks the
version and fixes role and identity, and nothing is authenticated (loopback only: servers refuse a
non-loopback bind without a key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import __version__
from ..errors import DecodeError, HandshakeError
from . import codec
from .messages.handshake import Challenge, HandshakeRejected, Hello, JobTokenClaims, Proof, Welcome
from .roles import PeerInfo, Role

NONCE_SIZE = 32
_TOKEN_PREFIX = "tjt1"
_ROLE_LABEL = b"titan-actors/v1/role/"


def _mac(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    return mac.digest()


def role_key(cluster_key: bytes, role: Role) -> bytes:
    """The key of ``role`` derived from the cluster key."""
    return _mac(cluster_key, _ROLE_LABEL + role.name.lower().encode())


class KeyRing:
    """The keys one process holds: the cluster key (every role) or a single role's key."""

    def __init__(self, cluster_key: bytes | None = None, *, role: Role | None = None,
                 role_secret: bytes | None = None) -> None:
        if (cluster_key is None) == (role_secret is None) or (role_secret and role is None):
            raise ValueError("give either a cluster key, or a role and its key")
        self._cluster_key = cluster_key
        self._role = role
        self._role_secret = role_secret

    @property
    def is_cluster_key(self) -> bool:
        return self._cluster_key is not None

    def key_for(self, role: Role) -> bytes:
        """The key to prove ``role`` with.

        Raises:
            HandshakeError: this ring holds another role's key.
        """
        if self._cluster_key is not None:
            return role_key(self._cluster_key, role)
        if role is not self._role:
            raise HandshakeError(f"this key file holds the {self._role.name.lower()} key; it "
                                 f"cannot act as {role.name.lower()}")
        return self._role_secret

    def mint_job_token(self, claims: JobTokenClaims) -> str:
        """A ``TITAN_TOKEN`` value for one job attempt (needs the cluster key)."""
        if self._cluster_key is None:
            raise HandshakeError("minting job tokens needs the cluster key")
        public = codec.encode(claims)
        secret = _mac(role_key(self._cluster_key, Role.JOB), public)
        return ".".join((_TOKEN_PREFIX, _b64(public), _b64(secret)))

    def job_secret(self, public: bytes) -> bytes:
        if self._cluster_key is None:
            raise HandshakeError("checking job tokens needs the cluster key")
        return _mac(role_key(self._cluster_key, Role.JOB), public)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class JobToken:
    """A parsed ``TITAN_TOKEN``: public claims (bytes and decoded) and the proving secret."""

    public: bytes
    secret: bytes
    claims: JobTokenClaims

    @classmethod
    def parse(cls, token: str) -> "JobToken":
        """Parse a token string. Raises HandshakeError saying what is malformed."""
        parts = token.strip().split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_PREFIX:
            raise HandshakeError("TITAN_TOKEN is malformed: expected tjt1.<claims>.<secret>")
        try:
            public, secret = _unb64(parts[1]), _unb64(parts[2])
            claims = codec.decode(JobTokenClaims, public)
        except (ValueError, DecodeError) as error:
            raise HandshakeError(f"TITAN_TOKEN is malformed: {error}") from error
        return cls(public, secret, claims)


def _transcript(hello: Hello, server_nonce: bytes) -> tuple[bytes, ...]:
    return (hello.nonce, server_nonce, bytes([hello.role]), hello.identity.encode(), hello.token)


@dataclass(frozen=True, slots=True)
class Session:
    """The outcome of a handshake: who the peer is and the key that seals frames, if any."""

    peer: PeerInfo
    session_key: bytes | None
    sealed: bool


class ClientHandshake:
    """The dialling side. Call :meth:`hello`, then :meth:`on_challenge`, then :meth:`on_reply`.

    Args:
        role: the role to claim (JOB when ``token`` is given).
        identity: a name for logs and for the server's bookkeeping (a worker's name).
        keys: the key ring, or None when the cluster runs without a key.
        token: a job token instead of a key ring.
    """

    def __init__(self, role: Role, identity: str, keys: KeyRing | None = None,
                 token: JobToken | None = None, rng: Callable[[int], bytes] = os.urandom):
        if token is not None:
            role = Role.JOB
        self._role, self._identity, self._token = role, identity, token
        self._key = token.secret if token else (keys.key_for(role) if keys else None)
        self._rng = rng
        self._hello: Hello | None = None
        self._challenge: Challenge | None = None

    def hello(self) -> Hello:
        self._hello = Hello(self._role, self._identity, self._rng(NONCE_SIZE),
                            self._token.public if self._token else b"", __version__)
        return self._hello

    def on_challenge(self, challenge: Challenge) -> Proof:
        """Check the server's proof and answer with ours.

        Raises:
            HandshakeError: the server's proof is wrong, it does not authenticate while we hold a
            key, or it requires a key we do not have.
        """
        if not isinstance(challenge, Challenge):
            raise HandshakeError(f"expected Challenge, got {type(challenge).__name__}")
        self._challenge = challenge
        if challenge.authenticated and self._key is None:
            raise HandshakeError(
                f"server {challenge.server_identity!r} requires the cluster key: pass --key-file "
                "or set TITAN_KEY_FILE (inside a job, TITAN_TOKEN)")
        if not challenge.authenticated:
            if self._key is not None:
                raise HandshakeError(
                    f"server {challenge.server_identity!r} runs without a cluster key but this "
                    "side has one: refusing an unauthenticated server (start it with --key-file)")
            return Proof(b"")
        parts = _transcript(self._hello, challenge.nonce)
        if not hmac.compare_digest(challenge.proof, _mac(self._key, b"server", *parts)):
            raise HandshakeError(
                f"server {challenge.server_identity!r} failed to prove the key for role "
                f"{self._role.name.lower()}: the keys differ")
        return Proof(_mac(self._key, b"client", *parts))

    def on_reply(self, reply: Welcome | HandshakeRejected, peer_address: str) -> Session:
        """Finish on the server's verdict. Raises HandshakeError with the server's reason."""
        if isinstance(reply, HandshakeRejected):
            raise HandshakeError(f"the server refused the handshake: {reply.reason}")
        if not isinstance(reply, Welcome):
            raise HandshakeError(f"expected Welcome, got {type(reply).__name__}")
        session_key = None
        if self._key is not None:
            parts = _transcript(self._hello, self._challenge.nonce)
            expected = _mac(self._key, b"welcome", bytes([reply.sealed]), *parts)
            if not hmac.compare_digest(reply.proof, expected):
                raise HandshakeError("the server's Welcome failed its proof: it was altered on "
                                     "the way")
            session_key = _mac(self._key, b"session", *parts)
        peer = PeerInfo(Role.SERVER, reply.peer_identity, peer_address)
        return Session(peer, session_key, reply.sealed)


class ServerHandshake:
    """The accepting side. Call :meth:`on_hello`, then :meth:`on_proof`.

    Args:
        identity: this server's name (sent in the challenge).
        keys: the cluster key ring, or None to run without authentication.
        peer_address: "host:port" of the client.
        seal: whether frames after the handshake must carry a MAC (decided by the caller from the
            peer's address, TLS and the ``seal_frames`` setting; ignored without a key).
        allowed_roles: roles this server accepts (a worker-facing port may refuse clients).
        token_valid: extra check of a job token's claims (e.g. the attempt is still live).
        wall_clock: epoch seconds, for token expiry.
    """

    def __init__(self, identity: str, keys: KeyRing | None, peer_address: str, *,
                 seal: bool = False, allowed_roles: frozenset[Role] = frozenset(Role),
                 token_valid: Callable[[JobTokenClaims], bool] | None = None,
                 wall_clock: Callable[[], float] | None = None,
                 rng: Callable[[int], bytes] = os.urandom) -> None:
        if keys is not None and not keys.is_cluster_key:
            raise ValueError("a server needs the cluster key, not a role key")
        self._identity, self._keys, self._address = identity, keys, peer_address
        self._seal = seal and keys is not None
        self._allowed = allowed_roles
        self._token_valid = token_valid
        self._wall = wall_clock or time.time
        self._rng = rng
        self._hello: Hello | None = None
        self._nonce = b""
        self._key: bytes | None = None
        self._claims: JobTokenClaims | None = None

    def on_hello(self, hello: Hello) -> Challenge:
        """Check the claimed role and answer with a challenge.

        Raises:
            HandshakeError: (send its text as HandshakeRejected) the message is not a Hello, the
            role is not accepted here, the nonce is short, or the job token is bad or expired.
        """
        if not isinstance(hello, Hello):
            raise HandshakeError(f"expected Hello, got {type(hello).__name__}")
        if hello.role not in self._allowed:
            raise HandshakeError(f"role {hello.role.name.lower()} is not accepted here")
        if len(hello.nonce) != NONCE_SIZE:
            raise HandshakeError(f"the client nonce must be {NONCE_SIZE} bytes")
        self._hello = hello
        self._nonce = self._rng(NONCE_SIZE)
        if self._keys is None:
            return Challenge(self._nonce, b"", False, self._identity)
        if hello.role is Role.JOB:
            self._key = self._job_key(hello.token)
        else:
            self._key = self._keys.key_for(hello.role)
        proof = _mac(self._key, b"server", *_transcript(hello, self._nonce))
        return Challenge(self._nonce, proof, True, self._identity)

    def _job_key(self, public: bytes) -> bytes:
        try:
            claims = codec.decode(JobTokenClaims, public)
        except DecodeError as error:
            raise HandshakeError(f"the job token is malformed: {error}") from error
        if claims.expires_at < self._wall():
            raise HandshakeError(f"the job token of {claims.run_id}/{claims.job_id} attempt "
                                 f"{claims.attempt} has expired")
        if self._token_valid is not None and not self._token_valid(claims):
            raise HandshakeError(f"the job token of {claims.run_id}/{claims.job_id} attempt "
                                 f"{claims.attempt} is no longer valid")
        self._claims = claims
        return self._keys.job_secret(public)

    def on_proof(self, proof: Proof) -> tuple[Welcome, Session]:
        """Check the client's proof. Raises HandshakeError when it is wrong."""
        if not isinstance(proof, Proof) or self._hello is None:
            raise HandshakeError("expected Proof after Hello")
        hello = self._hello
        session_key = None
        welcome_proof = b""
        if self._key is not None:
            parts = _transcript(hello, self._nonce)
            if not hmac.compare_digest(proof.proof, _mac(self._key, b"client", *parts)):
                raise HandshakeError(
                    f"{hello.role.name.lower()} {hello.identity!r} failed to prove its key")
            session_key = _mac(self._key, b"session", *parts)
            welcome_proof = _mac(self._key, b"welcome", bytes([self._seal]), *parts)
        claims = self._claims
        peer = PeerInfo(hello.role, hello.identity, self._address,
                        run_id=claims.run_id if claims else "",
                        job_id=claims.job_id if claims else "")
        welcome = Welcome(self._seal, self._identity, welcome_proof)
        return welcome, Session(peer, session_key, self._seal)
