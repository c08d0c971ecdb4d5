"""From settings to the key ring a process authenticates with."""

from __future__ import annotations

from .config import Config
from .config_security import read_key_file
from .wire.auth import KeyRing


def keyring_from_config(config: Config) -> KeyRing | None:
    """The key ring named by ``key_file`` (read once), or None when no key is configured."""
    if config.key_file is None:
        return None
    return KeyRing(read_key_file(config.key_file))
