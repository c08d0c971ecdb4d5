"""Every setting of Titan Actors, declared once.

A :class:`Setting` declares a name, its ``TITAN_*`` environment variable, its default, a parser
that validates text, its help and its CLI flag. The CLI options (:func:`settings_options`), the
YAML config file, ``titanctl config show`` (:meth:`Config.describe`) and the docs all derive from
:data:`SETTINGS`. Precedence: flag > environment > config file > default.

The config file itself is the setting ``config_file`` (flag ``--config``, env ``TITAN_CONFIG``):
it is resolved from flags and the environment only, and a config file may not name another one.

Value formats (durations, sizes) are documented in :mod:`titan_actors.config_parse`; the key file
format and the bind check in :mod:`titan_actors.config_security` (both re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs

from titan_actors.config_parse import (
    format_address,
    format_size,
    parse_bool,
    parse_choice,
    parse_duration,
    parse_host,
    parse_int,
    parse_names,
    parse_optional_address,
    parse_optional_path,
    parse_path,
    parse_port,
    parse_size,
)
from titan_actors.config_security import (
    MIN_KEY_BYTES,
    check_bind_address,
    generate_key_file,
    read_key_file,
)
from titan_actors.errors import SettingDeclarationError
from titan_actors.execution.job_user import parse_job_user

# fmt: off
__all__ = [
    "MIN_KEY_BYTES", "SETTINGS", "AofFsync", "LogLevel", "SealFrames", "Setting",
    "Source", "check_bind_address", "generate_key_file",
    "make_registry", "read_key_file",
]  # settings_options, Config, SettingRow and load_config load lazily (__getattr__ below)
# fmt: on


class SealFrames(StrEnum):
    """When frames carry a MAC (see the ``seal_frames`` setting)."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


# what Python jobs commonly import: the warm executor has them imported before it forks a job
# (execution/warm.py); none of them starts a thread when imported
WARM_PRELOAD: tuple[str, ...] = (
    "argparse", "base64", "collections", "csv", "dataclasses", "datetime", "decimal",
    "functools", "glob", "hashlib", "itertools", "json", "logging", "math", "pathlib", "pickle",
    "random", "re", "shlex", "shutil", "socket", "statistics", "string", "subprocess",
    "tempfile", "textwrap", "time", "typing", "urllib.parse", "urllib.request", "uuid",
    "titan_sdk",
)


class AofFsync(StrEnum):
    """When appended records reach stable storage, as Redis's ``appendfsync``.

    * ``ALWAYS``: a barrier resolves only after an fsync that covers its record. Appends made
      while an fsync is in flight are written and fsynced together by the next one (group
      commit). Loss window: none for acknowledged records.
    * ``EVERYSEC``: the record is written to the OS at append and its barrier resolves at once; a
      background greenlet fsyncs at most once per ``everysec_interval`` (1 s) while there is
      unsynced data. Loss window: a process crash loses nothing acknowledged; a power loss or
      kernel crash loses about the last 1-2 s (one interval plus an fsync in flight).
    * ``NO``: written at append, resolved at once, fsynced only by ``close()``; the OS writes back
      when it likes (about 30 s on Linux by default). Loss window on a power loss: whatever the OS
      had not written back.
    """

    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


class LogLevel(StrEnum):
    """The least severe log level written."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Source(StrEnum):
    """Where a setting's value came from."""

    FLAG = "flag"
    ENV = "env"
    FILE = "file"
    DEFAULT = "default"


@dataclass(frozen=True)
class Setting:
    """One setting: its name, env key, default, parser, help and CLI flag.

    ``parse`` turns the text a user wrote into the value, or raises ConfigError saying what is
    wrong and what would be right. ``flag`` is derived from the name (``data_dir`` ->
    ``--data-dir``) unless given. ``in_file`` is false for settings a config file may not set.
    """

    name: str
    env: str
    default: object
    parse: Callable[[str], object] = field(repr=False)
    help: str
    choices: tuple[str, ...] | None = None
    metavar: str = ""
    flag: str = ""
    in_file: bool = True
    show: Callable[[Any], str] = field(default=str, repr=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name.startswith("_"):
            raise SettingDeclarationError(f"setting name {self.name!r} is not a public identifier")
        if not self.env.startswith("TITAN_"):
            raise SettingDeclarationError(
                f"setting {self.name}: env key {self.env!r} must start with TITAN_"
            )
        if not self.flag:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))
        if not self.metavar:
            metavar = "|".join(self.choices) if self.choices else self.name.upper()
            object.__setattr__(self, "metavar", metavar)

    def display(self, value: object) -> str:
        """Format a value of this setting for people (``16MiB``, ``30s``, ``(none)``)."""
        return "(none)" if value is None else self.show(value)


def _choice(name: str, env: str, enum: type[StrEnum], default: StrEnum, help: str) -> Setting:
    return Setting(name, env, default, parse_choice(enum), help, tuple(m.value for m in enum))


