"""The web console: a server-rendered Flask app, live over Server-Sent Events.

Public surface: :func:`create_app` and :class:`ConsoleOptions` (``titan_web.app``), loaded on
first use so that ``titanctl passwd`` (``titan_web.passwords``) does not import Flask.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConsoleOptions", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
