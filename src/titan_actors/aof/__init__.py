"""Append-only files: the durable log of the master and the store (Redis AOF semantics).

Public surface:

* :class:`AppendOnlyFile` (open, append -> :class:`Barrier`, rewrite, needs_rewrite, close) with
  its :class:`FsyncPolicy` and :class:`AofState`;
* :func:`replay` / :class:`ReplayResult` / :class:`Damage` / :class:`DamageKind` to read a file;
* :func:`check_aof` / :class:`AofReport` / :func:`fix_aof` for ``titanctl aof check [--fix]``;
* :func:`restore_from_snapshot`: a degraded file replaced by the owner's live state;
* the format constants :data:`MAGIC`, :data:`FORMAT_VERSION`, :data:`DEFAULT_MAX_RECORD_SIZE`.

Errors live in :mod:`titan_actors.errors` (``PersistenceError`` and its ``Aof*`` subclasses).

The read side (``record``, ``replay``, ``check``) imports no gevent, so ``titanctl aof check``
and other gevent-free code can use it; the writer's names load gevent on first use.
"""

import importlib

from titan_actors.aof.check import AofReport, check_aof, fix_aof
from titan_actors.aof.options import AofState, FsyncPolicy
from titan_actors.aof.record import DEFAULT_MAX_RECORD_SIZE, FORMAT_VERSION, MAGIC
from titan_actors.aof.replay import Damage, DamageKind, ReplayResult, replay

_ON_GEVENT = {"AppendOnlyFile": "writer", "Barrier": "barrier",
              "restore_from_snapshot": "restore"}


def __getattr__(name: str) -> object:
    module = _ON_GEVENT.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_MAX_RECORD_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "AofReport",
    "AofState",
    "AppendOnlyFile",
    "Barrier",
    "Damage",
    "DamageKind",
    "FsyncPolicy",
    "ReplayResult",
    "check_aof",
    "fix_aof",
    "replay",
    "restore_from_snapshot",
]