def make_registry(settings: Iterable[Setting]) -> Mapping[str, Setting]:
    """Return a read-only, ordered mapping of name -> Setting.

    Raises:
        SettingDeclarationError: two settings share a name, an env key or a flag.
    """
    registry: dict[str, Setting] = {}
    claimed: dict[str, str] = {}
    for setting in settings:
        for claim in (setting.name, setting.env, setting.flag):
            if claim in claimed:
                raise SettingDeclarationError(
                    f"setting {setting.name!r} claims {claim!r}, "
                    f"already claimed by {claimed[claim]!r}"
                )
            claimed[claim] = setting.name
        registry[setting.name] = setting
    return MappingProxyType(registry)


def _show_seconds(value: float) -> str:
    return f"{value:g}s"


_MiB = 1 << 20
_seconds = parse_duration(0.0)

# The table of settings, one entry each: name, env key, default, parser, help, then the options.
# fmt: off
SETTINGS: Mapping[str, Setting] = make_registry([
    Setting("config_file", "TITAN_CONFIG", None, parse_optional_path,
            "YAML file of settings (keys are setting names); flags and env override it.",
            metavar="PATH", flag="--config", in_file=False),
    Setting("data_dir", "TITAN_DATA_DIR", Path(platformdirs.user_state_dir("titan-actors")),
            parse_path,
            "Root of the data directories; each component uses its own subdirectory "
            "(master, store, worker-<name>, web).",
            metavar="PATH"),
    Setting("host", "TITAN_HOST", "127.0.0.1", parse_host,
            "Address to bind (servers) or of the master (clients). A non-loopback bind needs "
            "--key-file.",
            metavar="HOST"),
    Setting("port", "TITAN_PORT", 9090, parse_port,
            "Master port, 0..65535; 0 picks a free port.",
            metavar="PORT"),
    Setting("web_port", "TITAN_WEB_PORT", 5000, parse_port,
            "Web console port, 0..65535; 0 picks a free port.",
            metavar="PORT"),
    Setting("store_port", "TITAN_STORE_PORT", 6379, parse_port,
            "Port of a separate store process, 0..65535; 0 picks a free port.",
            metavar="PORT"),
    Setting("store_address", "TITAN_STORE_ADDRESS", None, parse_optional_address,
            "HOST:PORT of a separate store process (`titanctl store`); the master forwards "
            "store requests to it. Empty: the master embeds the store.",
            metavar="HOST:PORT", show=format_address),
    Setting("key_file", "TITAN_KEY_FILE", None, parse_optional_path,
            "Cluster key file (mode 0600; 32+ random bytes as hex), from `titanctl key "
            "generate`. Without it peers are not authenticated.",
            metavar="PATH"),
    Setting("tls_cert", "TITAN_TLS_CERT", None, parse_optional_path,
            "TLS certificate (PEM); enables TLS together with --tls-key.",
            metavar="PATH"),
    Setting("tls_key", "TITAN_TLS_KEY", None, parse_optional_path,
            "TLS private key (PEM) of --tls-cert.",
            metavar="PATH"),
    Setting("tls_ca", "TITAN_TLS_CA", None, parse_optional_path,
            "CA bundle (PEM) to verify peers' TLS certificates.",
            metavar="PATH"),
    _choice("seal_frames", "TITAN_SEAL_FRAMES", SealFrames, SealFrames.AUTO,
            "MAC every frame: auto = frames from peers off loopback, unless TLS is on."),
    Setting("max_frame_size", "TITAN_MAX_FRAME_SIZE", 16 * _MiB, parse_size(1024, 1024 * _MiB),
            "Largest frame accepted, 1KiB..1GiB (1048576, 512k, 16MiB).",
            metavar="SIZE", show=format_size),
    Setting("ask_timeout", "TITAN_ASK_TIMEOUT", 30.0, _seconds,
            "Default timeout of an ask, > 0 (30, 30s, 500ms, 2m).",
            metavar="SECONDS", show=_show_seconds),
    Setting("handshake_timeout", "TITAN_HANDSHAKE_TIMEOUT", 10.0, _seconds,
            "Time a peer has to complete the handshake, > 0 (10, 10s, 500ms).",
            metavar="SECONDS", show=_show_seconds),
    Setting("mailbox_size", "TITAN_MAILBOX_SIZE", 1000, parse_int(1),
            "Capacity of each actor's mailbox, >= 1.",
            metavar="COUNT"),
    _choice("aof_fsync", "TITAN_AOF_FSYNC", AofFsync, AofFsync.ALWAYS,
            "When to fsync the append-only files: always (lose nothing), everysec (lose up to "
            "1s), no (leave it to the OS)."),
    Setting("aof_rewrite_min_size", "TITAN_AOF_REWRITE_MIN_SIZE", 64 * _MiB, parse_size(0),
            "Do not rewrite an append-only file smaller than this (64MiB, 512k).",
            metavar="SIZE", show=format_size),
    Setting("aof_rewrite_percentage", "TITAN_AOF_REWRITE_PERCENTAGE", 100, parse_int(0),
            "Rewrite an append-only file once it grew by this percent since the last rewrite; "
            "0 disables automatic rewrites.",
            metavar="PERCENT"),
    Setting("persistence_retry", "TITAN_PERSISTENCE_RETRY", 1.0, _seconds,
            "After an append-only file could not be written (a full disk), how often the "
            "master or store tries to write its state anew; changes are refused until then.",
            metavar="SECONDS", show=_show_seconds),
    _choice("log_level", "TITAN_LOG_LEVEL", LogLevel, LogLevel.INFO,
            "Least severe log level written."),
    Setting("heartbeat_interval", "TITAN_HEARTBEAT_INTERVAL", 1.0, _seconds,
            "How often workers report to the master (1s).",
            metavar="SECONDS", show=_show_seconds),
    Setting("lease", "TITAN_LEASE", 10.0, _seconds,
            "A worker silent for this long is lost and its jobs run elsewhere (10s).",
            metavar="SECONDS", show=_show_seconds),
    Setting("drain_timeout", "TITAN_DRAIN_TIMEOUT", 30.0, _seconds,
            "On SIGTERM a worker lets running jobs finish this long, then hands them back.",
            metavar="SECONDS", show=_show_seconds),
    Setting("burst_max_per_host", "TITAN_BURST_MAX_PER_HOST", 4, parse_int(0),
            "Most burst workers the scaler starts on one host when a worker is saturated and "
            "jobs queue for its tags; 0 disables bursting.",
            metavar="COUNT"),
    Setting("idle_timeout", "TITAN_IDLE_TIMEOUT", 45.0, _seconds,
            "A burst or --ephemeral worker idle this long drains and exits (45s); permanent "
            "workers are never retired.",
            metavar="SECONDS", show=_show_seconds),
    Setting("burst_cooldown", "TITAN_BURST_COOLDOWN", 2.0, _seconds,
            "Least time between two burst workers started on the same host (2s).",
            metavar="SECONDS", show=_show_seconds),
    Setting("warm_executor", "TITAN_WARM_EXECUTOR", True, parse_bool,
            "Start Python jobs by forking a warm interpreter that has the common modules "
            "imported (a job opts out with TITAN_WARM=0 in its env or `warm: false`).",
            metavar="BOOL"),
    Setting("warm_preload", "TITAN_WARM_PRELOAD", WARM_PRELOAD, parse_names,
            "Modules the warm executor imports before it forks jobs, comma-separated; none "
            "may start a thread when imported (a module that fails to import is skipped).",
            metavar="MODULES", show=",".join),
    Setting("job_user", "TITAN_JOB_USER", "auto", parse_job_user,
            "User the worker's jobs run as: auto (nobody when the worker runs as root, else "
            "the worker's own user), a user name or a uid; root is unsafe (jobs could read "
            "the cluster key). `titanctl up` gives its workers the invoking user.",
            metavar="USER"),
    Setting("log_cap", "TITAN_LOG_CAP", 64 * _MiB, parse_size(1024),
            "Largest output kept per job; the rest is dropped with a marker (64MiB).",
            metavar="SIZE", show=format_size),
    Setting("retention_age", "TITAN_RETENTION_AGE", 7 * 86400.0, _seconds,
            "Finished runs older than this are pruned with their logs (168h: 7 days).",
            metavar="SECONDS", show=_show_seconds),
    Setting("retention_runs", "TITAN_RETENTION_RUNS", 1000, parse_int(1),
            "At most this many finished runs are kept; older ones are pruned.",
            metavar="COUNT"),
    Setting("max_upload_size", "TITAN_MAX_UPLOAD_SIZE", 4 * 1024 * _MiB, parse_size(1024),
            "Largest file the master stores (uploads, projects, artifacts; 4GiB).",
            metavar="SIZE", show=format_size),
    Setting("archive_max_size", "TITAN_ARCHIVE_MAX_SIZE", 1024 * _MiB, parse_size(1024),
            "Largest unpacked project a worker accepts for an archive job (1GiB).",
            metavar="SIZE", show=format_size),
    Setting("archive_max_entries", "TITAN_ARCHIVE_MAX_ENTRIES", 20_000, parse_int(1),
            "Most files a project archive may hold.", metavar="COUNT"),
])
# fmt: on


def __getattr__(name: str) -> Any:
    # settings_options lives in config_cli, loaded on first use, so that importing config (as the
    # servers and the SDK do) does not import typer and rich.
    if name == "settings_options":
        from titan_actors.config_cli import settings_options

        return settings_options
    if name in ("Config", "SettingRow", "load_config"):
        # config_load needs SETTINGS from here; loading it on first use keeps the import acyclic
        from titan_actors import config_load

        return getattr(config_load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
