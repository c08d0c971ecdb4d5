"""Files: the uploaded files and artifacts and the script library (``/files``), a run's
workspace on every worker that holds part of it (``/runs/RUN/files``), and their downloads.

Downloads are streamed chunk by chunk (``transfer.iter_file`` / ``iter_workspace_file``) on a
connection of their own, at most ``MAX_DOWNLOADS`` at once, and always sent as
``application/octet-stream`` with ``Content-Disposition: attachment`` (with ``nosniff``, set on
every answer, no browser renders a stored file as a page of this console). Names and paths are
user data: they are escaped in the pages and quoted in the URLs; the master and the workers
refuse a path that leaves the run's folder, and a name that is not one plain name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request
from gevent.lock import BoundedSemaphore

from titan_actors import transfer
from titan_actors.errors import UsageError
from titan_actors.wire.messages.files import FileArea

from .app import console
from .format import run_url

log = logging.getLogger("titan.web")
bp = Blueprint("files", __name__)

MAX_DOWNLOADS = 16   # downloads streaming at once (each holds a connection to the master)
RUNS_PICKED = 100    # runs offered by the run picker
_AREAS = {"uploads": FileArea.UPLOADS, "scripts": FileArea.SCRIPTS}
_PLAIN = re.compile(r"[^A-Za-z0-9._-]")


# -- URLs and formats (template globals and filters) -------------------------------------------

def file_url(area: FileArea, name: str) -> str:
    """The download of a stored file."""
    folder = "scripts" if area is FileArea.SCRIPTS else "uploads"
    return f"/files/{folder}/{quote(name, safe='')}"


def workspace_url(run_id: str, worker: str = "", path: str = "") -> str:
    """A run's workspace page, or (with ``worker`` and ``path``) the download of one of its
    files: every segment quoted, the path's '/' kept as separators."""
    base = f"{run_url(run_id)}/files"
    if not worker:
        return base
    return f"{base}/{quote(worker, safe='')}/{quote(path, safe='/')}"


def size(count: int) -> str:
    """Bytes as 512 B, 1.5 KiB, 3.2 MiB, 1.1 GiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # not reached


def attachment(name: str) -> str:
    """A Content-Disposition that saves the file as ``name`` (its last segment): a plain ASCII
    fallback, and the exact name as RFC 5987 ``filename*``."""
    base = name.rsplit("/", 1)[-1] or "download"
    plain = _PLAIN.sub("_", base).strip(".") or "download"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(base, safe='')}"


bp.add_app_template_global(file_url, "file_url")
bp.add_app_template_global(workspace_url, "workspace_url")
bp.add_app_template_filter(size, "filesize")


# -- the files page -----------------------------------------------------------------------------

@bp.route("/files")
def files():
    with console().pool.client() as client:
        uploads = transfer.list_files(client, FileArea.UPLOADS)
        scripts = transfer.list_files(client, FileArea.SCRIPTS)
        runs = client.runs(RUNS_PICKED)
    return render_template("files.html", nav="files",
                           uploads=sorted(uploads, key=lambda f: f.name),
                           scripts=sorted(scripts, key=lambda f: f.name), runs=runs)


@bp.route("/files/run")
def pick_run():
    """The run picker's GET form: on to that run's files."""
    run_id = request.args.get("run", "").strip()
    return redirect(workspace_url(run_id) if run_id else "/files", code=303)


@bp.route("/files/<area>/<name>")
def download(area: str, name: str):
    if area not in _AREAS:
        abort(404, description=f"no file area {area!r} (uploads or scripts)")
    return _stream(lambda client: transfer.iter_file(client, name, _AREAS[area]), name)


# -- a run's workspace --------------------------------------------------------------------------

@bp.route("/runs/<run_id>/files")
def workspace(run_id: str):
    with console().pool.client() as client:
        run = client.run(run_id, jobs=False).run  # an unknown run: 404
        listing = transfer.list_workspace(client, run_id)
    entries = sorted(listing.entries, key=lambda e: (e.worker, e.path))
    return render_template("workspace.html", nav="runs", run=run, entries=entries,
                           unreachable=listing.unreachable, truncated=listing.truncated)


@bp.route("/runs/<run_id>/files/<worker>/<path:path>")
def workspace_file(run_id: str, worker: str, path: str):
    return _stream(lambda client: transfer.iter_workspace_file(client, run_id, path, worker),
                   path)


# -- streaming ----------------------------------------------------------------------------------

def _stream(chunks_of: Callable[[Any], Iterator[bytes]], name: str,
            content_type: str = "application/octet-stream") -> Response:
    """Send ``chunks_of(client)`` over a connection of its own; the first chunk is read before
    the answer starts, so a refusal (no such file) is a 404 page, not a broken download.
    Anything but ``text/plain`` is sent as an attachment named ``name``."""
    slots: BoundedSemaphore = current_app.extensions.setdefault(
        "titan_downloads", BoundedSemaphore(MAX_DOWNLOADS))
    if not slots.acquire(blocking=False):
        abort(503, description=f"{MAX_DOWNLOADS} downloads are running; try again when one "
                               "has finished")
    client = None
    try:
        client = console().connect()
        chunks = chunks_of(client)
        first = next(chunks, b"")
    except UsageError as error:
        _release(client, slots)
        abort(404, description=str(error))
    except BaseException:
        _release(client, slots)
        raise

    def body() -> Iterator[bytes]:
        try:
            yield from chain((first,) if first else (), chunks)
        finally:
            chunks.close()
            _release(client, slots)

    headers = {"Cache-Control": "no-store"}
    if not content_type.startswith("text/plain"):
        headers["Content-Disposition"] = attachment(name)
    return Response(body(), content_type=content_type, headers=headers)


def _release(client: Any, slots: BoundedSemaphore) -> None:
    slots.release()
    if client is None:
        return
    try:
        client.close()
    except Exception:  # a broken connection: nothing more to do
        log.debug("closing a download's client failed", exc_info=True)
