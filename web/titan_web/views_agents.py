"""Agent runs: the runs that share an ``agent_run_id`` (an agent's session), one timeline row per
agent run, newest first; each stage is one run, in the order it was submitted, with its state,
its duration and the job that submitted it, linking to the run's page.

Live: ``static/js/agents.js`` reads the ``runs`` notices of ``/events`` (the ids of the runs
that changed) and asks the row that holds one of them to re-fetch itself
(``/agents-live/row?id=AGENT``); an id that no row holds and no ``data-plain-runs`` list names
(a new run: maybe a new stage or a new agent run) re-fetches the whole list
(``/agents-live/list``). An agent run's page (``/agents/AGENT``) lists its stages in detail and
refreshes the same way (``/agents-live/detail?id=AGENT``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

from flask import Blueprint, abort, render_template, request

from titan_actors.wire.messages.master import AgentRunSummary, RunSummary

from .app import console

bp = Blueprint("agents", __name__)

AGENT_LIMIT = 50        # agent runs on the list
AGENT_SCAN = 500        # agent runs searched for one agent run's row or page
RUNS_READ = 1000        # runs read at once to fill the stages of the listed agent runs
STAGES_SHOWN = 24       # the latest stages drawn in one row of the list (its page: all)
PLAIN_RUNS_NAMED = 200  # runs outside any agent run named to the script (it ignores them)


@dataclass(frozen=True)
class Stage:
    """One run of an agent run, placed on its timeline."""

    number: int
    run: RunSummary
    took: float       # seconds it ran (so far, while it runs)
    offset: float     # seconds after the agent run's first submission
    grow: float       # its box's share of the row (1 to 5, by duration)


@dataclass(frozen=True)
class AgentRow:
    agent: AgentRunSummary
    stages: tuple[Stage, ...]

    @property
    def run_ids(self) -> str:
        """The ids of its runs, space-separated (the script matches notices against them)."""
        return " ".join(stage.run.run_id for stage in self.stages)

    @property
    def took(self) -> float:
        return (self.agent.finished_at or time.time()) - self.agent.created_at


def stages(agent: AgentRunSummary, runs: list[RunSummary],
           now: float | None = None) -> tuple[Stage, ...]:
    """``runs`` (any order) as the stages of ``agent``, in submission order."""
    now = now or time.time()
    ordered = sorted(runs, key=lambda r: (r.created_at, _position(agent, r.run_id)))
    took = [max((r.finished_at or now) - r.created_at, 0.0) for r in ordered]
    # whole seconds, at least one: stages the page labels "<1s" get boxes of one size
    weight = [max(float(int(seconds)), 1.0) for seconds in took]
    longest = max(weight, default=1.0)
    return tuple(Stage(n, run, seconds, max(run.created_at - agent.created_at, 0.0),
                       round(1 + 4 * (w - 1) / max(longest - 1, 1.0), 2))
                 for n, (run, seconds, w) in enumerate(zip(ordered, took, weight, strict=True), 1))


def _position(agent: AgentRunSummary, run_id: str) -> int:
    try:
        return agent.runs.index(run_id)
    except ValueError:
        return len(agent.runs)


# -- the list -----------------------------------------------------------------------------------

@bp.route("/agents")
def agents():
    return render_template("agents.html", nav="agents", **_list())


@bp.route("/agents-live/list")
def agents_list():
    return render_template("_agents_list.html", **_list())


def _list() -> dict:
    with console().pool.client() as client:
        found = client.agent_runs(AGENT_LIMIT)
        recent = client.runs(RUNS_READ)
        by_id = {run.run_id: run for run in recent}
        rows = []
        for agent in found:
            members = [by_id[r] for r in agent.runs if r in by_id]
            if len(members) < len(agent.runs):  # older than the runs read: ask for its own
                members = list(client.runs(len(agent.runs) + 50,
                                           agent_run_id=agent.agent_run_id))
            rows.append(AgentRow(agent, stages(agent, members)))
    listed = {run_id for agent in found for run_id in agent.runs}
    plain = [run.run_id for run in recent if run.run_id not in listed][:PLAIN_RUNS_NAMED]
    return {"rows": rows, "plain_runs": " ".join(plain), "stages_shown": STAGES_SHOWN,
            "limit": AGENT_LIMIT}


# -- one agent run ------------------------------------------------------------------------------

# An agent run id is any text (a '/' too): the page takes the rest of the path, the fragments
# take it as ?id= (so no id can shadow a fragment's route).

@bp.route("/agents/<path:agent_run_id>")
def agent(agent_run_id: str):
    return render_template("agent.html", nav="agents", **_one(agent_run_id))


@bp.route("/agents-live/detail")
def agent_detail():
    return render_template("_agent_detail.html", **_one(request.args.get("id", "")))


@bp.route("/agents-live/row")
def agent_row():
    return render_template("_agent_row.html", row=_one(request.args.get("id", ""), False)["row"],
                           stages_shown=STAGES_SHOWN)


def _one(agent_run_id: str, plain: bool = True) -> dict:
    """The row of one agent run and (``plain``) the recent runs outside it; 404 when it is not
    among the newest ``AGENT_SCAN``."""
    with console().pool.client() as client:
        agent = next((a for a in client.agent_runs(AGENT_SCAN)
                      if a.agent_run_id == agent_run_id), None) if agent_run_id else None
        if agent is not None:
            members = client.runs(len(agent.runs) + 50, agent_run_id=agent_run_id)
            recent = client.runs(PLAIN_RUNS_NAMED) if plain else ()
    if agent is None:
        abort(404, description=f"no agent run {agent_run_id!r} among the newest {AGENT_SCAN} "
                               "(the Agent runs page lists them)")
    mine = {run.run_id for run in members}
    return {"row": AgentRow(agent, stages(agent, list(members))),
            "plain_runs": " ".join(r.run_id for r in recent if r.run_id not in mine)}


def agent_url(agent_run_id: str) -> str:
    """The page of an agent run (its id quoted: it is user data)."""
    return "/agents/" + quote(agent_run_id, safe="")


bp.add_app_template_global(agent_url, "agent_url")
