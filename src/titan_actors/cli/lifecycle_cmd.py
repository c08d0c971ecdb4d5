"""Human approval gates and services: ``titanctl approve`` / ``reject`` / ``gates``, and
``titanctl services`` (list them; ``services stop SERVICE`` stops one).

A refusal (a gate decided already or not reached yet, a job that is not a gate or not a
service, an unknown id) exits 2 with the master's reason on stderr, as every client command.
"""

from __future__ import annotations

import time

import typer

from ..config import Config, settings_options
from .common import JSON_OPTION, MASTER_OPTION, connect, print_json, print_table, when

_CLIENT = ("host", "port", "key_file", "ask_timeout", "data_dir")
_GATE_ARGUMENT = typer.Argument(..., help="The gate: GATE, DAG-GATE or RUN/GATE (a bare id: "
                                "its latest run). A job's hitl_message makes the gate "
                                "hitl-gate-<job>.")
_COMMENT_OPTION = typer.Option("", "--comment", help="Why: recorded with the decision.")


def _span(seconds: float) -> str:
    """A duration as 45s, 12m, 3h05m or 2d04h."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


@settings_options(*_CLIENT)
def approve(config: Config, gate: str = _GATE_ARGUMENT, comment: str = _COMMENT_OPTION,
            master: str = MASTER_OPTION) -> None:
    """Approve a waiting gate: its children go ahead. The decision records who made it."""
    with connect(config, master) as client:
        typer.echo(client.decide_gate(gate, True, comment))


@settings_options(*_CLIENT)
def reject(config: Config, gate: str = _GATE_ARGUMENT, comment: str = _COMMENT_OPTION,
           master: str = MASTER_OPTION) -> None:
    """Reject a waiting gate: its unfinished descendants are skipped (the run fails)."""
    with connect(config, master) as client:
        typer.echo(client.decide_gate(gate, False, comment))


@settings_options(*_CLIENT)
def gates(config: Config,
          all_gates: bool = typer.Option(False, "--all", help="Every gate, the decided and "
                                         "timed-out ones too."),
          json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List the gates waiting for a decision, oldest first.

    Each with its run, age (since its run was submitted), deadline and question; --all: every
    gate, with who decided it and their comment."""
    with connect(config, master) as client:
        found = client.gates(all_gates)
    if json_out:
        print_json(found)
        return
    if not found:
        typer.echo("no gates" if all_gates else "no gate is waiting for a decision")
        return
    now = time.time()
    headers = ["RUN", "GATE", "STATE", "AGE", "DEADLINE", "MESSAGE"]
    rows = [[g.run_id, g.job_id, g.state.value, _span(now - g.created_at),
             f"in {_span(g.deadline - now)} ({when(g.deadline)})" if g.deadline else "-",
             g.message or "-"] for g in found]
    if all_gates:
        headers += ["DECIDED BY", "COMMENT"]
        for row, g in zip(rows, found, strict=True):
            row += [g.decided_by or "-", g.comment or "-"]
    print_table(headers, rows)


services = typer.Typer(invoke_without_command=True)


@services.callback()
@settings_options(*_CLIENT)
def _services(config: Config, ctx: typer.Context,
              all_services: bool = typer.Option(False, "--all", help="Every service, the "
                                                "stopped and dead ones too."),
              json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List the services that have not finished (or stop one: services stop SERVICE).

    Each with its run, state, worker and host, port and restarts; --all: the stopped and dead
    ones too."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(config, master) as client:
        found = client.services(all_services)
        hosts = {w.name: w.host for w in client.workers()} if found and not json_out else {}
    if json_out:
        print_json(found)
        return
    if not found:
        typer.echo("no services" if all_services else "no service is running")
        return
    print_table(["RUN", "SERVICE", "STATE", "WORKER", "HOST", "PORT", "RESTARTS", "REASON"],
                [[s.run_id, s.job_id, s.state.value, s.worker or "-",
                  hosts.get(s.worker, "-"), s.port or "-", s.restarts, s.reason or "-"]
                 for s in found])


@services.command("stop")
@settings_options(*_CLIENT)
def stop(config: Config,
         service: str = typer.Argument(..., help="The service: JOB, DAG-JOB or RUN/JOB."),
         master: str = MASTER_OPTION) -> None:
    """Stop a service; it is not restarted.

    Its process is killed, and its descendants that have not started are skipped. Prints
    STOPPED: DAG-<id>."""
    with connect(config, master) as client:
        typer.echo(client.stop_service(service))
