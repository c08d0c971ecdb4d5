"""The handshake as pure logic: no sockets, every exchange driven by hand."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan_actors.errors import FrameAuthError, HandshakeError
from titan_actors.wire.auth import ClientHandshake, JobToken, KeyRing, ServerHandshake, role_key
from titan_actors.wire.frame import Flag, Frame
from titan_actors.wire.messages.handshake import JobTokenClaims, Welcome
from titan_actors.wire.roles import Role
from titan_actors.wire.seal import FrameOpener, FrameSealer

keys32 = st.binary(min_size=32, max_size=32)
roles = st.sampled_from([Role.CLIENT, Role.ADMIN, Role.WORKER, Role.PEER])


def run(client: ClientHandshake, server: ServerHandshake):
    """One full exchange; returns (client session, server session)."""
    challenge = server.on_hello(client.hello())
    proof = client.on_challenge(challenge)
    welcome, server_session = server.on_proof(proof)
    return client.on_reply(welcome, "server:1"), server_session


@settings(max_examples=40, deadline=None)
@given(key=keys32, role=roles, identity=st.text(max_size=40))
def test_same_key_authenticates_both_ways_and_agrees_on_a_session_key(key, role, identity):
    client_session, server_session = run(
        ClientHandshake(role, identity, KeyRing(key)),
        ServerHandshake("srv", KeyRing(key), "client:1", seal=True))
    assert server_session.peer.role is role and server_session.peer.identity == identity
    assert client_session.session_key == server_session.session_key is not None
    assert client_session.sealed and server_session.sealed


@settings(max_examples=40, deadline=None)
@given(client_key=keys32, server_key=keys32, role=roles)
def test_a_wrong_key_fails_on_the_client_side_first(client_key, server_key, role):
    if client_key == server_key:
        return
    client = ClientHandshake(role, "c", KeyRing(client_key))
    server = ServerHandshake("srv", KeyRing(server_key), "c:1")
    with pytest.raises(HandshakeError, match="keys differ"):
        client.on_challenge(server.on_hello(client.hello()))


@settings(max_examples=25, deadline=None)
@given(key=keys32, claimed=roles, held=roles)
def test_a_role_key_proves_only_its_own_role(key, claimed, held):
    ring = KeyRing(role=held, role_secret=role_key(key, held))
    if claimed is held:
        run(ClientHandshake(claimed, "c", ring), ServerHandshake("srv", KeyRing(key), "c:1"))
        return
    with pytest.raises(HandshakeError, match="cannot act as"):
        ClientHandshake(claimed, "c", ring)


def test_a_server_impersonating_with_a_role_key_cannot_fool_a_client_of_another_role():
    key = os.urandom(32)
    # the attacker knows the worker key and answers a client's hello with it
    client = ClientHandshake(Role.CLIENT, "c", KeyRing(key))
    hello = client.hello()
    fake = ServerHandshake("evil", KeyRing(role_key(key, Role.WORKER)), "c:1")
    with pytest.raises(HandshakeError):
        client.on_challenge(fake.on_hello(hello))


def test_a_recorded_handshake_cannot_be_replayed():
    key = os.urandom(32)
    client = ClientHandshake(Role.ADMIN, "ops", KeyRing(key))
    hello = client.hello()
    first = ServerHandshake("srv", KeyRing(key), "c:1")
    recorded_proof = client.on_challenge(first.on_hello(hello))
    first.on_proof(recorded_proof)
    # an eavesdropper replays the same hello and proof to a new connection
    second = ServerHandshake("srv", KeyRing(key), "evil:1")
    second.on_hello(hello)
    with pytest.raises(HandshakeError, match="failed to prove its key"):
        second.on_proof(recorded_proof)


def test_a_replayed_server_challenge_is_refused_by_a_new_client():
    key = os.urandom(32)
    old_client = ClientHandshake(Role.CLIENT, "c", KeyRing(key))
    server = ServerHandshake("srv", KeyRing(key), "c:1")
    recorded_challenge = server.on_hello(old_client.hello())
    new_client = ClientHandshake(Role.CLIENT, "c", KeyRing(key))
    new_client.hello()  # a fresh nonce
    with pytest.raises(HandshakeError, match="keys differ"):
        new_client.on_challenge(recorded_challenge)


def test_unauthenticated_mode_and_the_mismatches_around_it():
    key = os.urandom(32)
    session, server_session = run(ClientHandshake(Role.CLIENT, "c"),
                                  ServerHandshake("srv", None, "c:1", seal=True))
    assert session.session_key is None and not server_session.sealed
    client = ClientHandshake(Role.CLIENT, "c", KeyRing(key))
    with pytest.raises(HandshakeError, match="runs without a cluster key"):
        client.on_challenge(ServerHandshake("srv", None, "c:1").on_hello(client.hello()))
    keyless = ClientHandshake(Role.CLIENT, "c")
    with pytest.raises(HandshakeError, match="requires the cluster key"):
        keyless.on_challenge(ServerHandshake("srv", KeyRing(key), "c:1")
                             .on_hello(keyless.hello()))


def test_servers_can_refuse_roles_and_short_nonces():
    server = ServerHandshake("srv", None, "c:1", allowed_roles=frozenset({Role.WORKER}))
    with pytest.raises(HandshakeError, match="role client is not accepted"):
        server.on_hello(ClientHandshake(Role.CLIENT, "c").hello())
    short = ClientHandshake(Role.WORKER, "w", rng=lambda n: b"\x01" * 8)
    with pytest.raises(HandshakeError, match="nonce must be 32 bytes"):
        ServerHandshake("srv", None, "c:1").on_hello(short.hello())


def test_job_tokens_carry_their_scope_and_expire():
    ring = KeyRing(os.urandom(32))
    now = 1_900_000_000.0
    claims = JobTokenClaims("run-9", "crunch", 3, now + 60, os.urandom(8))
    token = JobToken.parse(ring.mint_job_token(claims))
    _, server_session = run(ClientHandshake(Role.CLIENT, "job", token=token),
                            ServerHandshake("srv", ring, "c:1", wall_clock=lambda: now))
    peer = server_session.peer
    assert (peer.role, peer.run_id, peer.job_id) == (Role.JOB, "run-9", "crunch")
    late = ServerHandshake("srv", ring, "c:1", wall_clock=lambda: now + 61)
    with pytest.raises(HandshakeError, match="has expired"):
        late.on_hello(ClientHandshake(Role.JOB, "job", token=token).hello())
    revoked = ServerHandshake("srv", ring, "c:1", wall_clock=lambda: now,
                              token_valid=lambda c: False)
    with pytest.raises(HandshakeError, match="no longer valid"):
        revoked.on_hello(ClientHandshake(Role.JOB, "job", token=token).hello())
    with pytest.raises(HandshakeError, match="malformed"):
        JobToken.parse("tjt1.not-base64!.x")


def test_tampered_job_claims_fail_the_proof():
    ring = KeyRing(os.urandom(32))
    good = JobToken.parse(ring.mint_job_token(
        JobTokenClaims("run-1", "a", 1, 4e9, b"n")))
    forged_claims = JobToken.parse(ring.mint_job_token(
        JobTokenClaims("run-2", "a", 1, 4e9, b"n"))).public
    forged = JobToken(forged_claims, good.secret, good.claims)  # other run, stolen secret
    server = ServerHandshake("srv", ring, "c:1")
    client = ClientHandshake(Role.JOB, "job", token=forged)
    with pytest.raises(HandshakeError):
        client.on_challenge(server.on_hello(client.hello()))


def test_reply_must_be_welcome():
    client = ClientHandshake(Role.CLIENT, "c")
    server = ServerHandshake("srv", None, "c:1")
    client.on_challenge(server.on_hello(client.hello()))
    with pytest.raises(HandshakeError, match="expected Welcome"):
        client.on_reply(Flag, "x")  # type: ignore[arg-type]
    session = client.on_reply(Welcome(False, "srv", b""), "x")
    assert session.peer.identity == "srv" and session.peer.role is Role.SERVER


def test_a_welcome_altered_on_the_way_cannot_switch_sealing_off():
    key = os.urandom(32)
    client = ClientHandshake(Role.CLIENT, "c", KeyRing(key))
    server = ServerHandshake("srv", KeyRing(key), "c:1", seal=True)
    welcome, _ = server.on_proof(client.on_challenge(server.on_hello(client.hello())))
    assert welcome.sealed
    tampered = Welcome(False, welcome.peer_identity, welcome.proof)
    with pytest.raises(HandshakeError, match="altered"):
        client.on_reply(tampered, "srv:1")
    assert client.on_reply(welcome, "srv:1").sealed


def test_the_server_is_trusted_only_as_a_server():
    # a worker-key holder can answer a worker's handshake: it gets the SERVER role, not ADMIN
    key = os.urandom(32)
    worker_ring = KeyRing(role=Role.WORKER, role_secret=role_key(key, Role.WORKER))
    session, _ = run(ClientHandshake(Role.WORKER, "w", worker_ring),
                     ServerHandshake("impostor", KeyRing(key), "w:1"))
    assert session.peer.role is Role.SERVER


# -- sealing ---------------------------------------------------------------------------------

def _sealed(sealer: FrameSealer, type_id: int, payload: bytes, request_id: int = 0) -> Frame:
    flags, body = sealer.seal(type_id, Flag(0), request_id, payload)
    return Frame(type_id, flags, request_id, body)


def test_sealed_frames_open_in_order_and_refuse_replay_reorder_reflection_and_tampering():
    key = os.urandom(32)
    sealer, opener = FrameSealer(key, b"c2s"), FrameOpener(key, b"c2s")
    frames = [_sealed(sealer, 10, f"m{n}".encode(), n) for n in range(3)]
    assert opener.open(frames[0]).payload == b"m0"
    with pytest.raises(FrameAuthError):
        opener.open(frames[0])  # replay
    opener2 = FrameOpener(key, b"c2s")
    with pytest.raises(FrameAuthError):
        opener2.open(frames[1])  # reordered / dropped
    reflected = FrameOpener(key, b"s2c")
    with pytest.raises(FrameAuthError):
        reflected.open(frames[0])  # sent back to its sender
    tampered = Frame(frames[1].type_id, frames[1].flags, 99, frames[1].payload)
    opener3 = FrameOpener(key, b"c2s")
    opener3.open(frames[0])
    with pytest.raises(FrameAuthError):
        opener3.open(tampered)
    with pytest.raises(FrameAuthError, match="unsealed"):
        FrameOpener(key, b"c2s").open(Frame(10, Flag(0), 0, b"plain"))
