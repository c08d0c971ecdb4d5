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
