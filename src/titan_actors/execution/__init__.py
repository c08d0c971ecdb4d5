"""Job processes on a worker: the launcher, output capture, commands, workspaces, orphans.

The public surface is listed in ``__all__`` and loaded on first use, so that the launcher
process (``python -m titan_actors.execution.launcher``) imports neither gevent nor psutil.

* ``Launcher`` (``launcher_client``) / ``LaunchedProcess`` (``launched``): start the launcher,
  launch, kill; the launcher kills what a job left running when its main process exits;
* ``OutputCapture`` / ``finish`` / ``JobExit`` / ``Stream`` (``output``): read a job's output;
* ``build_command`` / ``Command`` / ``TitanEnv`` (``command``): a JobSpec's argv and env;
* ``prepare_run`` / ``write_script`` / ``remove_run`` / ``prune_runs`` (``workspace``);
* ``ChildRegistry`` / ``kill_orphans`` (``orphans``): leftovers of a previous life;
* ``MARKER_VAR`` (``_leftovers``): the environment variable that marks an attempt's processes.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Launcher": "launcher_client", "LaunchedProcess": "launched", "MARKER_VAR": "_leftovers",
    "OutputCapture": "output", "JobExit": "output", "Stream": "output", "finish": "output",
    "Command": "command", "TitanEnv": "command", "build_command": "command",
    "build_env": "command", "ENV_ALLOWLIST": "command",
    "prepare_run": "workspace", "run_dir": "workspace", "write_script": "workspace",
    "remove_run": "workspace", "prune_runs": "workspace", "list_runs": "workspace",
    "ChildRegistry": "orphans", "ChildRecord": "orphans", "kill_orphans": "orphans",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
