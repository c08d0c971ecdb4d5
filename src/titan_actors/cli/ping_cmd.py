"""``titanctl ping``: reach a Titan server and report who answered and how fast."""

from __future__ import annotations

import time

import typer

from ..config import Config, settings_options
from ..errors import UsageError


def parse_master(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6). Raises UsageError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--master {text!r} is not HOST:PORT (for example 127.0.0.1:9090)")
    return host.strip("[]"), int(port)


@settings_options("host", "port", "key_file", "handshake_timeout")
def ping(config: Config,
         master: str = typer.Option(None, "--master", help="HOST:PORT of the master "
                                    "(default: --host/--port, TITAN_HOST/TITAN_PORT).")) -> None:
    """Connect, authenticate and exchange one Ping with the master.

    Exit status: 0 when the master answered and all is well; 1 when it answered but reports
    degraded persistence (its own or its store's: a full disk, a store it cannot reach),
    printed on stderr; 3 when it could not be reached.
    """
    from ..keys import keyring_from_config
    from ..wire.blocking import BlockingClient
    from ..wire.messages.control import Ping

    host, port = parse_master(master) if master else (config.host, config.port)
    started = time.perf_counter()
    with BlockingClient(host, port, identity="titanctl", keys=keyring_from_config(config),
                        timeout=config.handshake_timeout) as client:
        pong = client.ask(Ping(b"titanctl"))
    elapsed = (time.perf_counter() - started) * 1000
    typer.echo(f"{pong.identity} at {host}:{port} answered in {elapsed:.1f} ms "
               f"(titan-actors {pong.software})")
    if pong.degraded:
        typer.echo(f"DEGRADED: {pong.degraded}", err=True)
        raise typer.Exit(1)
