"""The console's WSGI application: :func:`create_app` builds it from :class:`ConsoleOptions`
and a factory of master clients; the composition root (``titan_actors.runtime.web_main``)
serves it with gevent's WSGI server and starts its event hub."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from titan_actors.config_parse import format_address
from titan_actors.errors import (
    ConnectionError_,
    InvalidTransitionError,
    TitanError,
    UnknownJobError,
    UnknownRunError,
    UsageError,
)

from . import format as fmt
from .auth import init_auth
from .clients import ClientPool
from .events import EventHub
from .launch import WorkerLauncher
from .status import Status, read_status, unreachable

log = logging.getLogger("titan.web")


@dataclass(frozen=True)
class ConsoleOptions:
    """What the console needs to know.

    Args:
        web_dir: its data directory (``<data dir>/web``): password hash, session key, the
            workers it launched and their logs.
        master: the master's (host, port), shown on pages and given to launched workers.
        auth_required: a cluster key is configured: every page needs a login.
        session_secret: signs the session cookie.
        admin_secret: the admin role key, accepted at the login (None: password only).
        loopback_only: the console listens on loopback: refuse other Host names.
        key_file: passed to the workers the console launches (None: no key).
        data_root: the data directory root the launched workers use.
        long_poll, queue_size, max_subscribers, max_log_streams, pool_size: bounds.
        can_launch: the console's key lets the workers it launches register (no key, the
            cluster key or a worker key).
    """

    web_dir: Path
    master: tuple[str, int]
    auth_required: bool = False
    session_secret: bytes = b""
    admin_secret: bytes | None = None
    loopback_only: bool = True
    key_file: Path | None = None
    data_root: Path | None = None
    long_poll: float = 25.0
    queue_size: int = 256
    max_subscribers: int = 200
    max_log_streams: int = 32
    pool_size: int = 8
    can_launch: bool = True

    @property
    def master_text(self) -> str:
        return format_address(self.master)


class Console:
    """What the views share: options, the client pool, the event hub, the worker launcher."""

    def __init__(self, options: ConsoleOptions, connect: Callable[[], Any], hub: EventHub,
                 launcher: WorkerLauncher) -> None:
        self.options = options
        self.connect = connect
        self.pool = ClientPool(connect, size=options.pool_size)
        self.hub = hub
        self.launcher = launcher
        self.log_streams = 0


def console() -> Console:
    """The Console of the app handling this request."""
    return current_app.extensions["titan_console"]


def console_of(app: Flask) -> Console:
    return app.extensions["titan_console"]


def create_app(options: ConsoleOptions, master_client_factory: Callable[[], Any], *,
               hub: EventHub | None = None, launcher: WorkerLauncher | None = None) -> Flask:
    """The Flask app. ``master_client_factory()`` returns a new connected client (a
    ``MasterClient``); ``hub`` defaults to one over that factory (not started: the caller
    starts it); ``launcher`` to one over ``options.web_dir``."""
    app = Flask("titan_web", static_folder="static", template_folder="templates")
    app.config.update(TEMPLATES_AUTO_RELOAD=False, MAX_CONTENT_LENGTH=1 << 20)
    fmt.install(app)
    if hub is None:
        hub = EventHub(master_client_factory, snapshot=read_status, unreachable=unreachable,
                       render=lambda status: render_status(app, status),
                       long_poll=options.long_poll, queue_size=options.queue_size,
                       max_subscribers=options.max_subscribers)
    if launcher is None:
        launcher = WorkerLauncher(options.web_dir, options.master, options.key_file,
                                  options.data_root or options.web_dir.parent)
    app.extensions["titan_console"] = Console(options, master_client_factory, hub, launcher)
    init_auth(app, options)
    from . import (
        views_agents,
        views_approvals,
        views_constructor,
        views_events,
        views_files,
        views_ops,
        views_runs,
        views_workers,
    )
    for module in (views_ops, views_events, views_runs, views_workers, views_approvals,
                   views_agents, views_files, views_constructor):
        app.register_blueprint(module.bp)
    app.before_request(_head_of_a_stream)
    app.context_processor(_globals)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(TitanError, _titan_error)
    return app


def render_status(app: Flask, status: Status) -> list[tuple[str, str]]:
    """The status line and the gate banner as (SSE event, HTML) pairs."""
    with app.app_context():
        env = app.jinja_env
        master = console_of(app).options.master_text
        return [(name, env.get_template(f"_{name}.html").render(status=status,
                                                                 master_address=master))
                for name in ("status", "banner")]


# routes whose answer streams from a resource taken before the body starts (a download slot, an
# event subscription, a master connection): released when the body ends, which a HEAD never runs
_STREAMS = frozenset({"/events", "/files/<area>/<name>",
                      "/runs/<run_id>/files/<worker>/<path:path>",
                      "/runs/<run_id>/jobs/<job_id>/log/stream",
                      "/runs/<run_id>/jobs/<job_id>/log.txt"})


def _head_of_a_stream():
    """A HEAD of a stream is answered without taking anything (it would never be given
    back)."""
    if request.method == "HEAD" and request.url_rule is not None \
            and request.url_rule.rule in _STREAMS:
        return "", 200, {"Content-Type": "application/octet-stream"}
    return None


def _globals() -> dict:
    instance = console()
    return {"status": instance.hub.status, "master_address": instance.options.master_text,
            "auth_required": instance.options.auth_required}


def _wants_fragment() -> bool:
    return bool(request.headers.get("HX-Request")) or request.path.startswith("/api/")


def _http_error(error: HTTPException):
    if _wants_fragment() or request.path.startswith(("/events", "/metrics")):
        return f"{error.code} {error.name}: {error.description}\n", error.code, \
            {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("error.html", code=error.code, title=error.name,
                           message=error.description), error.code


def _titan_error(error: TitanError):
    if isinstance(error, ConnectionError_):
        code, title = 503, "The master cannot be reached"
    elif isinstance(error, (UnknownRunError, UnknownJobError)):
        code, title = 404, "Not found"
    elif isinstance(error, InvalidTransitionError):
        code, title = 409, "Not possible now"
    elif isinstance(error, UsageError):
        code, title = 400, "Refused"
    else:
        code, title = 502, "The master answered with an error"
        log.warning("%s %s: %r", request.method, request.path, error)
    if _wants_fragment():
        return f"{title}: {error}\n", code, {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("error.html", code=code, title=title, message=str(error)), code
