"""From settings to the key ring a process authenticates with."""

from __future__ import annotations

from pathlib import Path

from .config import Config
from .config_security import read_any_key_file, write_role_key_file
from .errors import ConfigError, HandshakeError
from .wire.auth import KeyRing, role_key
from .wire.roles import Role


def load_keyring(path: Path) -> KeyRing:
    """The key ring in a cluster key file or a role key file (read once)."""
    role_name, key = read_any_key_file(path)
    if role_name is None:
        return KeyRing(key)
    try:
        role = Role[role_name.upper()]
    except KeyError:
        raise ConfigError(f"key file {path} names an unknown role {role_name!r}; expected one "
                          f"of {', '.join(r.name.lower() for r in Role)}") from None
    return KeyRing(role=role, role_secret=key)


def keyring_from_config(config: Config) -> KeyRing | None:
    """The key ring named by ``key_file``, or None when no key is configured."""
    return None if config.key_file is None else load_keyring(config.key_file)


def derive_role_key_file(cluster_key_file: Path, role: Role, out: Path) -> Path:
    """Write ``out``: the key of ``role`` derived from the cluster key, as a role key file."""
    role_name, key = read_any_key_file(cluster_key_file)
    if role_name is not None:
        raise ConfigError(f"{cluster_key_file} holds the {role_name} key; deriving needs the "
                          "cluster key")
    return write_role_key_file(out, role.name.lower(), role_key(key, role))


def check_roles(keys: KeyRing | None, path: Path | None, roles: tuple[Role, ...],
                what: str) -> None:
    """Refuse, at start, a role key file that proves none of ``roles`` (``what``: the
    component, for the message). A wrong key is a setting to fix, not an outage to retry."""
    if keys is None:
        return
    for role in roles:
        try:
            keys.key_for(role)
            return
        except HandshakeError:
            continue
    wanted = " or ".join(role.name.lower() for role in roles)
    raise ConfigError(f"key file {path} holds the key of another role; {what} needs the cluster "
                      f"key or the {wanted} key (`titanctl key derive CLUSTER_KEY OUT --role "
                      f"{roles[0].name.lower()}`)")
