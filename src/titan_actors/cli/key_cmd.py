"""``titanctl key``: cluster key files."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config_security import generate_key_file

app = typer.Typer(help="Create cluster key files.", no_args_is_help=True)


@app.command("generate")
def generate(path: Path = typer.Argument(..., help="Where to write the key file."),
             force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Write a new random cluster key to PATH, readable by its owner only (mode 0600).

    Give the same file to every component and client with --key-file or TITAN_KEY_FILE.
    """
    written = generate_key_file(path, force=force)
    typer.echo(f"wrote a new cluster key to {written} (mode 0600)")
    typer.echo(f"use it with: --key-file {written}   or   export TITAN_KEY_FILE={written}")


@app.command("derive")
def derive(cluster_key: Path = typer.Argument(..., help="The cluster key file."),
           out: Path = typer.Argument(..., help="Where to write the role key file."),
           role: str = typer.Option(..., "--role", help="worker, client, admin or peer.")):
    """Write a key that proves one role only (give a worker host the worker key, never the
    cluster key: a worker key cannot submit work or decide gates)."""
    from ..errors import UsageError
    from ..keys import derive_role_key_file
    from ..wire.roles import Role

    choices = {r.name.lower(): r for r in Role if r is not Role.JOB}
    if role.lower() not in choices:
        raise UsageError(f"--role {role!r} is not one of {', '.join(choices)} (jobs get "
                         "per-attempt tokens from the master instead)")
    written = derive_role_key_file(cluster_key, choices[role.lower()], out)
    typer.echo(f"wrote the {role.lower()} key to {written} (mode 0600)")
