"""``titanctl master``: the master process (master actor, its server, its data directory)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ..config import Config

log = logging.getLogger("titan.master")


def run_master(config: Config, ready_file: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT. Returns the process exit code."""
    from .common import patch
    patch()
    import gevent
    from gevent.event import Event

    from ..actors.master import CheckToken, MasterActor, MasterOptions, PeerGone
    from ..actors.store import StoreActor, StoreOptions
    from ..actors.system import ActorSystem
    from ..datadir import DataDirLock, component_dir
    from ..keys import keyring_from_config
    from ..wire.server import ActorServer
    from ..wire.tls import server_context
    from .common import on_signals, setup_logging, write_ready_file

    setup_logging(config.log_level)
    directory = component_dir(Path(config.data_dir), "master")
    with contextlib.ExitStack() as stack:
        stack.enter_context(DataDirLock(directory))
        keys = keyring_from_config(config)
        tls = server_context(config.tls_cert, config.tls_key, config.tls_ca) \
            if config.tls_cert else None
        system = ActorSystem()
        server = ActorServer(None, host=config.host, port=config.port, identity="master",
                             keys=keys, seal_frames=config.seal_frames, tls=tls,
                             max_payload=config.max_frame_size,
                             handshake_timeout=config.handshake_timeout)
        host, port = server.listen()
        options = MasterOptions(directory, "master", (host, port), str(config.aof_fsync),
                                config.heartbeat_interval, config.lease, config.log_cap,
                                retention_age=config.retention_age,
                                retention_runs=config.retention_runs)
        store_dir = component_dir(Path(config.data_dir), "store")
        stack.enter_context(DataDirLock(store_dir))
        store = system.spawn(StoreActor, StoreOptions(store_dir), name="store")
        master = system.spawn(MasterActor, options, keys=keys, name="master", store=store)
        server.target = master
        # a job token is good only while its attempt runs
        server.token_valid = lambda claims: master.ask(CheckToken(claims), timeout=10)
        server.on_disconnect = lambda endpoint: master.tell(PeerGone(endpoint.remote))
        server.start()
        stopping = Event()
        on_signals(lambda signum: stopping.set())
        # a master actor that dies (a crash its policy does not survive) ends the process
        gevent.spawn(lambda: (master.join(None), stopping.set()))
        log.info("master listening on %s:%d (data in %s)", host, port, directory)
        write_ready_file(ready_file, {"pid": os.getpid(), "host": host, "port": port})
        stopping.wait()
        died = master.crashed
        log.log(logging.ERROR if died else logging.INFO,
                "master stopping%s", " because the master actor died" if died else "")
        server.stop(timeout=5)
        system.stop_all(timeout=10)
    return 1 if died else 0
