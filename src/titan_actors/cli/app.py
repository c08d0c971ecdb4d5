"""The ``titanctl`` command line: one typer app, one module per command group.

Thin adapters only: parse, call one core function, format. No gevent is imported here; the
server subcommands import it (and monkey-patch) inside their own bodies.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from ..errors import TitanError
from . import aof_cmd, config_cmd, key_cmd, ping_cmd

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
app.command("ping")(ping_cmd.ping)


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
    except TitanError as error:  # a refusal with a clear message, never a traceback
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
