"""Server-Sent Events endpoints.

* ``/events``: the hub's stream (status line, gate banner, ``runs`` / ``workers`` nudges,
  ``reload``); ``/events?run=RUN`` adds that run's ``job``, ``log`` and ``run`` events (JSON).
  It starts with ``hello`` (JSON: the hub's last sequence number and whether it is live).
* ``/runs/RUN/jobs/JOB/log/stream``: one job's output as it comes (``MasterClient.follow_logs``
  on a connection of its own), as ``chunk`` events whose data is JSON ``{"text": ...}`` and whose
  id is the byte offset after it: a browser that reconnects sends ``Last-Event-ID`` and the
  stream resumes there. ``end`` when the job is terminal. A stream ends after
  ``FOLLOW_SECONDS`` (the browser reconnects), so a job that never ends holds no connection
  forever.
"""

from __future__ import annotations

import codecs
import json
import logging

from flask import Blueprint, Response, abort, request

from titan_actors.errors import AskTimeoutError, TitanError

from .app import console
from .sse import KEEPALIVE, sse, sse_json

log = logging.getLogger("titan.web")
bp = Blueprint("events", __name__)

KEEPALIVE_SECONDS = 15.0
FOLLOW_SECONDS = 300.0
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@bp.route("/events")
def events():
    hub = console().hub
    subscription = hub.subscribe(request.args.get("run", ""))
    if subscription is None:
        abort(503, description="too many event streams are open; close some console tabs")

    def stream():
        try:
            yield sse("hello", json.dumps({"last_seq": hub.last_seq, "live": hub.live}),
                      retry_ms=2000)
            while not subscription.dropped:
                message = subscription.get(KEEPALIVE_SECONDS)
                yield message if message is not None else KEEPALIVE
        finally:
            hub.unsubscribe(subscription)

    return Response(stream(), mimetype="text/event-stream", headers=_HEADERS)


@bp.route("/runs/<run_id>/jobs/<job_id>/log/stream")
def log_stream(run_id: str, job_id: str):
    instance = console()
    if instance.log_streams >= instance.options.max_log_streams:
        abort(503, description="too many log streams are open; close some console tabs")
    offset = _offset(request.headers.get("Last-Event-ID") or request.args.get("offset"))
    ref = f"{run_id}/{job_id}"

    def stream():
        instance.log_streams += 1
        client = None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        position = offset
        try:
            yield sse("hello", "", retry_ms=3000)
            client = instance.connect()
            for data in client.follow_logs(ref, offset, timeout=FOLLOW_SECONDS):
                position += len(data)
                text = decoder.decode(data)
                held = len(decoder.getstate()[0])  # bytes of a character cut in two
                if text:
                    yield sse_json("chunk", {"text": text}, id=str(position - held))
            tail = decoder.decode(b"", final=True)
            if tail:
                yield sse_json("chunk", {"text": tail}, id=str(position))
            yield sse("end", "the job has ended")
        except AskTimeoutError:
            return  # the browser reconnects and resumes from the last id
        except TitanError as error:
            yield sse("failure", str(error))
        finally:
            instance.log_streams -= 1
            if client is not None:
                try:
                    client.close()
                except Exception:  # already broken
                    log.debug("closing a log stream's client failed", exc_info=True)

    return Response(stream(), mimetype="text/event-stream", headers=_HEADERS)


def _offset(text: str | None) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0
