"""The console's password: a scrypt hash in ``<data dir>/web/passwd``, set by ``titanctl passwd``.

Pure ``hashlib`` and files (no Flask), so ``titanctl passwd`` stays light. The file holds one
line ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``, mode 0600, replaced atomically. A check
recomputes the hash with the stored parameters and salt and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from titan_actors.errors import ConfigError

PASSWD_FILE = "passwd"
MIN_PASSWORD_CHARS = 8
# scrypt cost: 2**15 * 8 * 128 bytes = 32 MiB of memory, about 50-100 ms per check
_N, _R, _P = 1 << 15, 8, 1
_MAXMEM = 64 << 20
_SALT_BYTES = 16
_HASH_BYTES = 32
_PREFIX = "scrypt"


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    """The stored form of ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p)
    return f"{_PREFIX}${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (from :func:`hash_password`); False for any
    other password and for a malformed ``stored`` line."""
    try:
        prefix, n, r, p, salt, digest = stored.strip().split("$")
        if prefix != _PREFIX:
            return False
        expected = bytes.fromhex(digest)
        actual = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=_MAXMEM, dklen=_HASH_BYTES)


def check_new_password(password: str) -> None:
    """Refuse a password too short to be one. Raises ConfigError saying what is needed."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")


def passwd_path(web_dir: Path) -> Path:
    return Path(web_dir) / PASSWD_FILE


def write_password(web_dir: Path, password: str) -> Path:
    """Hash ``password`` into ``<web_dir>/passwd`` (mode 0600, atomic replace). Returns the path.

    Raises ConfigError for a password that is too short or a file that cannot be written."""
    check_new_password(password)
    path = passwd_path(web_dir)
    temp = path.with_name(f".{PASSWD_FILE}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(hash_password(password) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from error
    return path


def read_password_hash(web_dir: Path) -> str | None:
    """The stored hash, or None when no password was set (read at each login, so a new
    ``titanctl passwd`` takes effect at once)."""
    try:
        return passwd_path(web_dir).read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"cannot read {passwd_path(web_dir)}: {error.strerror}") from error


def session_secret(web_dir: Path) -> bytes:
    """The key that signs the console's session cookies: 32 random bytes kept in
    ``<web_dir>/session.key`` (made on first use, mode 0600). Removing the file signs everyone
    out at the next start."""
    path = Path(web_dir) / "session.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    secret = secrets.token_bytes(32)
    temp = path.with_name(f".session.key.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret.hex() + "\n")
    os.replace(temp, path)
    return secret
