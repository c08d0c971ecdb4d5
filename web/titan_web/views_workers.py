"""Workers: each worker with its tags, slots, kind and the jobs and services it runs, and the
"Launch worker" form (``launch.py``)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from titan_actors.errors import UsageError
from titan_actors.scheduler.model import ON_WORKER_STATES, TERMINAL_STATES, JobKind, RunState
from titan_actors.wire.messages.master import JobInfo, WorkerInfo

from .app import console
from .launch import parse_tags

bp = Blueprint("workers", __name__)

ACTIVE_RUNS_READ = 50  # active runs read to find what each worker runs
RECENT_RUNS_READ = 10  # newest runs read for each worker's recent jobs
RECENT_JOBS = 5        # recent jobs shown per worker


def kind(worker: WorkerInfo) -> str:
    if worker.burst_of:
        return f"burst of {worker.burst_of}"
    return "ephemeral" if worker.ephemeral else "permanent"


def condition(worker: WorkerInfo) -> str:
    if not worker.connected:
        return "lost"
    return "draining" if worker.draining else "connected"


@bp.route("/workers")
def workers():
    return render_template("workers.html", nav="workers", **_page())


@bp.route("/workers/table")
def workers_table():
    return render_template("_workers_table.html", **_page())


def _page() -> dict:
    instance = console()
    with instance.pool.client() as client:
        listed = client.workers()
        runs = client.runs(1000)
        active = [r for r in runs if r.state in (RunState.ACTIVE, RunState.SERVING)]
        wanted = {r.run_id: r for r in (*active[:ACTIVE_RUNS_READ], *runs[:RECENT_RUNS_READ])}
        on_worker: dict[str, list[JobInfo]] = {}
        finished: dict[str, list[JobInfo]] = {}
        for run_id in wanted:
            try:
                jobs = client.run(run_id).jobs
            except UsageError:  # pruned since the list was read
                continue
            for job in jobs:
                if job.state in ON_WORKER_STATES and job.worker:
                    on_worker.setdefault(job.worker, []).append(job)
                elif job.worker and job.state in TERMINAL_STATES and job.finished_at:
                    finished.setdefault(job.worker, []).append(job)
    rows = [{"info": w, "kind": kind(w), "condition": condition(w),
             "jobs": [j for j in on_worker.get(w.name, ()) if j.kind is not JobKind.SERVICE],
             "services": [j for j in on_worker.get(w.name, ()) if j.kind is JobKind.SERVICE],
             "recent": sorted(finished.get(w.name, ()), key=lambda j: -j.finished_at)
             [:RECENT_JOBS]}
            for w in sorted(listed, key=lambda w: (not w.connected, w.name))]
    return {"rows": rows, "partial": len(active) > ACTIVE_RUNS_READ,
            "launched": instance.launcher.running(),
            "can_launch": instance.options.can_launch,
            "suggested_name": _suggest(listed)}


def _suggest(listed) -> str:
    names = {w.name for w in listed} | {e.name for e in console().launcher.running()}
    n = 1
    while f"web-worker-{n}" in names:
        n += 1
    return f"web-worker-{n}"


@bp.route("/workers/launch", methods=["POST"])
def launch():
    form = request.form
    if not console().options.can_launch:  # the button is disabled; a hand-made POST too
        flash("this console cannot launch workers (it needs no key, or the cluster key)",
              "error")
        return redirect(url_for("workers.workers"), code=303)
    try:
        slots_text = form.get("slots", "").strip()
        try:
            slots = int(slots_text) if slots_text else None
        except ValueError:
            raise UsageError(f"slots must be a whole number, not {slots_text!r}") from None
        entry = console().launcher.launch(form.get("name", "").strip(),
                                          parse_tags(form.get("tags", "")), slots,
                                          form.get("lifetime") == "ephemeral")
        flash(f"started worker {entry.name} (pid {entry.pid}); it appears here once it "
              f"registers. Log: {entry.log}", "ok")
    except (UsageError, OSError) as error:
        flash(f"could not launch the worker: {error}", "error")
    return redirect(url_for("workers.workers"), code=303)
