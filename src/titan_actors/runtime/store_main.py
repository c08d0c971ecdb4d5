"""``titanctl store``: a separate store process (the store actor, its server, its data directory).

The master reaches it as ``Role.PEER`` (``store_address``) and forwards its clients' store
requests to it; clients never talk to it directly. Keys, TLS, frame sealing and the bind check
follow the master's rules: without a cluster key it listens on loopback only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ..config import Config, Source

log = logging.getLogger("titan.store")


def store_options(config: Config, directory: Path):
    """The StoreOptions of a store over ``directory``, embedded or separate.

    The store's fsync policy is ``everysec`` (Redis's default) unless ``aof_fsync`` is given
    explicitly (flag, env or file): the setting's own default, ``always``, is the master's.
    """
    from ..actors.store import StoreOptions

    fsync = "everysec" if config.source("aof_fsync") is Source.DEFAULT else str(config.aof_fsync)
    return StoreOptions(directory, aof_fsync=fsync,
                        rewrite_min_size=config.aof_rewrite_min_size,
                        rewrite_percentage=config.aof_rewrite_percentage,
                        persistence_retry=config.persistence_retry)


def run_store(config: Config, ready_file: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT. Returns the process exit code. Raises ConfigError
    (before anything starts, the data directory untouched) for a bind off loopback without a
    key."""
    from ..config_security import check_bind_address
    check_bind_address(config.host, config.key_file is not None)
    from .common import patch
    patch()
    import gevent
    from gevent.event import Event

    from ..actors.store import StoreActor
    from ..actors.system import ActorSystem
    from ..datadir import DataDirLock, component_dir
    from ..keys import keyring_from_config
    from ..wire.roles import Role
    from ..wire.server import ActorServer
    from ..wire.tls import server_context
    from .common import on_signals, setup_logging, write_ready_file

    setup_logging(config.log_level)
    directory = component_dir(Path(config.data_dir), "store")
    with contextlib.ExitStack() as stack:
        stack.enter_context(DataDirLock(directory))
        keys = keyring_from_config(config)
        tls = server_context(config.tls_cert, config.tls_key, config.tls_ca) \
            if config.tls_cert else None
        server = ActorServer(None, host=config.host, port=config.store_port, identity="store",
                             port_option="--store-port",
                             keys=keys, seal_frames=config.seal_frames, tls=tls,
                             max_payload=config.max_frame_size,
                             handshake_timeout=config.handshake_timeout,
                             # the master and operators; clients go through the master
                             allowed_roles=frozenset({Role.PEER, Role.ADMIN}))
        host, port = server.listen()
        system = ActorSystem()
        store = system.spawn(StoreActor, store_options(config, directory), name="store")
        server.target = store
        server.start()
        stopping = Event()
        on_signals(lambda signum: stopping.set())
        # a store actor that dies (a crash its policy does not survive) ends the process
        gevent.spawn(lambda: (store.join(None), stopping.set()))
        log.info("store listening on %s:%d (data in %s)", host, port, directory)
        write_ready_file(ready_file, {"pid": os.getpid(), "host": host, "port": port})
        stopping.wait()
        died = store.crashed
        log.log(logging.ERROR if died else logging.INFO,
                "store stopping%s", " because the store actor died" if died else "")
        server.stop(timeout=5)
        system.stop_all(timeout=10)
    return 1 if died else 0
