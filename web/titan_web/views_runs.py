"""Pipelines: the runs list, a run's page (its graph, drawn by ``static/js/graph.js`` from the
graph JSON, with a side panel per job; the jobs table), a job's page (attempts, timings, why it
waits, its log), and the actions on them (cancel, retry, stop a service, retry a run's failed
jobs, re-run the pipeline).

Every action is a form POST (CSRF token and origin checked in ``auth.py``) answered with a
redirect back and a one-line message (Post/Redirect/Get), so it works without JavaScript.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from titan_actors.errors import InvalidTransitionError, TitanError
from titan_actors.scheduler.model import TERMINAL_STATES, JobKind, JobState, RunState
from titan_actors.wire.messages.master import EventKind, JobInfo, RunDetail

from .app import console
from .auth import local_path
from .format import run_url, state_class

bp = Blueprint("runs", __name__)

RUN_LIMIT = 200
INITIAL_LOG = 256 * 1024
_RETRYABLE = frozenset({JobState.DEAD, JobState.CANCELLED, JobState.SKIPPED})
_CANCELLABLE = frozenset(JobState) - TERMINAL_STATES
_FAILED_HERE = (JobState.DEAD, JobState.CANCELLED)


# -- the runs list ------------------------------------------------------------------------------

@bp.route("/")
@bp.route("/runs")
def runs():
    return render_template("runs.html", runs=_runs(), nav="runs")


@bp.route("/runs/table")
def runs_table():
    return render_template("_runs_table.html", runs=_runs())


def _runs():
    with console().pool.client() as client:
        return client.runs(RUN_LIMIT)


# -- one run ------------------------------------------------------------------------------------

@bp.route("/runs/<run_id>")
def run(run_id: str):
    detail = _detail(run_id)
    return render_template("run.html", detail=detail, run=detail.run, jobs=detail.jobs,
                           actions=_run_actions(detail), nav="runs")


@bp.route("/runs/<run_id>/jobs")
def run_jobs(run_id: str):
    detail = _detail(run_id)
    return render_template("_jobs_table.html", run=detail.run, jobs=detail.jobs)


@bp.route("/runs/<run_id>/summary")
def run_summary(run_id: str):
    detail = _detail(run_id)
    return render_template("_run_summary.html", run=detail.run,
                           actions=_run_actions(detail))


@bp.route("/api/runs/<run_id>/graph")
def run_graph(run_id: str):
    """The run as a graph: nodes (one per job) and edges (parent -> child) for the graph view.
    ``last_seq``: follow ``/events?run=RUN`` from there."""
    detail = _detail(run_id)
    return jsonify(graph(detail))


def graph(detail: RunDetail) -> dict:
    """``nodes``: the run's jobs in submission order; ``external``: their parents in other
    runs (``RUN/JOB``), drawn faded; ``edges``: parent -> child, from either;
    ``state_classes``: each job state's colour class (console.css)."""
    ids = {job.job_id for job in detail.jobs}
    nodes, edges, external = [], [], {}
    for job in detail.jobs:
        outside = [p for p in job.parents if p not in ids]
        nodes.append({
            "id": job.job_id, "state": job.state.value, "status": job.status,
            "kind": job.kind.value, "worker": job.worker, "added_by": job.added_by,
            "attempt": job.attempt, "max_attempts": job.max_attempts,
            "reason": job.reason, "waiting": _waiting(job), "requirement": job.requirement,
            "created_at": job.created_at, "started_at": job.started_at,
            "finished_at": job.finished_at, "exit_code": job.exit_code,
            "message": job.message, "deadline": job.deadline, "port": job.port,
            "restarts": job.restarts, "decided_by": job.decided_by, "comment": job.comment,
            "external_parents": outside,
        })
        edges.extend({"source": parent, "target": job.job_id}
                     for parent in job.parents if parent in ids)
        for ref in outside:
            run_id, _, job_id = ref.rpartition("/")
            external.setdefault(ref, {"id": ref, "run_id": run_id, "job_id": job_id})
            edges.append({"source": ref, "target": job.job_id})
    run = detail.run
    return {"run": {"run_id": run.run_id, "name": run.name, "state": run.state.value,
                    "agent_run_id": run.agent_run_id, "counts": run.counts},
            "nodes": nodes, "external": list(external.values()), "edges": edges,
            "state_classes": {state.value: state_class(state) for state in JobState},
            "last_seq": detail.last_seq}


def _waiting(job: JobInfo) -> str:
    """Why a job that has not started waits ("" once it started or ended)."""
    if job.state in (JobState.PENDING, JobState.QUEUED, JobState.WAITING, JobState.FAILED):
        return job.reason
    return ""


def _detail(run_id: str) -> RunDetail:
    with console().pool.client() as client:
        return client.run(run_id)


def _run_actions(detail: RunDetail) -> dict:
    active = detail.run.state in (RunState.ACTIVE, RunState.SERVING)
    return {"cancel": active, "rerun": True,
            "retry_failed": any(job.state in _FAILED_HERE for job in detail.jobs)}


# -- one job ------------------------------------------------------------------------------------

@bp.route("/runs/<run_id>/jobs/<job_id>")
def job(run_id: str, job_id: str):
    ref = f"{run_id}/{job_id}"
    with console().pool.client() as client:
        detail = client.job(ref)
        chunk = client.logs(ref, 0, INITIAL_LOG)
    return render_template(
        "job.html", nav="runs", **_job_context(detail),
        log_text=chunk.data.decode("utf-8", errors="replace"), log_offset=chunk.next_offset,
        log_more=len(chunk.data) >= INITIAL_LOG, log_finished=chunk.finished,
        log_truncated=chunk.truncated)


