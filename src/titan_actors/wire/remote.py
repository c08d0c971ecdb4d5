"""A ref to the actor at the other end of a bridge (``bridge.Endpoint``): tells and asks
travel as frames over the endpoint's connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..actors.base import DEFAULT_ASK_TIMEOUT, NO_SENDER, Ref, Sender
from ..actors.future import Future
from .roles import PeerInfo

if TYPE_CHECKING:
    from .bridge import Endpoint

__all__ = ["RemoteRef"]


class RemoteRef(Ref):
    """A ref to the actor on the other end of an endpoint: the same interface as ActorRef."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self.name = f"{endpoint.peer.identity}@{endpoint.connection.peer_address}"

    def __repr__(self) -> str:
        return f"<RemoteRef {self.name}{'' if self.is_alive else ' (closed)'}>"

    @property
    def is_alive(self) -> bool:
        return self._endpoint.is_open

    @property
    def peer(self) -> PeerInfo:
        return self._endpoint.peer

    def close(self) -> None:
        """Close the connection behind this ref (pending asks fail with ClosedError)."""
        self._endpoint.close()

    def tell(self, message: Any, *, timeout: float | None = None,
             sender: Sender = NO_SENDER) -> None:
        self._endpoint.send_request(message, 0, timeout)

    def ask_async(self, message: Any, *, timeout: float | None = None,
                  sender: Sender = NO_SENDER) -> Future:
        timeout = DEFAULT_ASK_TIMEOUT if timeout is None else timeout
        request_id, future = self._endpoint.new_request(
            timeout, f"reply from {self.name} to {type(message).__name__}")
        try:
            self._endpoint.send_request(message, request_id, timeout)
        except BaseException as error:
            self._endpoint.forget_request(request_id, error)
            raise
        return future
