"""Data for the web console's layer-4 and browser tests, made the way users make it on a real
:class:`~support.local_cluster.LocalCluster`: an agent run whose stages submit the next one
through the SDK, a run whose job leaves files in its workspace, an upload through
``titanctl upload``. Waits follow the master's event stream (``cluster.wait_for``), each with a
deadline."""

from __future__ import annotations

from pathlib import Path

from support.local_cluster import LocalCluster
from titan_actors.scheduler.model import JobSpec, RunSpec, RunState


def stage_script(rest: list[tuple[str, str]]) -> bytes:
    """The script of a stage's job: submit the run ``rest[0]`` (run name, job id) through the
    SDK, from inside the job (so the new run joins the agent run of the job's own run); that
    run's job submits ``rest[1]``, and so on. The last stage only prints."""
    if not rest:
        return b"print('last stage')\n"
    name, job_id = rest[0]
    return (f"from titan_sdk import TitanClient\n"
            f"from titan_actors.scheduler.model import JobSpec\n"
            f"with TitanClient() as client:\n"
            f"    reply = client.submit_dag({name!r}, [JobSpec({job_id!r}, script_name='stage.py',"
            f" script={stage_script(rest[1:])!r}, retries=0)])\n"
            f"print(reply)\n"
            f"raise SystemExit(0 if reply == 'DAG_ACCEPTED' else 1)\n").encode()


def agent_run(cluster: LocalCluster, agent_id: str, names: list[str],
              timeout: float = 45) -> list:
    """Submit an agent run of ``len(names)`` runs (the first from here, each later one by the
    job of the one before) and wait until every run has finished; their summaries, oldest
    first. Job ids are ``<agent_id>-<name>``."""
    chain = [(name, f"{agent_id}-{name}") for name in names]
    first_name, first_job = chain[0]
    spec = RunSpec(first_name, (JobSpec(first_job, script_name="stage.py",
                                        script=stage_script(chain[1:]), retries=0),),
                   agent_run_id=agent_id)
    cluster.client.submit(spec)

    def finished():
        runs = cluster.client.runs(len(names) + 10, agent_run_id=agent_id)
        done = len(runs) == len(names) and all(r.state is not RunState.ACTIVE for r in runs)
        return sorted(runs, key=lambda r: (r.created_at, r.run_id)) if done else None

    return cluster.wait_for(finished, timeout, what=f"the {len(names)} runs of {agent_id}")


def workspace_run(cluster: LocalCluster, name: str, files: dict[str, bytes],
                  timeout: float = 30) -> str:
    """A run whose one job writes ``files`` (relative path -> content) in its working folder;
    returns its run id once it completed."""
    writes = "; ".join(
        f"import pathlib; p = pathlib.Path({path!r}); p.parent.mkdir(parents=True, "
        f"exist_ok=True); p.write_bytes({content!r})" for path, content in files.items())
    spec = RunSpec(name, (JobSpec(f"{name}-write", script_name="write.py",
                                  script=writes.encode(), retries=0),))
    run_id = cluster.client.submit(spec).run_id
    state = cluster.client.follow_run(run_id, timeout).state
    assert state is RunState.COMPLETED, cluster.client.logs(f"{run_id}/{name}-write").data
    return run_id


def upload(cluster: LocalCluster, path: Path, content: bytes) -> None:
    """``titanctl upload PATH`` of a file holding ``content``."""
    path.write_bytes(content)
    done = cluster.ctl("upload", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
