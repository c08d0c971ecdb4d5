"""The file commands: upload files and projects, deploy library scripts, list and download stored
files, and read a run's workspace on the workers."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import Config, settings_options
from ..wire.messages.files import FileArea
from .common import JSON_OPTION, MASTER_OPTION, connect, print_json, print_table, when, write_raw

_CLIENT = ("host", "port", "key_file", "ask_timeout", "data_dir")
_SCRIPTS = typer.Option(False, "--scripts", help="The script library instead of the uploads.")


def _area(scripts: bool) -> FileArea:
    return FileArea.SCRIPTS if scripts else FileArea.UPLOADS


@settings_options(*_CLIENT)
def upload(config: Config,
           path: Path = typer.Argument(..., help="A file, or a folder to upload as a project "
                                                 "archive (<name>.zip)."),
           name: str = typer.Option(None, "--name", help="The stored name (default: the file's "
                                                         "name, or <folder>.zip)."),
           json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """Upload a file or a project folder to the master."""
    from .. import transfer
    with connect(config, master) as client:
        if path.is_dir():
            info, packed = transfer.upload_folder(client, path, name)
            note = f" ({packed.files} files; skipped: {', '.join(packed.skipped)})" \
                if packed.skipped else f" ({packed.files} files)"
        else:
            info, note = transfer.upload(client, path, name), ""
    if json_out:
        print_json(info)
    else:
        typer.echo(f"uploaded {info.name}: {info.size} bytes, sha256 {info.digest[:12]}{note}")


@settings_options(*_CLIENT)
def deploy(config: Config,
           script: Path = typer.Argument(..., help="The script to add to the library."),
           name: str = typer.Option(None, "--name", help="The library name (default: the "
                                                         "file's name)."),
           master: str = MASTER_OPTION) -> None:
    """Add a script to the master's script library (YAML: script: NAME)."""
    from .. import transfer
    with connect(config, master) as client:
        info = transfer.upload(client, script, name, FileArea.SCRIPTS)
    typer.echo(f"deployed {info.name} ({info.size} bytes); use it in a pipeline as "
               f"'script: {info.name}'")


@settings_options(*_CLIENT)
def files(config: Config, scripts: bool = _SCRIPTS,
          delete: str = typer.Option(None, "--delete", help="Remove this stored file."),
          json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List the uploaded files (or the script library), or delete one."""
    from .. import transfer
    with connect(config, master) as client:
        if delete:
            typer.echo(transfer.delete_file(client, delete, _area(scripts)))
            return
        found = transfer.list_files(client, _area(scripts))
    if json_out:
        print_json(list(found))
        return
    print_table(["NAME", "SIZE", "SHA256", "STORED"],
                [[f.name, f.size, f.digest[:12], when(f.stored_at)] for f in found])


@settings_options(*_CLIENT)
def download(config: Config, name: str = typer.Argument(..., help="The stored file's name."),
             output: Path = typer.Option(None, "-o", "--output", help="Where to save it (a "
                                         "file or a folder; default: print to stdout)."),
             scripts: bool = _SCRIPTS, master: str = MASTER_OPTION) -> None:
    """Download a stored file."""
    from .. import transfer
    with connect(config, master) as client:
        if output is None:  # chunk by chunk: the file may be bigger than memory
            for chunk in transfer.iter_file(client, name, _area(scripts)):
                write_raw(chunk)
            return
        saved = transfer.download(client, name, output, _area(scripts))
    typer.echo(f"saved {saved}")


@settings_options(*_CLIENT)
def workspace(config: Config, run_id: str = typer.Argument(..., help="The run."),
              path: str = typer.Argument(None, help="A file to print (relative to the run's "
                                                    "folder); without it, list the files."),
              worker: str = typer.Option("", "--worker", help="The worker holding the file "
                                                               "(when several do)."),
              json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List the files of a run's workspace on the workers, or print one of them."""
    from .. import transfer
    with connect(config, master) as client:
        if path is not None:  # chunk by chunk, up to the size the file had when first read
            for chunk in transfer.iter_workspace_file(client, run_id, path, worker):
                write_raw(chunk)
            return
        listing = transfer.list_workspace(client, run_id)
    if json_out:
        print_json(listing)
        return
    print_table(["WORKER", "PATH", "SIZE", "MODIFIED"],
                [[e.worker, e.path, e.size, when(e.modified)] for e in listing.entries])
    for name in listing.unreachable:
        typer.echo(f"worker {name} did not answer; its files are not listed", err=True)
    for name in listing.truncated:
        typer.echo(f"worker {name} has more files than listed", err=True)
