"""``titanctl agents``: the agent runs (the runs an agent's session submitted, grouped by their
agent run id), and the runs of one of them in submission order."""

from __future__ import annotations

import typer

from ..config import Config, settings_options
from ..errors import UsageError
from .common import JSON_OPTION, MASTER_OPTION, connect, print_json, print_table, when

_CLIENT = ("host", "port", "key_file", "ask_timeout", "data_dir")
_ALL_RUNS = 100_000  # an agent run's runs are shown whole


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "-"


@settings_options(*_CLIENT)
def agents(config: Config,
           agent_run: str = typer.Argument(None, help="An agent run id: show its runs "
                                           "(default: list the agent runs)."),
           limit: int = typer.Option(20, "--limit", min=1, help="How many agent runs to "
                                     "list, newest first."),
           json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List agent runs, or show one agent run's runs in the order they were submitted (name,
    state, job counts, and the job that submitted each). An unknown id exits 2."""
    with connect(config, master) as client:
        if agent_run is None:
            found = client.agent_runs(limit)
        else:
            runs = list(reversed(client.runs(_ALL_RUNS, agent_run_id=agent_run)))
    if agent_run is None:
        if json_out:
            print_json(found)
            return
        print_table(["AGENT RUN", "RUNS", "STATE", "JOBS", "CREATED", "FINISHED", "NAMES"],
                    [[a.agent_run_id, len(a.runs), a.state.value, sum(a.counts.values()),
                      when(a.created_at), when(a.finished_at), ", ".join(a.names)]
                     for a in found])
        return
    if not runs:
        raise UsageError(f"no agent run {agent_run!r}: `titanctl agents` lists them")
    if json_out:
        print_json({"agent_run_id": agent_run, "runs": runs})
        return
    typer.echo(f"agent run {agent_run}: {len(runs)} runs")
    print_table(["RUN", "NAME", "STATE", "JOBS", "CREATED", "FROM JOB"],
                [[r.run_id, r.name, r.state.value, _counts(r.counts), when(r.created_at),
                  f"{r.from_run}/{r.from_job}" if r.from_job else "-"] for r in runs])
