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
