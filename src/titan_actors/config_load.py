"""Resolving settings: flags, environment, config file and defaults into one :class:`Config`.

The declarations live in :mod:`titan_actors.config`; import ``Config`` and ``load_config`` from
there (this module is loaded on first use).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from titan_actors.config import SETTINGS, Setting, Source
from titan_actors.config_parse import FileEntry, closest, read_config_file
from titan_actors.errors import ConfigError


class SettingRow(NamedTuple):
    """One row of ``titanctl config show``."""

    name: str
    value: object
    source: Source
    env: str
    help: str


class Config:
    """The resolved settings: immutable, read by attribute (``cfg.port``).

    Built by :func:`load_config`; :meth:`source` says where each value came from.
    """

    __slots__ = ("_sources", "_values")
    _values: Mapping[str, object]
    _sources: Mapping[str, Source]

    def __init__(self, values: Mapping[str, object], sources: Mapping[str, Source]) -> None:
        if set(values) != set(SETTINGS) or set(sources) != set(SETTINGS):
            raise ConfigError("a Config needs a value and a source for every setting")
        object.__setattr__(self, "_values", MappingProxyType({n: values[n] for n in SETTINGS}))
        object.__setattr__(
            self, "_sources", MappingProxyType({n: Source(sources[n]) for n in SETTINGS})
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(_unknown(name, "Config has no setting")) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Config is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Config is immutable; cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return dict(self._values) == dict(other._values) and dict(self._sources) == dict(
            other._sources
        )

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __reduce__(self) -> tuple[type[Config], tuple[dict[str, object], dict[str, Source]]]:
        # copy and pickle would otherwise restore the slots through the refused __setattr__
        return Config, (dict(self._values), dict(self._sources))

    def __repr__(self) -> str:
        changed = ", ".join(
            f"{n}={v!r}" for n, v in self._values.items() if self._sources[n] != Source.DEFAULT
        )
        return f"Config({changed})"

    def source(self, name: str) -> Source:
        """Return where setting ``name`` came from: flag, env, file or default."""
        if name not in self._sources:
            raise ConfigError(_unknown(name, "unknown setting"))
        return self._sources[name]

    def as_dict(self) -> dict[str, object]:
        """Return the values as a new dict, in declaration order."""
        return dict(self._values)

    def describe(self) -> list[SettingRow]:
        """Return one row per setting (name, value, source, env key, help), in declaration order."""
        return [
            SettingRow(name, self._values[name], self._sources[name], setting.env, setting.help)
            for name, setting in SETTINGS.items()
        ]


def _unknown(name: str, what: str) -> str:
    hint = closest(name, SETTINGS)
    return f"{what} {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")


def load_config(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] = os.environ,
    file: str | os.PathLike[str] | None = None,
) -> Config:
    """Resolve every setting: flag > env > config file > default.

    Args:
        flags: setting name -> value given on the command line; None means "not given". A str is
            parsed like an env value; any other value is formatted with ``str`` and parsed, so it
            is validated the same way.
        env: the environment; only the settings' ``TITAN_*`` keys are read.
        file: the config file; when None, the ``config_file`` setting (``--config`` /
            ``TITAN_CONFIG``) names it, and without one no file is read. A file given here
            overrides ``flags["config_file"]`` and counts as a flag. A relative path in the
            file is relative to the file's directory.

    Raises:
        ConfigError: an unknown flag name, an unknown key in the file, or an invalid value. The
            message lists every problem, each naming its flag, env key or file:line and key, and
            what would be right.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    for name in flags:
        if name not in SETTINGS:
            raise ConfigError(_unknown(name, "unknown setting"))
    if file is not None:
        flags["config_file"] = file
    values: dict[str, object] = {}
    sources: dict[str, Source] = {}
    errors: list[str] = []
    config_file = SETTINGS["config_file"]
    _resolve(config_file, _given(config_file, flags, env), values, sources, errors)
    if errors:
        raise ConfigError("\n".join(errors))
    path = values["config_file"]
    entries = _file_entries(path) if isinstance(path, Path) else {}
    for setting in SETTINGS.values():
        if setting is not config_file:
            given = _given(setting, flags, env, path, entries)
            _resolve(setting, given, values, sources, errors)
            value = values.get(setting.name)
            if sources.get(setting.name) is Source.FILE and isinstance(value, Path):
                values[setting.name] = path.parent / value  # no-op for an absolute path
    if not errors:
        errors = _check_combinations(values)
    if errors:
        raise ConfigError("\n".join(errors))
    return Config(values, sources)


def _given(
    setting: Setting,
    flags: Mapping[str, object],
    env: Mapping[str, str],
    path: object = None,
    entries: Mapping[str, FileEntry] | None = None,
) -> tuple[str, Source, str] | None:
    """Return (text, source, where it was given) for the highest layer that sets ``setting``."""
    if setting.name in flags:
        raw = flags[setting.name]
        text = os.fspath(raw) if isinstance(raw, os.PathLike) else str(raw)
        return text, Source.FLAG, setting.flag
    if setting.env in env:
        return env[setting.env], Source.ENV, setting.env
    if entries and setting.name in entries:
        entry = entries[setting.name]
        return entry.text, Source.FILE, f"{path}:{entry.line}: {setting.name}"
    return None


def _resolve(
    setting: Setting,
    given: tuple[str, Source, str] | None,
    values: dict[str, object],
    sources: dict[str, Source],
    errors: list[str],
) -> None:
    if given is None:
        values[setting.name], sources[setting.name] = setting.default, Source.DEFAULT
        return
    text, source, where = given
    try:
        values[setting.name], sources[setting.name] = setting.parse(text), source
    except ConfigError as e:
        errors.append(f"{where}: {e}")


def _file_entries(path: Path) -> dict[str, FileEntry]:
    entries: dict[str, FileEntry] = {}
    problems: list[str] = []
    for entry in read_config_file(path):
        setting = SETTINGS.get(entry.key)
        if setting is None:
            hint = closest(entry.key, [s.name for s in SETTINGS.values() if s.in_file])
            known = (
                f"did you mean {hint!r}?" if hint else "see `titanctl config show` for the settings"
            )
            problems.append(f"{path}:{entry.line}: unknown setting {entry.key!r}; {known}")
        elif not setting.in_file:
            problems.append(
                f"{path}:{entry.line}: {entry.key} cannot be set in a config file; "
                f"use {setting.flag} or {setting.env}"
            )
        else:
            entries[entry.key] = entry
    if problems:
        raise ConfigError("\n".join(problems))
    return entries


def _check_combinations(values: Mapping[str, object]) -> list[str]:
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        return ["tls_cert and tls_key go together: set both (--tls-cert and --tls-key) or neither"]
    return []


