"""The worker's settings, its bookkeeping of one attempt, and the messages it sends itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import WARM_PRELOAD
from ..execution.job_user import JobUser
from ..execution.services import RestartPolicy
from ..job_limits import explain_exit
from ..wire.messages import worker as w


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """The worker's settings (the composition root fills them from the config)."""

    name: str
    master: tuple[str, int]
    data_dir: Path
    tags: tuple[str, ...] = ("GENERAL",)
    slots: int = 2
    heartbeat_interval: float = 1.0
    reconnect_min: float = 0.05
    reconnect_max: float = 1.0
    drain_timeout: float = 30.0
    kill_grace: float = 5.0
    ephemeral: bool = False
    output_cap: int = 64 * 1024 * 1024
    workspace_retention: float = 7 * 86400.0   # run directories unused this long are removed
    workspace_sweep: float = 600.0             # how often to look for them
    archive_max_bytes: int = 1 << 30           # an archive job's project, unpacked
    archive_max_entries: int = 20_000
    service_restart: RestartPolicy = RestartPolicy()  # services: backoff between restarts
    service_probe_min: float = 0.05            # services: first readiness probe, doubling
    service_probe_max: float = 1.0             # ... up to this interval
    service_health_timeout: float = 10.0       # services: a health command's time limit
    burst_of: str = ""                         # a burst worker: the worker that started it
    # Python jobs forked from a warm interpreter with these modules imported (None: spawned)
    warm_preload: tuple[str, ...] | None = WARM_PRELOAD
    # settings its burst workers get through their environment (TITAN_KEY_FILE, ...)
    burst_env: tuple[tuple[str, str], ...] = ()
    # the user jobs run as when not this process's (execution/job_user.py; None: its own)
    job_user: JobUser | None = None


@dataclass
class _Attempt:
    ref: w.AttemptRef
    pid: int = 0
    exit_code: int | None = None
    output_done: bool = False
    reason: str = ""
    timer: Any = None
    handed_back: bool = False
    output_bytes: int = 0
    limits: dict[str, int] = field(default_factory=dict)  # the job's, to explain its exit


@dataclass(frozen=True, slots=True)
class _Exited:
    key: str
    exit_code: int


@dataclass(frozen=True, slots=True)
class _OutputDone:
    ref: w.AttemptRef
    sent_bytes: int


@dataclass(frozen=True, slots=True)
class _Acked:
    ref: w.AttemptRef


@dataclass(frozen=True, slots=True)
class _HandBackAcked:
    ref: w.AttemptRef


@dataclass(frozen=True, slots=True)
class _Timeout:
    ref: w.AttemptRef


def _lost_marker(count: int) -> bytes:
    return (f"\n[titan: {count} bytes of output were lost while the master was unreachable]\n"
            .encode())


def _exit_reason(exit_code: int, limits: dict[str, int]) -> str:
    """"" for a success, else the exit code and the limit that may explain it."""
    if exit_code == 0:
        return ""
    why = explain_exit(limits, exit_code)
    return f"exit code {exit_code}" + (f" ({why})" if why else "")
