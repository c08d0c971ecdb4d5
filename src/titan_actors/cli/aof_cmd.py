"""``titanctl aof``: inspect and repair append-only files."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Inspect and repair append-only files.", no_args_is_help=True)


@app.command("check")
def check(path: Path = typer.Argument(..., help="The append-only file to check."),
          fix: bool = typer.Option(False, "--fix", help="Truncate a torn tail, after writing "
                                   "a backup beside the file."),
          strict: bool = typer.Option(False, "--strict", help="Count a torn tail as damage "
                                      "that loading would refuse.")) -> None:
    """Report the records, the last good offset and any damage of PATH.

    Exit status: 0 when the file is clean (or --fix truncated its torn tail), 1 when it is
    damaged: a torn tail (loading drops it; --fix truncates it after a backup), mid-file
    corruption or a bad header (loading is refused: restore from a backup).
    """
    from ..aof.check import check_aof, fix_aof
    from ..aof.replay import DamageKind

    report = check_aof(path, strict=strict)
    typer.echo(report.format())
    if report.damage is None:
        return
    if fix and report.damage.kind is DamageKind.TORN:
        backup = fix_aof(path)
        typer.echo(f"fixed: truncated {path} to {report.damage.offset} bytes; "
                   f"the original is kept in {backup}")
        return
    if fix:
        typer.echo("--fix only truncates a torn tail; this damage needs the file restored "
                   "from a backup")
    raise typer.Exit(1)
