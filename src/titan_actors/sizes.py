"""Sizes in bytes as settings and pipelines write them: ``1048576``, ``512k``, ``16MiB``, ``2G``.

Kept apart from ``config_parse`` (which reads YAML) so that importing them costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from titan_actors.errors import ConfigError

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(minimum: int = 0, maximum: int | None = None) -> Callable[[str], int]:
    """Return a parser of a size in bytes (``1048576``, ``512k``, ``16MiB``) within bounds."""

    def parse(text: str) -> int:
        match = _SIZE.match(text)
        if match is None:
            raise ConfigError(
                f"{text!r} is not a size; expected bytes, optionally with a unit k, M or G "
                "(1048576, 512k, 16MiB)"
            )
        unit = (match.group(2) or "").lower()[:1]
        value = int(float(match.group(1)) * _SIZE_UNITS[unit])
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {format_size(maximum)}" if maximum is not None else ""
            raise ConfigError(
                f"{text!r} is out of range; expected at least {format_size(minimum)}{upper}"
            )
        return value

    return parse


def format_size(size: int) -> str:
    """Format a size in bytes the way :func:`parse_size` reads it back (``16MiB``, ``1000``)."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
