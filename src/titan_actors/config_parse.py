"""Value parsers for settings, and the reader of the YAML config file.

Every parser takes the text a user wrote (a flag, an environment variable, a YAML scalar) and
returns the typed value, or raises :class:`~titan_actors.errors.ConfigError` whose message says what
is wrong and what would be right. The message does not name the source; the caller prefixes it
with ``--port``, ``TITAN_PORT`` or ``file:line: port``.

Units, documented once here and in the settings' help:

* durations: a number of seconds with an optional unit ``ms``, ``s``, ``m`` or ``h``
  (``30``, ``30s``, ``500ms``, ``2m``, ``1.5h``);
* sizes: a number of bytes with an optional binary unit, case-insensitive: ``k``/``kb``/``kib``
  (1024), ``m``/``mb``/``mib`` (1024**2), ``g``/``gb``/``gib`` (1024**3)
  (``1048576``, ``512k``, ``16MiB``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode

from titan_actors.errors import ConfigError
from titan_actors.sizes import format_size, parse_size  # noqa: F401 (settings use them)

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_E = TypeVar("_E", bound=StrEnum)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``word`` (difflib), or None when none is close."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def parse_int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """Return a parser of a decimal integer in ``minimum..maximum`` (no maximum when None)."""
    bounds = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise ConfigError(f"{text!r} is not an integer; expected an integer {bounds}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ConfigError(f"{value} is out of range; expected an integer {bounds}")
        return value

    return parse


_PORT = parse_int(0, 65535)


def parse_port(text: str) -> int:
    """Parse a TCP port, 0..65535; 0 asks the system for a free port."""
    return _PORT(text)


def parse_duration(minimum_exclusive: float = 0.0) -> Callable[[str], float]:
    """Return a parser of a duration in seconds, greater than ``minimum_exclusive``."""

    def parse(text: str) -> float:
        match = _DURATION.match(text)
        if match is None:
            raise ConfigError(
                f"{text!r} is not a duration; expected seconds, optionally with a unit ms, s, m "
                "or h (30, 30s, 500ms, 2m)"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        if not math.isfinite(seconds) or seconds <= minimum_exclusive:
            raise ConfigError(
                f"{text!r} is too short; expected a duration > {minimum_exclusive:g}s"
            )
        return seconds

    return parse


def parse_choice(enum: type[_E]) -> Callable[[str], _E]:
    """Return a parser of one of the values of ``enum`` (case-insensitive)."""
    allowed = [member.value for member in enum]

    def parse(text: str) -> _E:
        try:
            return enum(text.strip().lower())
        except ValueError:
            hint = closest(text.strip().lower(), allowed)
            did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
            raise ConfigError(
                f"{text!r} is not allowed{did_you_mean}; expected one of {', '.join(allowed)}"
            ) from None

    return parse


def parse_host(text: str) -> str:
    """Parse a host name or IP address to bind or dial: non-empty, no whitespace."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # accept the URL form of an IPv6 address, [::1]
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"{text!r} is not a host; expected a host name or IP address (127.0.0.1)")
    return host


def parse_optional_address(text: str) -> tuple[str, int] | None:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6) to dial, port 1..65535; an empty text means
    "none" (so ``TITAN_STORE_ADDRESS=`` unsets it)."""
    if not text.strip():
        return None
    host, _, port = text.strip().rpartition(":")
    bare_v6 = ":" in host and not host.startswith("[")  # ::1:6379 is ambiguous
    if not host.strip("[]") or bare_v6 or not port.isdigit() or any(c.isspace() for c in host):
        raise ConfigError(
            f"{text!r} is not HOST:PORT; expected a host and a port, such as 127.0.0.1:6379 "
            "([::1]:6379 for IPv6)"
        )
    if not 0 < int(port) < 65536:
        raise ConfigError(f"{text!r} has port {int(port)}; expected a port 1..65535")
    return parse_host(host), int(port)


def format_address(address: tuple[str, int]) -> str:
    """Format ``(host, port)`` the way :func:`parse_optional_address` reads it back."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_path(text: str) -> Path:
    """Parse a file system path; ``~`` is expanded. An empty text is refused."""
    if not text.strip():
        raise ConfigError("the path is empty; expected a file system path")
    return Path(text.strip()).expanduser()


def parse_optional_path(text: str) -> Path | None:
    """Parse a path, where an empty text means "none" (so ``TITAN_KEY_FILE=`` unsets it)."""
    return parse_path(text) if text.strip() else None


# -- the YAML config file -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One ``key: value`` of a config file: the raw scalar text and the line (1-based)."""

    key: str
    text: str
    line: int


def read_config_file(path: Path) -> list[FileEntry]:
    """Read a YAML config file into its entries, in file order.

    The file must hold one mapping of setting names to scalars (or nothing at all). Values are
    returned as the text written in the file, so the same parser reads a file value and an
    environment variable; a YAML null (``~``, ``null``, an empty value) is left out, meaning
    "not set in the file".

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML, is not a mapping, or
            has a duplicate key or a non-scalar value; the message names the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; check --config / TITAN_CONFIG"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from e
    try:
        root = YAML(typ="safe", pure=True).compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {e.problem or e}") from e
    if root is None:
        return []
    if not isinstance(root, MappingNode):
        raise ConfigError(
            f"{path}:{root.start_mark.line + 1}: expected a mapping of setting names to values "
            "(port: 9090)"
        )
    entries: list[FileEntry] = []
    seen: dict[str, int] = {}
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, ScalarNode):
            raise ConfigError(f"{path}:{line}: a key must be a setting name")
        key = str(key_node.value)
        if key in seen:
            raise ConfigError(f"{path}:{line}: {key} is set twice (first on line {seen[key]})")
        seen[key] = line
        if not isinstance(value_node, ScalarNode):
            raise ConfigError(
                f"{path}:{line}: {key}: expected a single value, not a list or mapping"
            )
        if str(value_node.tag).endswith(":null"):
            continue
        entries.append(FileEntry(key, str(value_node.value), line))
    return entries


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def is_off(text: str) -> bool:
    """Whether ``text`` says no: 0, false, no or off (any case, spaces around)."""
    return text.strip().lower() in _FALSE


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off, any case)."""
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"{text!r} is not a boolean; use true or false (1/0, yes/no, on/off)")


def parse_names(text: str) -> tuple[str, ...]:
    """A comma-separated list of dotted Python module names (``json,os.path``); empty: none."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"{name!r} is not a module name; use dotted names separated by "
                              "commas, e.g. json,urllib.parse")
    return names
