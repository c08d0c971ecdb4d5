"""A worker's burst workers, and its retirement: a mixin of
:class:`~titan_actors.actors.worker.WorkerActor`.

On ``SpawnBurst`` (from the master, for the scaler) the worker starts ``titanctl worker
--ephemeral --burst-of ME --name NAME`` on its host with psutil, in a session of its own (a
signal to this worker's process group does not reach it). The burst gets this worker's master
address, tags, slots and settings (flags from :class:`WorkerOptions`, the rest, such as the key
file, through its environment: ``WorkerOptions.burst_env``), a data directory beside this
worker's (``<root>/worker-<NAME>``), and writes its log to ``<this worker's dir>/bursts/
NAME.log``. It registers with the master like any worker. This worker polls its burst children
every heartbeat interval (``poll`` reaps an exited one: no zombie) and sends them SIGTERM (they
drain) when it stops. On ``Retire`` (an idle burst or ephemeral worker) it drains and exits.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

import titan_actors

from ..config_parse import format_address
from ..errors import UsageError
from ..wire.messages import scaler as sc
from .base import handles
from .worker_link import Drain

log = logging.getLogger("titan.worker")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")  # a data directory's component name
_SRC_ROOT = str(Path(titan_actors.__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class _ReapBursts:
    pass


def burst_command(options, name: str) -> list[str]:
    """The argv of the burst worker ``name`` of a worker with ``options`` (WorkerOptions)."""
    return [sys.executable, "-m", "titan_actors.cli", "worker",
            "--master", format_address(options.master), "--name", name,
            "--data-dir", str(options.data_dir.parent), "--tags", ",".join(options.tags),
            "--slots", str(options.slots), "--ephemeral", "--burst-of", options.name,
            "--heartbeat-interval", repr(float(options.heartbeat_interval)),
            "--drain-timeout", repr(float(options.drain_timeout)),
            "--log-cap", str(options.output_cap),
            "--retention-age", repr(float(options.workspace_retention)),
            "--archive-max-size", str(options.archive_max_bytes),
            "--archive-max-entries", str(options.archive_max_entries)]


def burst_environment(options) -> dict[str, str]:
    """This process's environment with ``options.burst_env`` over it, and the package on the
    path (as the launcher does: a source checkout that is not installed works too)."""
    env = dict(os.environ)
    env.update(dict(options.burst_env))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC_ROOT, env.get("PYTHONPATH")) if p)
    return env


class BurstSpawner:
    """Starting, reaping and stopping burst workers; draining on ``Retire``."""

    def _burst_children(self) -> dict[int, tuple[str, psutil.Popen]]:
        """pid -> (name, process) of the burst workers this worker started and has not
        reaped yet (made on first use: the actor's __init__ stays as it is)."""
        return self.__dict__.setdefault("_bursts", {})

    @handles(sc.SpawnBurst)
    def _spawn_burst(self, msg: sc.SpawnBurst) -> sc.BurstSpawned:
        name = msg.name
        if self.draining or self._stopping:
            raise UsageError(f"worker {self.options.name} is draining: it starts no burst "
                             f"worker {name!r}")
        if not _NAME.fullmatch(name):
            raise UsageError(f"{name!r} is not a worker name (letters, digits, '.', '_', '-')")
        children = self._burst_children()
        if any(known == name for known, _ in children.values()):
            raise UsageError(f"worker {self.options.name} already runs burst worker {name}")
        logs = self.options.data_dir / "bursts"
        try:
            logs.mkdir(exist_ok=True)
            with open(logs / f"{name}.log", "ab") as out:
                process = psutil.Popen(burst_command(self.options, name), stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       env=burst_environment(self.options), close_fds=True,
                                       start_new_session=True)
        except OSError as error:
            raise UsageError(f"worker {self.options.name} cannot start burst worker {name}: "
                             f"{error}") from error
        children[process.pid] = (name, process)
        if self.__dict__.get("_burst_reaper") is None:
            self._burst_reaper = self.send_every(self.options.heartbeat_interval, _ReapBursts())
        log.info("started burst worker %s (pid %d, log %s): %s", name, process.pid,
                 logs / f"{name}.log", msg.reason or "asked by the scaler")
        return sc.BurstSpawned(name, process.pid)

    @handles(_ReapBursts)
    def _reap_bursts(self, msg: _ReapBursts) -> None:
        children = self._burst_children()
        for pid, (name, process) in list(children.items()):
            code = process.poll()  # reaps it once it exited
            if code is not None:
                del children[pid]
                log.info("burst worker %s (pid %d) exited with code %d", name, pid, code)

    def _stop_bursts(self) -> None:
        """SIGTERM every burst worker still running: each drains and exits on its own."""
        for pid, (name, process) in list(self._burst_children().items()):
            if process.poll() is not None:
                continue
            try:
                process.terminate()
                log.info("stopping burst worker %s (pid %d)", name, pid)
            except (OSError, psutil.Error) as error:
                log.debug("burst worker %s: %s", name, error)

    def _check_burst_parent(self) -> None:
        """A burst worker whose parent worker died (its parent pid changed: it was re-parented)
        drains and exits: nobody else would stop it (``titanctl down`` finds bursts through
        their parents)."""
        if not self.options.burst_of or self.draining:
            return
        parent = self.__dict__.setdefault("_burst_parent", os.getppid())
        if os.getppid() != parent:
            log.warning("the parent worker %s of this burst worker is gone: draining, then "
                        "exiting", self.options.burst_of)
            self._drain(Drain())

    @handles(sc.Retire)
    def _retire(self, msg: sc.Retire) -> None:
        log.info("retired by the scaler (%s): draining, then exiting", msg.reason)
        self._drain(Drain())
