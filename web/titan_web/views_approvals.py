"""Approvals: the gates waiting for a person, oldest first, with their question, age and
deadline; Approve / Reject with an optional comment; and the latest decisions."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from titan_actors.errors import TitanError
from titan_actors.scheduler.model import JobState

from .app import console
from .auth import local_path

bp = Blueprint("approvals", __name__)

DECIDED_SHOWN = 20
_DECIDED = (JobState.APPROVED, JobState.REJECTED, JobState.TIMED_OUT)


@bp.route("/approvals")
def approvals():
    return render_template("approvals.html", nav="approvals", **_page())


@bp.route("/approvals/table")
def approvals_table():
    return render_template("_gates_table.html", **_page())


def _page() -> dict:
    with console().pool.client() as client:
        every = client.gates(all=True)
    waiting = [g for g in every if g.state is JobState.WAITING]
    decided = sorted((g for g in every if g.state in _DECIDED),
                     key=lambda g: g.finished_at, reverse=True)[:DECIDED_SHOWN]
    return {"waiting": waiting, "decided": decided}


@bp.route("/approvals/decide", methods=["POST"])
def decide():
    form = request.form
    ref = form.get("gate", "")
    decision = form.get("decision")
    back = local_path(form.get("back") or url_for("approvals.approvals"))
    if decision not in ("approve", "reject") or not ref:
        flash("choose Approve or Reject for a gate", "error")
        return redirect(back, code=303)
    comment = form.get("comment", "").strip()[:2000]
    try:
        with console().pool.client() as client:
            flash(client.decide_gate(ref, decision == "approve", comment), "ok")
    except TitanError as error:
        flash(str(error), "error")
    return redirect(back, code=303)
