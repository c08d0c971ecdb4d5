"""Operations endpoints: ``/livez``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

from flask import Blueprint, Response

from titan_actors.errors import TitanError

from .app import console
from .metrics import CONTENT_TYPE, exposition
from .status import read_status, unreachable

bp = Blueprint("ops", __name__)

@bp.route("/livez")
def livez():
    """The process answers."""
    return Response("ok\n", mimetype="text/plain")


@bp.route("/readyz")
def readyz():
    """Ready when the master answers and the event subscription is live."""
    instance = console()
    problems = []
    try:
        with instance.pool.client() as client:
            client.ping()
    except TitanError as error:
        problems.append(f"master {instance.options.master_text} unreachable: {error}")
    if not instance.hub.live:
        problems.append("the event stream subscription is not live")
    if problems:
        return Response("not ready: " + "; ".join(problems) + "\n", status=503,
                        mimetype="text/plain")
    return Response("ready\n", mimetype="text/plain")


@bp.route("/metrics")
def metrics():
    instance = console()
    try:
        with instance.pool.client() as client:
            status = read_status(client)
    except TitanError as error:
        status = unreachable(str(error))
    body = exposition(status, instance.hub.counters, instance.hub.live,
                      instance.hub.subscribers, instance.log_streams)
    return Response(body, content_type=CONTENT_TYPE)
