"""``titanctl master``, ``store``, ``worker`` and ``web``: the server processes (they
monkey-patch); ``titanctl passwd``: the web console's password."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from ..config import Config, settings_options

_SERVER_SETTINGS = ("data_dir", "host", "port", "key_file", "tls_cert", "tls_key", "tls_ca",
                    "seal_frames", "max_frame_size", "handshake_timeout", "aof_fsync",
                    "heartbeat_interval", "lease", "log_cap", "log_level", "ask_timeout",
                    "retention_age", "retention_runs", "store_address", "max_upload_size",
                    "burst_max_per_host", "idle_timeout", "burst_cooldown",
                    "aof_rewrite_min_size", "aof_rewrite_percentage", "persistence_retry")
_STORE_SETTINGS = ("data_dir", "host", "store_port", "key_file", "tls_cert", "tls_key", "tls_ca",
                   "seal_frames", "max_frame_size", "handshake_timeout", "aof_fsync",
                   "aof_rewrite_min_size", "aof_rewrite_percentage", "persistence_retry",
                   "log_level")


@settings_options(*_SERVER_SETTINGS)
def master(config: Config,
           ready_file: Path = typer.Option(None, "--ready-file", help="Write {pid, host, "
                                           "port} as JSON here once listening.")) -> None:
    """Run the master in the foreground until SIGTERM or Ctrl-C."""
    from ..runtime.master_main import run_master
    raise typer.Exit(run_master(config, ready_file))


@settings_options(*_STORE_SETTINGS)
def store(config: Config,
          ready_file: Path = typer.Option(None, "--ready-file", help="Write {pid, host, "
                                          "port} as JSON here once listening.")) -> None:
    """Run a separate store process in the foreground until SIGTERM or Ctrl-C (port
    --store-port, default 6379; its fsync policy is everysec unless --aof-fsync is given). Point
    the master at it with --store-address HOST:PORT."""
    from ..runtime.store_main import run_store
    raise typer.Exit(run_store(config, ready_file))


@settings_options("data_dir", "host", "port", "key_file", "heartbeat_interval", "drain_timeout",
                  "log_cap", "log_level", "ask_timeout", "retention_age", "archive_max_size",
                  "archive_max_entries", "warm_executor", "warm_preload", "job_user")
def worker(config: Config,
           master: str = typer.Option(None, "--master", help="HOST:PORT of the master "
                                      "(default: --host/--port, TITAN_HOST/TITAN_PORT)."),
           name: str = typer.Option(None, "--name", help="This worker's name (default: the "
                                    "host name); jobs can be pinned to it."),
           tags: str = typer.Option(None, "--tags", help="Comma-separated tags, replacing the "
                                    "default (GENERAL, plus GPU when one is found)."),
           slots: int = typer.Option(None, "--slots", min=1, help="Jobs run at once "
                                     "(default: the CPU count)."),
           ephemeral: bool = typer.Option(False, "--ephemeral", help="Retired (drained and "
                                          "stopped) once idle for --idle-timeout of the "
                                          "master; without it a worker is permanent."),
           burst_of: str = typer.Option("", "--burst-of", hidden=True, help="This is a burst "
                                        "worker that worker started (set by the worker)."),
           ready_file: Path = typer.Option(None, "--ready-file", help="Write {pid, name} as "
                                           "JSON here once started.")) -> None:
    """Run a worker in the foreground; SIGTERM drains it (running jobs finish or go back).

    Jobs run as --job-user: by default nobody when the worker runs as root, else the worker's
    own user."""
    from ..client import parse_address
    from ..runtime.worker_main import run_worker

    address = parse_address(master) if master else (config.host, config.port)
    tag_set = tuple(t.strip() for t in tags.split(",") if t.strip()) if tags else None
    raise typer.Exit(run_worker(config, address, name or socket.gethostname(), tag_set, slots,
                                ephemeral or bool(burst_of), ready_file, burst_of))


@settings_options("data_dir", "host", "web_port", "port", "key_file", "log_level",
                  "ask_timeout")
def web(config: Config,
        master: str = typer.Option(None, "--master", help="HOST:PORT of the master (default: "
                                   "the cluster `titanctl up` started from the data dir, else "
                                   "127.0.0.1 and --port)."),
        ready_file: Path = typer.Option(None, "--ready-file", help="Write {pid, host, port, "
                                        "url} as JSON here once listening.")) -> None:
    """Run the web console in the foreground until SIGTERM or Ctrl-C (--host is the address it
    listens on: loopback unless a cluster key is configured, and then every page needs a
    sign-in: the password from `titanctl passwd`, or the admin key)."""
    from ..runtime.web_main import run_web
    raise typer.Exit(run_web(config, _master_of(config, master), ready_file))


def _master_of(config: Config, master: str | None) -> tuple[str, int]:
    import json

    from ..client import parse_address
    from ..config import Source

    if master:
        return parse_address(master)
    cluster = Path(config.data_dir) / "cluster.json"
    if config.source("port") is Source.DEFAULT and cluster.exists():
        try:
            state = json.loads(cluster.read_text())
            return state["master"]["host"], int(state["master"]["port"])
        except (OSError, ValueError, KeyError):
            pass
    return "127.0.0.1", config.port


@settings_options("data_dir")
def passwd(config: Config,
           stdin: bool = typer.Option(False, "--stdin", help="Read the password from the "
                                      "first line of standard input instead of prompting.")
           ) -> None:
    """Set the web console's password (stored as a scrypt hash in <data dir>/web/passwd). The
    console asks for it when a cluster key is configured; a running console uses the new one
    at the next sign-in."""
    import hmac
    import sys

    from titan_web.passwords import check_new_password, write_password

    from ..datadir import component_dir
    from ..errors import UsageError

    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New console password", hide_input=True)
        check_new_password(password)
        again = typer.prompt("The same again", hide_input=True)
        if not hmac.compare_digest(again.encode(), password.encode()):
            raise UsageError("the two passwords differ; nothing was changed")
    path = write_password(component_dir(Path(config.data_dir), "web"), password)
    typer.echo(f"the console's password is set ({path})")
