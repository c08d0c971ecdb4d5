"""``titanctl web``: the web console process (the Flask app on gevent's WSGI server, and its
event hub following the master).

It monkey-patches first (as the other servers do), so the blocking ``MasterClient`` it uses is
cooperative: a page waiting for the master never holds up the others. It binds to loopback
unless a cluster key is configured (then every page needs a login), locks its data directory
``<data dir>/web`` (password hash, session key, launched workers), writes a ready file once
listening, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from ..config import Config

log = logging.getLogger("titan.web")


def run_web(config: Config, master: tuple[str, int], ready_file: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT. Returns the process exit code."""
    from .common import patch
    patch()
    from gevent.event import Event
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer

    from titan_web.app import ConsoleOptions, console_of, create_app
    from titan_web.passwords import session_secret

    from ..config import check_bind_address
    from ..config_parse import format_address
    from ..config_security import check_dial_address, is_loopback_host
    from ..datadir import DataDirLock, component_dir
    from ..errors import ConfigError
    from ..keys import check_roles, keyring_from_config
    from ..wire.roles import Role
    from .common import on_signals, setup_logging, write_ready_file

    setup_logging(config.log_level)
    if str(config.log_level) != "debug":  # one line per request (and per live refresh)
        logging.getLogger("titan.web.access").setLevel(logging.WARNING)
    check_bind_address(config.host, config.key_file is not None)
    check_dial_address(master[0], master[1], config.key_file is not None, "the master")
    web_dir = component_dir(Path(config.data_dir), "web")
    with DataDirLock(web_dir):
        keys = keyring_from_config(config)
        check_roles(keys, config.key_file, (Role.CLIENT, Role.ADMIN), "the web console")
        connect = master_connector(config, master, keys)
        options = ConsoleOptions(
            web_dir=web_dir, master=master, auth_required=keys is not None,
            session_secret=session_secret(web_dir), admin_secret=_admin_secret(keys),
            loopback_only=is_loopback_host(config.host), key_file=config.key_file,
            data_root=Path(config.data_dir),
            can_launch=keys is None or keys.is_cluster_key)
        app = create_app(options, connect)
        server = WSGIServer((config.host, config.web_port), app, spawn=Pool(512),
                            log=logging.getLogger("titan.web.access"),
                            error_log=logging.getLogger("titan.web.errors"))
        try:
            server.init_socket()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(f"the web console's port {config.web_port} is already in use "
                                  f"on {config.host}; pick another with --web-port (0: any "
                                  "free port)") from None
            raise ConfigError(f"the web console cannot listen on {config.host}:"
                              f"{config.web_port}: {error.strerror}") from error
        host, port = server.address[:2]
        hub = console_of(app).hub.start()
        server.start()
        stopping = Event()
        on_signals(lambda signum: stopping.set())
        url = f"http://{format_address((host, port))}/"
        log.info("web console on %s (master %s, %s)", url, format_address(master),
                 "sign-in required" if options.auth_required else "no sign-in: loopback only")
        write_ready_file(ready_file, {"pid": os.getpid(), "host": host, "port": port,
                                      "url": url})
        stopping.wait()
        log.info("web console stopping")
        hub.stop(timeout=2)
        server.stop(timeout=3)
        console_of(app).pool.close()
    return 0


def master_connector(config: Config, master: tuple[str, int], keys):
    """A function that opens a new client connection to the master with the console's own
    credentials: the client role (the cluster key or a client key), or the admin role when
    the key file holds the admin key."""
    from ..client import MasterClient
    from ..errors import HandshakeError
    from ..wire.roles import Role

    role = Role.CLIENT
    if keys is not None:
        try:
            keys.key_for(Role.CLIENT)
        except HandshakeError:
            role = Role.ADMIN
    host, port = master

    def connect() -> MasterClient:
        return MasterClient(host, port, keys=keys, timeout=config.ask_timeout,
                            identity="web-console", role=role)
    return connect


def _admin_secret(keys) -> bytes | None:
    """The admin role key (accepted at the console's login), when the key file yields it."""
    from ..errors import HandshakeError
    from ..wire.roles import Role

    if keys is None:
        return None
    try:
        return keys.key_for(Role.ADMIN)
    except HandshakeError:
        return None
