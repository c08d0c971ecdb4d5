"""``titanctl worker``: one worker process (worker actor and its launcher)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ..config import Config

log = logging.getLogger("titan.worker")


def run_worker(config: Config, master: tuple[str, int], name: str, tags: tuple[str, ...] | None,
               slots: int | None, ephemeral: bool, ready_file: Path | None = None,
               burst_of: str = "") -> int:
    """Work until SIGTERM (drain) or SIGINT, or until retired (an ephemeral worker idle too
    long). ``burst_of``: this is a burst worker that worker started. Returns the exit code.

    Raises ConfigError (before anything starts) for a master off loopback without a key."""
    from ..config_security import check_dial_address
    check_dial_address(master[0], master[1], config.key_file is not None, "the master")
    from .common import patch
    patch()
    from ..actors.system import ActorSystem
    from ..actors.worker import Drain, WorkerActor, WorkerOptions
    from ..datadir import DataDirLock, component_dir, worker_component
    from ..execution import job_user, workspace
    from ..keys import check_roles, keyring_from_config
    from ..wire.roles import Role
    from .common import on_signals, setup_logging, write_ready_file
    from .gpu import default_tags

    setup_logging(config.log_level)
    keys = keyring_from_config(config)  # read once; a key of another role is refused here
    check_roles(keys, config.key_file, (Role.WORKER,), "a worker")
    directory = component_dir(Path(config.data_dir), worker_component(name))
    user = job_user.resolve(config.job_user)  # an unknown user: refused before anything runs
    with DataDirLock(directory):
        if user is not None:
            workspace.open_to(directory, user)
        options = WorkerOptions(
            name=name, master=master, data_dir=directory,
            tags=tags or default_tags(), slots=slots or os.cpu_count() or 1,
            heartbeat_interval=config.heartbeat_interval, drain_timeout=config.drain_timeout,
            ephemeral=ephemeral, output_cap=config.log_cap,
            workspace_retention=config.retention_age,
            archive_max_bytes=config.archive_max_size,
            archive_max_entries=config.archive_max_entries, burst_of=burst_of,
            warm_preload=config.warm_preload if config.warm_executor and user is None else None,
            burst_env=burst_env(config), job_user=user)
        system = ActorSystem()
        worker = system.spawn(WorkerActor, options, keys=keys, name="worker")
        on_signals(lambda signum: worker.tell(Drain()))
        log.info("worker %s: tags %s, %d slots, master %s:%d", name, list(options.tags),
                 options.slots, *master)
        if user is not None:
            log.info("jobs run as %s; Python jobs are spawned (no warm executor)",
                     user.describe())
            closed = job_user.closed_to(sys.executable, user)
            if closed:
                log.warning("Python jobs will fail: %s cannot execute %s (%s is closed to it); "
                            "install Python where it can, or set --job-user", user.name,
                            sys.executable, closed)
        elif os.geteuid() == 0:
            log.warning("jobs run as root (--job-user %s): they can read this host's key files "
                        "and change anything; set --job-user nobody (or another unprivileged "
                        "user) unless that is meant", config.job_user)
        write_ready_file(ready_file, {"pid": os.getpid(), "name": name})
        worker.join(None)  # the process lives as long as its worker: until drained or failed
        crashed = worker.crashed
        system.stop_all(timeout=10)
    return 1 if crashed else 0


# the settings a burst worker takes from the worker that starts it, beyond those WorkerOptions
# carries as flags
_BURST_ENV = ("key_file", "log_level", "ask_timeout", "warm_executor", "warm_preload",
              "job_user")


def burst_env(config: Config) -> tuple[tuple[str, str], ...]:
    """``(TITAN_*, text)`` of the settings in ``_BURST_ENV`` that are set here (not defaults)."""
    from ..config import SETTINGS, Source

    out = []
    for name in _BURST_ENV:
        value = getattr(config, name)
        if config.source(name) is not Source.DEFAULT and value is not None:
            text = SETTINGS[name].show(value) if not isinstance(value, Path) \
                else os.path.abspath(value)
            out.append((SETTINGS[name].env, text))
    return tuple(out)
