"""How both SDK clients open their connection to the master: credentials from the arguments,
else from the environment (a job's ``TITAN_TOKEN`` first, then ``TITAN_KEY_FILE``)."""

from __future__ import annotations

import os
from pathlib import Path

from titan_actors.client import MasterClient


def open_client(host: str, port: int, timeout: float, identity: str,
                token_text: str | None = None, key_file: str | None = None) -> MasterClient:
    """A connected MasterClient. Raises the core's connection and handshake errors."""
    from titan_actors.wire.auth import JobToken

    if token_text is None and key_file is None:
        token_text = os.environ.get("TITAN_TOKEN") or None
        key_file = None if token_text else (os.environ.get("TITAN_KEY_FILE") or None)
    token = JobToken.parse(token_text) if token_text else None
    keys = None
    if token is None and key_file is not None:
        from titan_actors.keys import load_keyring
        keys = load_keyring(Path(key_file))
    return MasterClient(host, port, keys=keys, token=token, timeout=timeout, identity=identity)


class OwnedConnection:
    """One connection to the master, opened on first use, reopened after ``close``; the client
    is a context manager. Subclasses set ``host``, ``port``, ``timeout``, ``_token``,
    ``_key_file``, ``_client`` (None) and ``_identity``."""

    host: str
    port: int
    timeout: float
    _token: str | None
    _key_file: str | None
    _client: MasterClient | None
    _identity: str

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    def _connect(self) -> MasterClient:
        if self._client is None:
            self._client = open_client(self.host, self.port, self.timeout, self._identity,
                                       self._token, self._key_file)
        return self._client
