"""``titanctl master`` and ``titanctl worker``: the server processes (they monkey-patch)."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from ..config import Config, settings_options

_SERVER_SETTINGS = ("data_dir", "host", "port", "key_file", "tls_cert", "tls_key", "tls_ca",
                    "seal_frames", "max_frame_size", "handshake_timeout", "aof_fsync",
                    "heartbeat_interval", "lease", "log_cap", "log_level", "ask_timeout",
                    "retention_age", "retention_runs")


@settings_options(*_SERVER_SETTINGS)
def master(config: Config,
           ready_file: Path = typer.Option(None, "--ready-file", help="Write {pid, host, "
                                           "port} as JSON here once listening.")) -> None:
    """Run the master in the foreground until SIGTERM or Ctrl-C."""
    from ..runtime.master_main import run_master
    raise typer.Exit(run_master(config, ready_file))


@settings_options("data_dir", "host", "port", "key_file", "heartbeat_interval", "drain_timeout",
                  "log_cap", "log_level", "ask_timeout", "retention_age")
def worker(config: Config,
           master: str = typer.Option(None, "--master", help="HOST:PORT of the master "
                                      "(default: --host/--port, TITAN_HOST/TITAN_PORT)."),
           name: str = typer.Option(None, "--name", help="This worker's name (default: the "
                                    "host name); jobs can be pinned to it."),
           tags: str = typer.Option(None, "--tags", help="Comma-separated tags, replacing the "
                                    "default (GENERAL, plus GPU when one is found)."),
           slots: int = typer.Option(None, "--slots", min=1, help="Jobs run at once "
                                     "(default: the CPU count)."),
           ephemeral: bool = typer.Option(False, "--ephemeral", help="May be retired when "
                                          "idle."),
           ready_file: Path = typer.Option(None, "--ready-file", help="Write {pid, name} as "
                                           "JSON here once started.")) -> None:
    """Run a worker in the foreground; SIGTERM drains it (running jobs finish or go back)."""
    from ..client import parse_address
    from ..runtime.worker_main import run_worker

    address = parse_address(master) if master else (config.host, config.port)
    tag_set = tuple(t.strip() for t in tags.split(",") if t.strip()) if tags else None
    raise typer.Exit(run_worker(config, address, name or socket.gethostname(), tag_set, slots,
                                ephemeral, ready_file))
