"""Connections to the master for page requests: a small bounded pool of blocking clients.

A ``MasterClient`` serves one request at a time, so each page request borrows one and gives it
back; a client whose connection broke is closed instead of returned, and the next borrower
dials a new one. In the console process the socket is cooperative (monkey-patched), so a
request waiting for the master never blocks the others.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from gevent.lock import BoundedSemaphore

from titan_actors.errors import ConnectionError_, TitanError

log = logging.getLogger("titan.web.clients")


class ClientPool:
    """At most ``size`` clients made by ``factory()``; :meth:`client` waits up to ``timeout``
    seconds for a free one (then raises ConnectionError_, shown as "master busy")."""

    def __init__(self, factory: Callable[[], Any], size: int = 8, timeout: float = 10.0) -> None:
        self._factory = factory
        self._slots = BoundedSemaphore(size)
        self._idle: list[Any] = []
        self._timeout = timeout

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._timeout):
            raise ConnectionError_(f"all {len(self._idle)} connections to the master are busy")
        client = None
        try:
            client = self._idle.pop() if self._idle else self._factory()
            yield client
        except ConnectionError_:
            _close(client)
            client = None
            raise
        except TitanError:
            raise  # a refusal: the connection is fine
        except BaseException:
            _close(client)  # in an unknown state (a timeout mid-reply, a kill): never reuse
            client = None
            raise
        finally:
            if client is not None and not getattr(client, "closed", False):
                self._idle.append(client)
            self._slots.release()

    def close(self) -> None:
        while self._idle:
            _close(self._idle.pop())


def _close(client: Any) -> None:
    if client is None:
        return
    try:
        client.close()
    except Exception:  # a broken connection: nothing more to do
        log.debug("closing a client failed", exc_info=True)
