"""Jinja filters: times, durations, state colours. They return plain text (autoescaped by the
templates), never markup."""

from __future__ import annotations

import time
from urllib.parse import quote

from flask import Flask

# job, run, gate and service states -> the CSS class of their colour (see console.css)
_STATE_CLASS = {
    "pending": "st-pending", "queued": "st-queued", "running": "st-running",
    "starting": "st-running", "restarting": "st-running",
    "completed": "st-completed", "approved": "st-completed",
    "failed": "st-failed",
    "dead": "st-dead", "rejected": "st-dead", "timed_out": "st-dead",
    "cancelled": "st-cancelled", "stopped": "st-cancelled",
    "skipped": "st-skipped", "waiting": "st-waiting", "ready": "st-ready",
    # runs
    "active": "st-running", "serving": "st-ready",
}
# the order job states are listed in counts
STATE_ORDER = ("running", "starting", "ready", "restarting", "queued", "pending", "waiting",
               "failed", "completed", "approved", "dead", "rejected", "timed_out", "skipped",
               "cancelled", "stopped")


def state_class(state: object) -> str:
    value = getattr(state, "value", state)
    return _STATE_CLASS.get(str(value), "st-pending")


def state_label(state: object) -> str:
    return str(getattr(state, "value", state)).replace("_", " ")


def when(epoch: float) -> str:
    """Local time as 2024-05-01 12:34:56 ("-" for 0)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def span(seconds: float) -> str:
    """A duration as 45s, 12m 03s, 3h 05m or 2d 04h."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def ago(epoch: float, now: float | None = None) -> str:
    if not epoch:
        return "-"
    return span((now or time.time()) - epoch) + " ago"


def until(epoch: float, now: float | None = None) -> str:
    if not epoch:
        return "-"
    left = epoch - (now or time.time())
    return "now" if left <= 0 else "in " + span(left)


def took(started: float, finished: float, now: float | None = None) -> str:
    """How long a job ran (so far, while it runs)."""
    if not started:
        return "-"
    seconds = (finished or now or time.time()) - started
    return "<1s" if seconds < 1 else span(seconds)


def ordered_counts(counts: dict) -> list[tuple[str, int]]:
    """A run's job counts in a stable, readable order, zeros left out."""
    known = [(s, counts[s]) for s in STATE_ORDER if counts.get(s)]
    rest = sorted((s, n) for s, n in counts.items() if s not in STATE_ORDER and n)
    return known + rest


def run_url(run_id: str) -> str:
    """The run's page (ids quoted: they are user data)."""
    return f"/runs/{quote(run_id, safe='')}"


def job_url(run_id: str, job_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}/jobs/{quote(job_id, safe='')}"


def install(app: Flask) -> None:
    for name, function in (("state_class", state_class), ("state_label", state_label),
                           ("when", when), ("span", span), ("ago", ago), ("until", until),
                           ("ordered_counts", ordered_counts)):
        app.jinja_env.filters[name] = function
    app.jinja_env.globals.update(took=took, run_url=run_url, job_url=job_url)
