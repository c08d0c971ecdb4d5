"""The client commands: submit and follow pipelines, inspect runs, jobs, logs and workers."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import Config, settings_options
from ..errors import AskTimeoutError, UsageError
from ..scheduler.model import RunState
from ..wire.messages.master import EventKind
from .common import (
    EXIT_FAILED,
    JSON_OPTION,
    MASTER_OPTION,
    connect,
    print_json,
    print_table,
    when,
    write_raw,
)

_CLIENT = ("host", "port", "key_file", "ask_timeout", "data_dir")


def _event_line(event) -> str:
    what = event.job_state.value if event.job_state else (
        event.run_state.value if event.run_state else event.detail)
    where = f" on {event.worker}" if event.worker else ""
    attempt = f" (attempt {event.attempt})" if event.attempt else ""
    extra = f": {event.detail}" if event.detail and event.job_state else ""
    name = event.job_id or event.run_id or event.worker
    return f"{when(event.at)}  {name}  {what}{attempt}{where}{extra}"


def _print_progress(event) -> None:
    if event.kind is not EventKind.LOG:
        typer.echo(_event_line(event))


@settings_options(*_CLIENT)
def submit(config: Config,
           pipeline: Path = typer.Argument(..., help="The pipeline YAML file."),
           wait: bool = typer.Option(False, "--wait", help="Follow the run; exit 0 when every "
                                     "job completed, 1 otherwise."),
           timeout: float = typer.Option(3600.0, "--timeout", help="With --wait: give up "
                                         "after this many seconds (exit 1)."),
           agent_run_id: str = typer.Option("", "--agent-run-id", help="Group this run with "
                                            "others under an agent run id (titanctl agents)."),
           json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """Submit a pipeline as a new run (in project mode its folder is uploaded first)."""
    import dataclasses

    from ..pipeline import load_pipeline
    from ..transfer import submit_pipeline
    spec = load_pipeline(pipeline)
    if agent_run_id:
        spec = dataclasses.replace(spec, agent_run_id=agent_run_id)
    with connect(config, master) as client:
        accepted = submit_pipeline(client, spec)
        _accepted(client, accepted, spec.name, wait, timeout, json_out)


@settings_options(*_CLIENT)
def rerun(config: Config,
          run: str = typer.Argument("latest", help="The run to submit again (default: the "
                                    "latest run)."),
          wait: bool = typer.Option(False, "--wait", help="Follow the new run; exit 0 when "
                                    "every job completed, 1 otherwise."),
          timeout: float = typer.Option(3600.0, "--timeout", help="With --wait: give up "
                                        "after this many seconds (exit 1)."),
          json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """Submit a run's pipeline again as a new run: its jobs as they were submitted (with the
    same name and agent run id; jobs its jobs added while running are added again by them)."""
    with connect(config, master) as client:
        found = client.run_spec(run)
        accepted = client.submit(found.spec)
        _accepted(client, accepted, found.spec.name, wait, timeout, json_out,
                  note=f", a re-run of {found.run_id}")


def _accepted(client, accepted, name: str, wait: bool, timeout: float, json_out: bool,
              note: str = "") -> None:
    """Say that a run was accepted; with ``wait``, follow it and exit 1 unless it completed."""
    if not wait:
        print_json(accepted) if json_out else typer.echo(
            f"run {accepted.run_id} accepted: {len(accepted.job_ids)} jobs ({name}){note}")
        return
    if not json_out:
        typer.echo(f"run {accepted.run_id} accepted: {len(accepted.job_ids)} jobs "
                   f"({name}){note}; following it")
    try:
        summary = client.follow_run(accepted.run_id, timeout,
                                    on_event=None if json_out else _print_progress,
                                    after_seq=accepted.last_seq)
    except AskTimeoutError:
        typer.echo(f"run {accepted.run_id} did not finish within {timeout:g} s (it goes "
                   f"on: titanctl status {accepted.run_id})", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    if json_out:
        print_json(client.run(accepted.run_id))
    else:
        typer.echo(f"run {summary.run_id} {summary.state.value}: " + ", ".join(
            f"{count} {state}" for state, count in sorted(summary.counts.items())))
    if summary.state not in (RunState.COMPLETED, RunState.SERVING):  # services may run on
        raise typer.Exit(EXIT_FAILED)


def validate(pipeline: Path = typer.Argument(..., help="The pipeline YAML file.")) -> None:
    """Check a pipeline without submitting it: keys, files, parents, cycles."""
    from ..pipeline import describe_pipeline, load_pipeline
    from ..scheduler import check_jobs
    spec = load_pipeline(pipeline)
    # parents outside the file are resolved by the master at submit time
    check_jobs(spec.jobs, resolve=lambda parent: "(another run)")
    typer.echo(describe_pipeline(spec))
    typer.echo("valid")


def _job_rows(jobs) -> list[list]:
    return [[j.job_id, j.state.value, j.attempt, j.worker or "-", j.priority, j.reason or ""]
            for j in jobs]


@settings_options(*_CLIENT)
def status(config: Config,
           ref: str = typer.Argument(None, help="A run id, a job (JOB, RUN/JOB or DAG-JOB); "
                                     "default: the latest run."),
           json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """Show a run with its jobs, or one job."""
    with connect(config, master) as client:
        try:
            detail = client.run(ref or "latest")
        except UsageError:
            if ref is None:
                raise
            job = client.job(ref)
            print_json(job) if json_out else _print_job(job)
            return
    if json_out:
        print_json(detail)
        return
    run = detail.run
    typer.echo(f"run {run.run_id} ({run.name}): {run.state.value}, created "
               f"{when(run.created_at)}{submitted_by(run)}")
    print_table(["JOB", "STATE", "ATTEMPT", "WORKER", "PRIORITY", "REASON"],
                _job_rows(detail.jobs))


@settings_options(*_CLIENT)
def runs(config: Config, limit: int = typer.Option(20, "--limit", min=1),
         json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List the latest runs."""
    with connect(config, master) as client:
        found = client.runs(limit)
    if json_out:
        print_json(found)
        return
    print_table(["RUN", "NAME", "STATE", "JOBS", "CREATED"],
                [[r.run_id, r.name, r.state.value, sum(r.counts.values()), when(r.created_at)]
                 for r in found])


