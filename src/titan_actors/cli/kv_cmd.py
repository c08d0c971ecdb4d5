"""``titanctl kv``: the store, through the master."""

from __future__ import annotations

import typer

from ..config import Config, settings_options
from .common import EXIT_FAILED, JSON_OPTION, MASTER_OPTION, connect, print_json

app = typer.Typer(help="Read and write the key-value store.", no_args_is_help=True)
_CLIENT = ("host", "port", "key_file", "ask_timeout", "data_dir")


@app.command("get")
@settings_options(*_CLIENT)
def get(config: Config, key: str = typer.Argument(...), json_out: bool = JSON_OPTION,
        master: str = MASTER_OPTION) -> None:
    """Print the value of KEY (exit 1 when it is missing)."""
    with connect(config, master) as client:
        value = client.store_get(key)
    if json_out:
        print_json({"key": key, "value": value})
    elif value is not None:
        typer.echo(value)
    if value is None:
        raise typer.Exit(EXIT_FAILED)


@app.command("put")
@settings_options(*_CLIENT)
def put(config: Config, key: str = typer.Argument(...), value: str = typer.Argument(...),
        ttl: float = typer.Option(None, "--ttl", help="Seconds until the key expires."),
        master: str = MASTER_OPTION) -> None:
    """Set KEY to VALUE (returns once the write is durable)."""
    with connect(config, master) as client:
        client.store_put(key, value, ttl)
    typer.echo("OK")


@app.command("del")
@settings_options(*_CLIENT)
def delete(config: Config, key: str = typer.Argument(...), master: str = MASTER_OPTION) -> None:
    """Delete KEY (its value and its set); prints how many were deleted."""
    with connect(config, master) as client:
        typer.echo(client.store_delete(key))


@app.command("sadd")
@settings_options(*_CLIENT)
def sadd(config: Config, key: str = typer.Argument(...), member: str = typer.Argument(...),
         master: str = MASTER_OPTION) -> None:
    """Add MEMBER to the set KEY; prints 1 when it was new, 0 when it was there."""
    with connect(config, master) as client:
        typer.echo(client.store_sadd(key, member))


@app.command("smembers")
@settings_options(*_CLIENT)
def smembers(config: Config, key: str = typer.Argument(...), json_out: bool = JSON_OPTION,
             master: str = MASTER_OPTION) -> None:
    """Print the members of the set KEY, one a line."""
    with connect(config, master) as client:
        members = client.store_members(key)
    if json_out:
        print_json({"key": key, "members": list(members)})
    else:
        for member in members:
            typer.echo(member)
