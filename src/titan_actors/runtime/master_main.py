"""``titanctl master``: the master process (master actor, its server, its data directory)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ..config import Config

log = logging.getLogger("titan.master")


def run_master(config: Config, ready_file: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT. Returns the process exit code. Raises ConfigError
    (before anything starts, the data directory untouched) for a bind or a store off loopback
    without a key."""
    from ..config_security import check_bind_address, check_dial_address
    check_bind_address(config.host, config.key_file is not None)
    if config.store_address is not None:
        check_dial_address(*config.store_address, config.key_file is not None, "the store")
    from .common import patch
    patch()
    import gevent
    from gevent.event import Event

    from ..actors.master import CheckToken, MasterActor, MasterOptions, PeerGone
    from ..actors.scaler import ScalerActor
    from ..actors.supervision import Supervision
    from ..actors.system import ActorSystem
    from ..datadir import DataDirLock, component_dir
    from ..keys import keyring_from_config
    from ..wire.server import ActorServer
    from ..wire.tls import server_context
    from .common import on_signals, setup_logging, write_ready_file

    setup_logging(config.log_level)
    stopping = Event()
    link_failures: list[BaseException] = []  # the store link crashed: stop, and say so
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
                                retention_runs=config.retention_runs,
                                max_upload_size=config.max_upload_size,
                                aof_rewrite_min_size=config.aof_rewrite_min_size,
                                aof_rewrite_percentage=config.aof_rewrite_percentage,
                                persistence_retry=config.persistence_retry)
        store = _store(config, system, keys, stack,
                       lambda error: (link_failures.append(error), stopping.set()))
        master = system.spawn(MasterActor, options, keys=keys, name="master", store=store)
        # a scaler that crashes starts afresh (it forgets only spawns in flight and idle times)
        system.spawn(ScalerActor, scaler_options(config), master, name="scaler",
                     supervision=Supervision.restart(3, 60.0))
        server.target = master
        # a job token is good only while its attempt runs
        server.token_valid = lambda claims: master.ask(CheckToken(claims), timeout=10)
        server.on_disconnect = lambda endpoint: master.tell(PeerGone(endpoint.remote))
        server.start()
        on_signals(lambda signum: stopping.set())
        # a master actor that dies (a crash its policy does not survive) ends the process
        gevent.spawn(lambda: (master.join(None), stopping.set()))
        log.info("master listening on %s:%d (data in %s)", host, port, directory)
        write_ready_file(ready_file, {"pid": os.getpid(), "host": host, "port": port})
        stopping.wait()
        died = master.crashed or bool(link_failures)
        why = " because the master actor died" if master.crashed else \
            " because the link to the store crashed" if link_failures else ""
        log.log(logging.ERROR if died else logging.INFO, "master stopping%s", why)
        server.stop(timeout=5)
        system.stop_all(timeout=10)
    return 1 if died else 0


def scaler_options(config: Config):
    """The scaler's options from the settings: it looks every heartbeat interval."""
    from ..actors.scaler import ScalerOptions
    from ..master.scaling import ScalingPolicy

    policy = ScalingPolicy(max_per_host=config.burst_max_per_host,
                           idle_timeout=config.idle_timeout, cooldown=config.burst_cooldown)
    return ScalerOptions(interval=config.heartbeat_interval, policy=policy)


def _store(config: Config, system, keys, stack: contextlib.ExitStack, on_failure):
    """The master's store: the store actor embedded here over its own locked data directory,
    or, with ``store_address``, a link to a ``titanctl store`` process (closed by ``stack``;
    ``on_failure(error)`` is called if the link itself crashes)."""
    from ..datadir import DataDirLock, component_dir
    from .store_main import store_options

    if config.store_address is None:
        from ..actors.store import StoreActor

        store_dir = component_dir(Path(config.data_dir), "store")
        stack.enter_context(DataDirLock(store_dir))
        return system.spawn(StoreActor, store_options(config, store_dir), name="store")
    from ..actors.store_link import StoreLink, StoreLinkOptions
    from ..wire.tls import client_context

    tls = client_context(config.tls_ca, config.tls_cert, config.tls_key) \
        if config.tls_cert else None
    link = StoreLink(StoreLinkOptions(config.store_address, max_payload=config.max_frame_size),
                     keys=keys, tls=tls, on_failure=on_failure)
    stack.callback(link.close)
    log.info("store requests go to the store process at %s", link.address)
    return link.start()
