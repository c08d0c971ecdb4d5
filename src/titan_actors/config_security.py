"""What keeps an unauthenticated cluster off the network: the key file and the bind check.

A server refuses a non-loopback bind without a cluster key (:func:`check_bind_address`).

Format (decided here, documented in ``titanctl key generate --help``): the file holds the key as
text, one line, surrounding whitespace ignored, either

* hex: only ``0-9a-fA-F`` with an even number of digits (what :func:`generate_key_file` writes:
  64 hex digits for 32 random bytes), or
* base64 (standard or URL-safe alphabet, padding optional), tried when the text is not hex.

The decoded key must be at least :data:`MIN_KEY_BYTES` (32) bytes long and must not be
obviously non-random (fewer than 8 distinct byte values, e.g. all zeros). The file must be
readable by its owner only (mode ``0600`` or stricter), as with an SSH private key.
"""

from __future__ import annotations

import base64
import binascii
import errno
import ipaddress
import os
import re
import secrets
import stat
from pathlib import Path

from titan_actors.errors import ConfigError

MIN_KEY_BYTES = 32
_MAX_KEY_FILE_BYTES = 4096  # a key file is one short line; refuse to slurp anything large
_MIN_DISTINCT_BYTES = 8
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


ROLE_KEY_PREFIX = "titan-role-key:"


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read and decode the cluster key from ``path`` (see the module docstring for the format).

    Raises ConfigError for a role key file (``titanctl key derive``): it is not a cluster key.
    """
    role, key = read_any_key_file(path)
    if role is not None:
        raise ConfigError(f"key file {path} holds the {role} key, not the cluster key")
    return key


def read_any_key_file(path: str | os.PathLike[str]) -> tuple[str | None, bytes]:
    """Read a cluster key file or a role key file.

    A role key file holds one line ``titan-role-key:<role>:<hex>``; it lets a process act as
    that one role only (a worker's host gets the worker key, never the cluster key).

    The file is opened once and checked through that open file, so the mode that is checked
    belongs to the bytes that are read.

    Returns:
        ``(None, key)`` for a cluster key, ``(role, key)`` for a role key (keys >= 32 bytes).

    Raises:
        ConfigError: the file is missing or not a regular file, is readable or writable by group
            or others (the message gives the ``chmod 600`` fix), or does not hold a key of at
            least 32 bytes in hex or base64.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    except FileNotFoundError:
        raise ConfigError(
            f"key file {path} does not exist; create one with `titanctl key generate {path}` "
            "or pass the right path with --key-file / TITAN_KEY_FILE"
        ) from None
    except OSError as e:
        raise ConfigError(f"key file {path} cannot be opened: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"key file {path} is accessible by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); restrict it with `chmod 600 {path}`"
            )
        raw = f.read(_MAX_KEY_FILE_BYTES + 1)
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(
            f"key file {path} is too large to be a key file; expected one line of hex"
        )
    text = raw.decode("ascii", errors="replace").strip()
    if text.startswith(ROLE_KEY_PREFIX):
        role, _, key_text = text[len(ROLE_KEY_PREFIX):].partition(":")
        return role, _decode_key(key_text.encode("ascii", errors="replace"), path)
    return None, _decode_key(raw, path)


def write_role_key_file(path: str | os.PathLike[str], role: str, key: bytes) -> Path:
    """Write a role key file (mode 0600, never overwriting): ``titan-role-key:<role>:<hex>``."""
    path = Path(path)
    _write_new(path, f"{ROLE_KEY_PREFIX}{role}:{key.hex()}\n".encode("ascii"),
               exists_hint="remove it first or choose another path")
    return path


def _decode_key(raw: bytes, path: Path) -> bytes:
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"key file {path} is not text; expected {MIN_KEY_BYTES} or more bytes written as hex "
            "(`titanctl key generate` writes one)"
        ) from None
    if _HEX.match(text):
        key = bytes.fromhex(text)
    else:
        key = _decode_base64(text, path)
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"key file {path} holds a {len(key)}-byte key; "
            f"expected at least {MIN_KEY_BYTES} random "
            "bytes (`titanctl key generate` writes one)"
        )
    if len(set(key)) < _MIN_DISTINCT_BYTES:
        raise ConfigError(
            f"key file {path} holds a key that is not random (only {len(set(key))} distinct byte "
            "values); generate one with `titanctl key generate`"
        )
    return key


