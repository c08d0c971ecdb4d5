"""What the client commands share: finding the master, printing tables and JSON."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from ..config import Config
from ..errors import UsageError

MASTER_OPTION = typer.Option(None, "--master", help="HOST:PORT of the master (default: "
                             "--host/--port, TITAN_HOST/TITAN_PORT, the cluster `titanctl up` "
                             "started from the data dir, 127.0.0.1:9090).")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")

# Exit codes of titanctl, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1        # the run failed, a job is dead, a file is damaged
EXIT_USAGE = 2         # bad input or a refusal by the master (message on stderr)
EXIT_UNREACHABLE = 3   # the master could not be reached


def master_address(config: Config, master: str | None) -> tuple[str, int]:
    """Where the master is: ``--master``; else a host or port given by flag, env or file;
    else the cluster that ``titanctl up`` started from the data directory; else the defaults."""
    from ..client import parse_address

    if master:
        return parse_address(master)
    given = {config.source("host"), config.source("port")} - {"default"}
    cluster = Path(config.data_dir) / "cluster.json"
    if not given and cluster.exists():
        try:
            state = json.loads(cluster.read_text())
            return state["master"]["host"], int(state["master"]["port"])
        except (OSError, ValueError, KeyError):
            pass
    return config.host, config.port


def connect(config: Config, master: str | None, identity: str = "titanctl", *,
            admin: bool = False):
    """A MasterClient for the master (see :func:`master_address`); ``admin`` for the
    commands that control the cluster (they need the cluster key when one is configured)."""
    from ..client import MasterClient
    from ..keys import keyring_from_config
    from ..wire.roles import Role

    host, port = master_address(config, master)
    return MasterClient(host, port, keys=keyring_from_config(config),
                        timeout=config.ask_timeout, identity=identity,
                        role=Role.ADMIN if admin else Role.CLIENT)


def to_plain(value: Any) -> Any:
    """Dataclasses, enums, tuples and bytes as JSON-ready values."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_plain(value), indent=2, sort_keys=False))


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A plain aligned table (no markup interpretation of any cell)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    for row in cells:
        typer.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())


def when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def write_raw(data: bytes) -> None:
    """Job output, verbatim: bytes straight to stdout."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)
