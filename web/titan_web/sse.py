"""Server-Sent Events framing: one message as the bytes a browser's EventSource reads."""

from __future__ import annotations

import json
from typing import Any

KEEPALIVE = b": keepalive\n\n"


def sse(event: str, data: str = "", id: str | None = None, retry_ms: int | None = None) -> bytes:
    """One SSE message. ``data`` may hold several lines (each becomes a ``data:`` line; the
    browser joins them with newlines); carriage returns count as line ends in SSE, so they are
    normalised first. ``event`` and ``id`` are single-line names of ours, never user text."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    if id is not None:
        lines.append(f"id: {id}")
    lines.append(f"event: {event}")
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def sse_json(event: str, value: Any, id: str | None = None) -> bytes:
    """One SSE message whose data is ``value`` as JSON (one line: JSON escapes newlines)."""
    return sse(event, json.dumps(value, separators=(",", ":")), id)