@settings_options(*_CLIENT)
def jobs(config: Config, run: str = typer.Argument("latest", help="A run id (default: the "
                                                    "latest run)."),
         json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List the jobs of a run."""
    with connect(config, master) as client:
        detail = client.run(run)
    if json_out:
        print_json(detail.jobs)
    else:
        print_table(["JOB", "STATE", "ATTEMPT", "WORKER", "PRIORITY", "REASON"],
                    _job_rows(detail.jobs))


def submitted_by(run) -> str:
    """", submitted by job RUN/JOB" (or "from run RUN") when a job submitted ``run``."""
    if run.from_job:
        return f", submitted by job {run.from_run}/{run.from_job}"
    return f", from run {run.from_run}" if run.from_run else ""


def _print_job(detail) -> None:
    job = detail.job
    typer.echo(f"job {job.run_id}/{job.job_id}: {job.state.value} ({job.status})")
    for label, value in (("attempt", f"{job.attempt} of {job.max_attempts}"),
                         ("worker", job.worker or "-"), ("priority", job.priority),
                         ("requirement", job.requirement),
                         ("parents", ", ".join(job.parents) or "-"),
                         ("added by", job.added_by or "-"),
                         ("reason", job.reason or "-"),
                         ("exit code", "-" if job.exit_code is None else job.exit_code),
                         ("runs", " ".join(detail.command) or detail.script_name),
                         ("args", " ".join(detail.args) or "-"),
                         ("created", when(job.created_at)), ("started", when(job.started_at)),
                         ("finished", when(job.finished_at))):
        typer.echo(f"  {label:<12} {value}")
    for event in detail.history:
        if event.kind is not EventKind.LOG:  # output is for `titanctl logs`, not a state change
            typer.echo(f"  {_event_line(event)}")


@settings_options(*_CLIENT)
def describe(config: Config, job: str = typer.Argument(..., help="JOB, RUN/JOB or DAG-JOB."),
             json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """Everything about one job: state, attempts, worker, reason, history."""
    with connect(config, master) as client:
        detail = client.job(job)
    print_json(detail) if json_out else _print_job(detail)


@settings_options(*_CLIENT)
def logs(config: Config, job: str = typer.Argument(..., help="JOB, RUN/JOB or DAG-JOB."),
         follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing output "
                                     "until the job ends."),
         json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """Print a job's output (stdout and stderr), verbatim (--json: as one JSON object, the
    output decoded as UTF-8 with bad bytes replaced)."""
    with connect(config, master) as client:
        first = client.logs(job, 0)
        if json_out:
            data, chunk = first.data, first
            while chunk.data:
                chunk = client.logs(f"{first.run_id}/{first.job_id}", chunk.next_offset)
                data += chunk.data
            print_json({"run_id": first.run_id, "job_id": first.job_id, "output": data,
                        "finished": chunk.finished, "truncated": chunk.truncated})
            return
        write_raw(first.data)
        exact = f"{first.run_id}/{first.job_id}"  # a bare id resolves once: not to a newer run
        if follow:
            for data in client.follow_logs(exact, first.next_offset):
                write_raw(data)
            return
        offset = first.next_offset
        while first.data:
            chunk = client.logs(exact, offset)
            write_raw(chunk.data)
            if not chunk.data:
                return
            offset = chunk.next_offset


@settings_options(*_CLIENT)
def cancel(config: Config, ref: str = typer.Argument(..., help="A run id or a job."),
           master: str = MASTER_OPTION) -> None:
    """Cancel a job (and its descendants) or a whole run; running processes are killed."""
    with connect(config, master) as client:
        typer.echo(client.cancel(ref))


@settings_options(*_CLIENT)
def retry(config: Config, ref: str = typer.Argument(..., help="A job."),
          master: str = MASTER_OPTION) -> None:
    """Run a dead, cancelled or skipped job again (its skipped descendants too)."""
    with connect(config, master) as client:
        typer.echo(client.retry(ref))


@settings_options(*_CLIENT)
def workers(config: Config, json_out: bool = JSON_OPTION, master: str = MASTER_OPTION) -> None:
    """List the workers: kind (permanent, ephemeral, or burst of the worker that started it),
    tags, slots, running jobs, liveness, idle time and the scaler's latest decision."""
    with connect(config, master) as client:
        found = client.workers()
    if json_out:
        print_json(found)
        return
    print_table(["WORKER", "KIND", "TAGS", "SLOTS", "RUNNING", "HOST", "CONNECTED", "SEEN",
                 "IDLE", "SCALER"],
                [[w.name, _kind(w), ",".join(w.tags), w.slots, w.running, w.host,
                  ("draining" if w.draining else "yes") if w.connected else "no",
                  f"{w.seen_ago:.1f}s ago", f"{w.idle_for:.0f}s" if w.idle_for else "-",
                  w.scaling or "-"] for w in found])


def _kind(worker) -> str:
    if worker.burst_of:
        return f"burst of {worker.burst_of}"
    return "ephemeral" if worker.ephemeral else "permanent"


@settings_options(*_CLIENT, "retention_age", "retention_runs")
def prune(config: Config, master: str = MASTER_OPTION) -> None:
    """Drop finished runs past the retention age or count, with their logs; compacts the AOF."""
    with connect(config, master, admin=True) as client:
        typer.echo(client.prune(config.retention_age, config.retention_runs))
