"""Peer roles and what each may do.

A connection's role is fixed by its handshake. Every message type declares the capability it needs
(``requires=`` in :func:`titan_actors.wire.registry.message`); the bridge refuses a message whose
capability the sender's role lacks, before any actor sees it.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from ..errors import PermissionDeniedError


class Role(enum.IntEnum):
    """Who is on the other end of a connection."""

    CLIENT = 1   # a user: submit, query, decide gates
    ADMIN = 2    # an operator: everything, cluster control included
    WORKER = 3   # a worker process: register and report only
    JOB = 4      # a job process holding a per-attempt token
    PEER = 5     # another component of the cluster (store <-> master)
    SERVER = 6   # the server a client dialled, as seen by that client


class Capability(enum.IntEnum):
    """One kind of thing a peer may do."""

    PING = 1             # liveness and version queries
    QUERY = 2            # read run, job, worker and log state
    SUBMIT = 3           # submit new runs
    EXTEND_OWN_RUN = 4   # add jobs to the run the job belongs to
    DECIDE_GATES = 5     # approve or reject human gates
    CLUSTER_CONTROL = 6  # stop workers, prune, compact, shut down
    REGISTER_WORKER = 7  # register as a worker and report on dispatched work
    STORE = 8            # read and write the key-value store
    ARTIFACTS = 9        # upload and download files
    PEER_LINK = 10       # component-to-component traffic
    DISPATCH = 11        # a server's requests to its clients: dispatch, cancel, drain a worker


_C = Capability

CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.CLIENT: frozenset({_C.PING, _C.QUERY, _C.SUBMIT, _C.EXTEND_OWN_RUN, _C.DECIDE_GATES,
                            _C.STORE, _C.ARTIFACTS}),
    Role.ADMIN: frozenset(Capability),
    Role.WORKER: frozenset({_C.PING, _C.REGISTER_WORKER}),
    Role.JOB: frozenset({_C.PING, _C.QUERY, _C.SUBMIT, _C.EXTEND_OWN_RUN, _C.STORE,
                         _C.ARTIFACTS}),
    Role.PEER: frozenset({_C.PING, _C.PEER_LINK, _C.STORE}),
    # What a client lets the server it dialled ask of it. With shared keys the server has proved
    # only that it holds the client's role key (which every worker holds), so it gets no more.
    Role.SERVER: frozenset({_C.PING, _C.DISPATCH}),
}


def role_may(role: Role, capability: Capability) -> bool:
    """Return True when a peer of ``role`` holds ``capability``."""
    return capability in CAPABILITIES[role]


def check_may_send(role: Role, message_type: type) -> None:
    """Raise PermissionDeniedError unless a peer of ``role`` may send ``message_type`` (a
    message without ``requires=`` is for admins only)."""
    required = message_type.REQUIRES
    if required is None:
        if role is not Role.ADMIN:
            raise PermissionDeniedError(
                f"{message_type.__name__} is not a request a {role.name.lower()} may send")
    elif not role_may(role, required):
        raise PermissionDeniedError(f"role {role.name.lower()} may not send "
                                    f"{message_type.__name__} (needs {required.name.lower()})")


def check_run_scope(peer: "PeerInfo", message: Any) -> None:
    """A job's token is scoped to its run: raise PermissionDeniedError for a message of a
    job that names another run (in the field its class declares as ``RUN_SCOPE``)."""
    field = getattr(type(message), "RUN_SCOPE", None)
    if peer.role is Role.JOB and field is not None:
        run_id = getattr(message, field)
        if run_id and run_id != peer.run_id:
            raise PermissionDeniedError(
                f"the token of job {peer.job_id!r} is scoped to run {peer.run_id!r}; it cannot "
                f"act on run {run_id!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who sent a message: fixed by the handshake of its connection, or LOCAL in-process.

    ``run_id`` and ``job_id`` scope a job token (role JOB); ``address`` is "host:port" of the
    remote end, or "local".
    """

    role: Role
    identity: str
    address: str = "local"
    run_id: str = ""
    job_id: str = ""


LOCAL_PEER = PeerInfo(role=Role.ADMIN, identity="local")