def _decode_base64(text: str, path: Path) -> bytes:
    compact = "".join(text.split())
    padded = compact + "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"key file {path} holds neither hex nor base64 text; expected {MIN_KEY_BYTES} or more "
            "bytes written as hex (`titanctl key generate` writes one)"
        ) from None


def generate_key_file(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Write a new cluster key (32 random bytes as 64 hex digits and a newline) to ``path``.

    The file is created with mode ``0600`` by ``os.open(O_CREAT | O_EXCL)``, so it is never
    readable by others, not even for a moment. With ``force`` an existing file is replaced
    atomically: the key is written to a new temporary file beside it, fsynced, and renamed over
    it, then the directory is fsynced.

    Returns:
        The path written.

    Raises:
        ConfigError: the file exists and ``force`` is false, or the file cannot be written (for
            example when its directory does not exist).
    """
    path = Path(path)
    data = (secrets.token_bytes(MIN_KEY_BYTES).hex() + "\n").encode("ascii")
    if not force:
        _write_new(
            path,
            data,
            exists_hint="pass --force to replace it (peers using the old key will be refused)",
        )
        return path
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_new(tmp, data, exists_hint="retry")
    try:
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"key file {path} cannot be replaced: {e.strerror}") from e
    _fsync_dir(path.parent)
    return path


def _write_new(path: Path, data: bytes, exists_hint: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"key file {path} already exists; {exists_hint}") from None
    except OSError as e:
        raise ConfigError(f"key file {path} cannot be created: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        path.unlink(missing_ok=True)
        raise ConfigError(f"key file {path} cannot be written: {e.strerror}") from e


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):  # some file systems cannot fsync a directory
            raise ConfigError(f"directory {directory} cannot be synced: {e.strerror}") from e
    finally:
        os.close(fd)


def check_bind_address(host: str, has_key: bool) -> None:
    """Refuse to bind a non-loopback address without a cluster key.

    Loopback means ``localhost``, 127.0.0.0/8 and ``::1`` (also as ``::ffff:127.x.y.z``); any
    other host, including ``0.0.0.0`` and host names, is reachable from the network.

    Raises:
        ConfigError: ``host`` is not loopback and ``has_key`` is false.
    """
    if has_key or is_loopback_host(host):
        return
    raise ConfigError(
        f"refusing to bind {host}: it is reachable from the network and no cluster key is "
        "configured; pass --key-file / TITAN_KEY_FILE (create one with `titanctl key generate`) "
        "or bind to 127.0.0.1"
    )


def check_dial_address(host: str, port: int, has_key: bool, what: str) -> None:
    """Refuse to dial a non-loopback ``host`` without a cluster key.

    The other end of such a connection is a server off loopback, which always runs with a key
    (:func:`check_bind_address`), so a keyless component would only be refused there, again and
    again; and frames off loopback without a key would travel unauthenticated. A host name that
    resolves to loopback addresses only counts as loopback (an SSH tunnel's 127.0.0.1 too).

    Raises:
        ConfigError: naming ``what`` (e.g. "the master") and the address.
    """
    if has_key or is_loopback_host(host) or _resolves_to_loopback(host):
        return
    raise ConfigError(
        f"refusing to connect to {what} at {host}:{port} without a cluster key: it is off "
        "loopback, where every component must authenticate; pass --key-file / TITAN_KEY_FILE "
        "(the cluster key, or a role key from `titanctl key derive`), or reach it through "
        "127.0.0.1 (an SSH tunnel)"
    )


def _resolves_to_loopback(host: str) -> bool:
    import socket

    try:
        found = socket.getaddrinfo(host.strip().strip("[]"), None)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(is_loopback_host(str(info[4][0])) for info in found)


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8, ::1 and IPv4-mapped loopback addresses."""
    host = host.strip().strip("[]").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
