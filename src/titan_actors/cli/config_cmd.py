"""``titanctl config``: the effective settings and where each value came from."""

from __future__ import annotations

import typer

from ..config import SETTINGS, Config, settings_options

app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@app.command("show")
@settings_options(*SETTINGS)
def show(config: Config) -> None:
    """Print every setting: value, source (flag, env, file, default) and environment key."""
    rows = config.describe()
    width = max(len(row.name) for row in rows)
    for row in rows:
        shown = SETTINGS[row.name].display(row.value)
        typer.echo(f"{row.name:<{width}}  {shown:<28} {row.source!s:<8} {row.env}")
