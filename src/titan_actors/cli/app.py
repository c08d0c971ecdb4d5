"""The ``titanctl`` command line: one typer app, one module per command group.

Thin adapters only: parse, call one core function, format. No gevent is imported here; the
server subcommands import it (and monkey-patch) inside their own bodies.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from ..errors import ConnectionError_, StoreUnavailableError, TitanError
from . import (
    agents_cmd,
    aof_cmd,
    cluster_cmd,
    config_cmd,
    files_cmd,
    jobs_cmd,
    key_cmd,
    kv_cmd,
    lifecycle_cmd,
    ping_cmd,
    server_cmd,
)
from .common import EXIT_UNREACHABLE, EXIT_USAGE

app = typer.Typer(
    name="titanctl",
    help="Titan Actors: run DAGs of jobs, services and agents across a few machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(key_cmd.app, name="key")
app.add_typer(aof_cmd.app, name="aof")
app.add_typer(config_cmd.app, name="config")
app.add_typer(kv_cmd.app, name="kv")
app.command("ping")(ping_cmd.ping)
app.command("master")(server_cmd.master)
app.command("store")(server_cmd.store)
app.command("worker")(server_cmd.worker)
app.command("web")(server_cmd.web)
app.command("passwd")(server_cmd.passwd)
app.command("up")(cluster_cmd.up)


@app.command("mcp")
def _mcp() -> None:
    """Serve the MCP tools over stdio (for an MCP client such as Claude Desktop or Cursor); the
    master is found through TITAN_HOST / TITAN_PORT, credentials through TITAN_KEY_FILE."""
    from titan_sdk.mcp_server import main as serve
    serve()
app.command("down")(cluster_cmd.down)
for _name in ("submit", "rerun", "validate", "status", "runs", "jobs", "describe", "logs",
              "cancel", "retry", "workers", "prune"):
    app.command(_name)(getattr(jobs_cmd, _name))
app.command("agents")(agents_cmd.agents)
for _name in ("approve", "reject", "gates"):
    app.command(_name)(getattr(lifecycle_cmd, _name))
app.add_typer(lifecycle_cmd.services, name="services")
for _name in ("upload", "deploy", "files", "download", "workspace"):
    app.command(_name)(getattr(files_cmd, _name))


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"titanctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_show_version,
                                       is_eager=True, help="Print the version and exit.")):
    """Titan Actors: run DAGs of jobs, services and agents across a few machines."""


def main() -> None:
    """Entry point of the ``titanctl`` console script."""
    try:
        app()
    except (ConnectionError_, StoreUnavailableError) as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except TitanError as error:  # a refusal with a clear message, never a traceback
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