@bp.route("/runs/<run_id>/jobs/<job_id>/panel")
def job_panel(run_id: str, job_id: str):
    with console().pool.client() as client:
        detail = client.job(f"{run_id}/{job_id}")
    return render_template("_job_panel.html", **_job_context(detail))


@bp.route("/runs/<run_id>/jobs/<job_id>/side")
def job_side(run_id: str, job_id: str):
    """The job beside the run's graph: facts, attempts, actions (a waiting gate's decision
    too) whose answers come back to the run page with this job selected."""
    with console().pool.client() as client:
        detail = client.job(f"{run_id}/{job_id}")
    back = f"{run_url(run_id)}?job={quote(job_id, safe='')}"
    return render_template("_graph_side.html", back=back, **_job_context(detail))


def _job_context(detail) -> dict:
    info = detail.job
    return {"detail": detail, "job": info, "attempts": attempts(detail.history),
            "waiting": _waiting(info), "actions": _job_actions(info)}


@bp.route("/runs/<run_id>/jobs/<job_id>/log.txt")
def job_log(run_id: str, job_id: str):
    """The whole log, as plain text (never HTML: ``nosniff`` is set on every answer)."""
    from .views_files import _stream
    ref = f"{run_id}/{job_id}"

    def chunks(client):
        offset = 0
        while True:
            chunk = client.logs(ref, offset)
            if not chunk.data:
                return
            yield chunk.data
            offset = chunk.next_offset

    # one of the download slots, the first chunk read before answering (an unknown job: 404)
    return _stream(chunks, f"{job_id}.log", "text/plain; charset=utf-8")


def attempts(history) -> list[dict]:
    """One row per attempt from a job's events: worker, start, end, outcome, detail."""
    rows: dict[int, dict] = {}
    for event in history:
        if event.kind is not EventKind.JOB or not event.attempt:
            continue
        row = rows.setdefault(event.attempt, {"attempt": event.attempt, "worker": "",
                                              "started": 0.0, "ended": 0.0, "state": "",
                                              "detail": ""})
        row["worker"] = event.worker or row["worker"]
        state = event.job_state
        if state in (JobState.RUNNING, JobState.STARTING) and not row["started"]:
            row["started"] = event.at
        if state is not None:
            row["state"] = state.value
            if state in TERMINAL_STATES or state is JobState.FAILED:
                row["ended"] = event.at
        if event.detail:
            row["detail"] = event.detail
    return [rows[n] for n in sorted(rows)]


def _job_actions(job: JobInfo) -> dict:
    return {"cancel": job.state in _CANCELLABLE and job.kind is not JobKind.SERVICE,
            "retry": job.state in _RETRYABLE,
            "stop": job.kind is JobKind.SERVICE and job.state not in TERMINAL_STATES}


# -- actions ------------------------------------------------------------------------------------

@bp.route("/runs/<run_id>/cancel", methods=["POST"])
def cancel_run(run_id: str):
    return _act(lambda c: c.cancel(run_id), url_for("runs.run", run_id=run_id))


@bp.route("/runs/<run_id>/rerun", methods=["POST"])
def rerun(run_id: str):
    """Submit the run's spec again (``GetRunSpec``) and go to the new run's page."""
    try:
        with console().pool.client() as client:
            found = client.run_spec(run_id)
            accepted = client.submit(found.spec)
    except TitanError as error:
        flash(str(error), "error")
        return redirect(url_for("runs.run", run_id=run_id), code=303)
    flash(f"re-ran {found.run_id} as run {accepted.run_id} ({len(accepted.job_ids)} jobs)", "ok")
    return redirect(url_for("runs.run", run_id=accepted.run_id), code=303)


@bp.route("/runs/<run_id>/retry-failed", methods=["POST"])
def retry_failed(run_id: str):
    def retry_all(client) -> str:
        detail = client.run(run_id)
        done = []
        for info in detail.jobs:
            if info.state not in _FAILED_HERE:
                continue
            try:
                client.retry(f"{run_id}/{info.job_id}")
                done.append(info.job_id)
            except InvalidTransitionError:
                continue  # reset already by the retry of an upstream job
        return f"retrying {len(done)} jobs: {', '.join(done)}" if done else \
            "no dead or cancelled job to retry"
    return _act(retry_all, url_for("runs.run", run_id=run_id))


@bp.route("/runs/<run_id>/jobs/<job_id>/cancel", methods=["POST"])
def cancel_job(run_id: str, job_id: str):
    return _act(lambda c: c.cancel(f"{run_id}/{job_id}"),
                url_for("runs.job", run_id=run_id, job_id=job_id))


@bp.route("/runs/<run_id>/jobs/<job_id>/retry", methods=["POST"])
def retry_job(run_id: str, job_id: str):
    return _act(lambda c: c.retry(f"{run_id}/{job_id}"),
                url_for("runs.job", run_id=run_id, job_id=job_id))


@bp.route("/runs/<run_id>/jobs/<job_id>/stop", methods=["POST"])
def stop_service(run_id: str, job_id: str):
    return _act(lambda c: c.stop_service(f"{run_id}/{job_id}"),
                url_for("runs.job", run_id=run_id, job_id=job_id))


def _act(action, default_back: str):
    """Run ``action(client)``; flash its sentence (or the refusal) and go back."""
    back = local_path(request.form.get("back") or default_back)
    try:
        with console().pool.client() as client:
            flash(action(client), "ok")
    except TitanError as error:
        flash(str(error), "error")
    return redirect(back, code=303)
