"""The MCP server's run tools, over the native SDK (:class:`titan_sdk.Titan`).

``list_runs``, ``list_agent_runs``, ``list_workers``, ``list_gates``, ``list_services``,
``get_run_status``, ``cancel_run`` and ``run_dag_and_wait`` (submit a DAG, wait for it within a
bounded time and answer with every job's state and the output of its final jobs, so that one
prompt gets its answer). Each answers
JSON text: ``{"status": "ok" | ..., ...}``, or ``{"status": "error", "message": ...}``.

The short tools share one client, serialised like the COMPAT tools; ``run_dag_and_wait`` uses a
client of its own for the whole wait, so a long wait holds up no other tool. Calls run in worker
threads: the asyncio event loop never blocks.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio.to_thread

from titan_actors.errors import UsageError
from titan_actors.scheduler.views import iso

from .errors import RunFailed, TitanSDKError, WaitTimeout
from .jobs import Job, Pipeline
from .native import Run, RunResult, Titan

__all__ = ["MAX_WAIT_SECONDS", "NativeMaster", "register_run_tools"]

MAX_WAIT_SECONDS = 1800      # run_dag_and_wait waits at most this long, whatever it is asked
OUTPUT_CAP = 16_000          # characters of one final job's output (its end is kept)
OUTPUTS_CAP = 64_000         # characters of all the outputs of one answer together
_Tool = Callable[[Callable[..., Any]], Callable[..., Any]]


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value)


def _error(message: str) -> str:
    return _json({"status": "error", "message": message})


def jobs_from_json(jobs_json: str, build: Callable[[object, int], Any]) -> list[Any]:
    """``build(entry, index)`` of each entry of the JSON list ``jobs_json``. Raises ValueError
    saying what is wrong (not JSON, not a non-empty list, or ``build``'s own refusal)."""
    try:
        entries = json.loads(jobs_json)
    except ValueError as error:
        raise ValueError(f"jobs_json is not valid JSON: {error}") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError("jobs_json must be a non-empty JSON list of jobs")
    try:
        return [build(entry, i) for i, entry in enumerate(entries)]
    except TypeError as error:
        raise ValueError(str(error)) from None


class NativeMaster:
    """Native clients made by ``factory``: one shared (its calls serialised), and fresh ones
    for long waits."""

    def __init__(self, factory: Callable[[], Titan]) -> None:
        self._factory = factory
        self._client: Titan | None = None
        self._lock = threading.Lock()

    async def call(self, action: Callable[[Titan], Any]) -> Any:
        """``action(shared client)`` in a worker thread, one call at a time."""
        def run() -> Any:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
                return action(self._client)
        return await anyio.to_thread.run_sync(run)

    async def call_alone(self, action: Callable[[Titan], Any]) -> Any:
        """``action(a fresh client)`` in a worker thread, the client closed after."""
        def run() -> Any:
            with self._factory() as client:
                return action(client)
        return await anyio.to_thread.run_sync(run)


def _run_json(run: Any) -> dict[str, Any]:
    return {"run_id": run.run_id, "name": run.name, "state": run.state.value,
            "agent_run_id": run.agent_run_id, "created_at": iso(run.created_at),
            "finished_at": iso(run.finished_at) if run.finished_at else None,
            "counts": dict(run.counts), "from_run": run.from_run, "from_job": run.from_job}


def _agent_json(agent: Any) -> dict[str, Any]:
    return {"agent_run_id": agent.agent_run_id, "state": agent.state.value,
            "runs": list(agent.runs), "names": list(agent.names),
            "created_at": iso(agent.created_at),
            "finished_at": iso(agent.finished_at) if agent.finished_at else None,
            "counts": dict(agent.counts)}


def _worker_json(worker: Any) -> dict[str, Any]:
    return {"name": worker.name, "tags": list(worker.tags), "slots": worker.slots,
            "running": worker.running, "host": worker.host, "connected": worker.connected,
            "seen_ago": round(worker.seen_ago, 1), "ephemeral": worker.ephemeral,
            "draining": worker.draining}


def _gate_json(gate: Any) -> dict[str, Any]:
    return {"run_id": gate.run_id, "gate_id": gate.job_id, "state": gate.state.value,
            "status": gate.status, "message": gate.message, "parents": list(gate.parents),
            "created_at": iso(gate.created_at),
            "deadline": iso(gate.deadline) if gate.deadline else None,
            "decided_by": gate.decided_by, "comment": gate.comment}


def _service_json(service: Any, hosts: dict[str, str]) -> dict[str, Any]:
    host = hosts.get(service.worker, "")
    return {"run_id": service.run_id, "service_id": service.job_id,
            "state": service.state.value, "status": service.status, "worker": service.worker,
            "port": service.port, "restarts": service.restarts,
            "address": f"{host}:{service.port}" if host and service.port else None,
            "reason": service.reason}


def _tail(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    return f"[... first {len(text) - cap} characters cut ...]\n" + text[-cap:]


def _final_jobs(result: RunResult) -> list[str]:
    """The jobs no other job of the run waits for, in submission order."""
    waited_on = {parent for job in result.jobs for parent in job.parents}
    return [job.job_id for job in result.jobs if job.job_id not in waited_on]


def _outputs(run: Run, job_ids: list[str]) -> dict[str, str]:
    if not job_ids:
        return {}
    cap = min(OUTPUT_CAP, max(1_000, OUTPUTS_CAP // len(job_ids)))
    return {job_id: _tail(run.logs(job_id), cap) for job_id in job_ids}


def _wait_answer(run: Run, agent_run_id: str, timeout: float) -> dict[str, Any]:
    """Wait for ``run`` and describe how it ended (see ``run_dag_and_wait``)."""
    answer: dict[str, Any] = {"run_id": run.run_id, "agent_run_id": agent_run_id}
    try:
        result = run.wait(timeout)
        status = "completed"
    except RunFailed as failed:
        result, status = failed.result, "failed"
        answer["failed_job_ids"] = failed.failed_job_ids
    except WaitTimeout:
        result, status = run.result(), "timeout"
        answer["message"] = (f"the run did not finish within {timeout:g} s and goes on: "
                             f"follow it with get_run_status({run.run_id!r})")
    answer["status"] = status
    answer["states"] = {job_id: state.value for job_id, state in result.states.items()}
    answer["outputs"] = _outputs(run, _final_jobs(result))
    return answer


def _job(compat: Any, entry: Any) -> Job:
    """A ``TitanJob`` read from one ``jobs_json`` entry, with the entry's "retries"."""
    spec = compat.to_spec()
    if "retries" in entry:
        spec = replace(spec, retries=entry["retries"])  # the master checks the number
    return Job.from_spec(spec)


def register_run_tools(add_tool: _Tool, native: NativeMaster,
                       job_from: Callable[[object, int], Any]) -> None:
    """Add the run tools to a server through its ``add_tool`` decorator. ``job_from(entry,
    index)`` reads one entry of a ``jobs_json`` list into a ``TitanJob`` (the COMPAT tools'
    reader)."""

    def tool(fn: Callable[..., Any]) -> Callable[..., Any]:
        add_tool(_sdk_errors(fn))
        return fn

    @tool
    async def list_runs(limit: int = 20, agent_run_id: str = "") -> str:
        """The newest runs (at most ``limit``), newest first; with ``agent_run_id``, only that
        agent run's. Returns {"status": "ok", "runs": [{run_id, name, state, agent_run_id,
        created_at, finished_at, counts, from_run, from_job}]}."""
        limit = min(max(int(limit), 1), 1000)
        runs = await native.call(lambda t: t.runs(agent_run_id or None, limit))
        return _json({"status": "ok", "runs": [_run_json(r) for r in runs]})

    @tool
    async def list_agent_runs(limit: int = 20) -> str:
        """The newest agent runs (the runs an agent submitted, grouped by agent run id).
        Returns {"status": "ok", "agent_runs": [{agent_run_id, state, runs, names, created_at,
        finished_at, counts}]}."""
        limit = min(max(int(limit), 1), 1000)
        found = await native.call(lambda t: t.agent_runs(limit))
        return _json({"status": "ok", "agent_runs": [_agent_json(a) for a in found]})

    @tool
    async def list_workers() -> str:
        """The cluster's workers. Returns {"status": "ok", "workers": [{name, tags, slots,
        running, host, connected, seen_ago, ephemeral, draining}]}."""
        found = await native.call(lambda t: t.workers())
        return _json({"status": "ok", "workers": [_worker_json(w) for w in found]})

    @tool
    async def list_gates(all: bool = False) -> str:
        """The human approval gates waiting for a decision, oldest first (``all``: decided and
        timed-out ones too). Returns {"status": "ok", "gates": [{run_id, gate_id, state,
        status, message, parents, created_at, deadline, decided_by, comment}]}. Deciding one
        is approve_hitl_gate / reject_hitl_gate (for a person, not an agent)."""
        found = await native.call(lambda t: t.gates(bool(all)))
        return _json({"status": "ok", "gates": [_gate_json(g) for g in found]})

    @tool
    async def list_services(all: bool = False) -> str:
        """The services that have not finished (``all``: stopped and dead ones too). Returns
        {"status": "ok", "services": [{run_id, service_id, state, status, worker, port,
        restarts, address, reason}]}; address is "host:port" once the service has a port."""
        found, workers = await native.call(lambda t: (t.services(bool(all)), t.workers()))
        hosts = {w.name: w.host for w in workers}
        return _json({"status": "ok", "services": [_service_json(s, hosts) for s in found]})

    @tool
    async def get_run_status(run_id: str) -> str:
        """A run's state (active, completed, failed, cancelled; serving: only ready services
        run on) and each job's exact state.
        Returns {"status": "ok", "run_id", "name", "state", "agent_run_id", "states":
        {job_id: state}}."""
        result = await native.call(lambda t: t.run(run_id).result())
        return _json({"status": "ok", "run_id": result.run_id, "name": result.name,
                      "state": result.state.value, "agent_run_id": result.agent_run_id,
                      "states": {j: s.value for j, s in result.states.items()}})

    @tool
    async def cancel_run(run_id: str) -> str:
        """Cancel every unfinished job of a run (running processes are killed). Returns
        {"status": "cancelled", "run_id", "message"}."""
        message = await native.call(lambda t: t.run(run_id).cancel())
        return _json({"status": "cancelled", "run_id": run_id, "message": message})

    @tool
    async def run_dag_and_wait(dag_name: str, jobs_json: str, timeout_seconds: int = 300,
                               agent_run_id: str = "") -> str:
        """Submit a DAG of Python-script jobs and wait until it finishes, at most
        ``timeout_seconds`` (capped at 1800). ``jobs_json`` as for submit_dag_pipeline; a job
        may also give "retries" (its extra attempts after a failure). Returns {"status":
        "completed" | "failed" | "timeout", "run_id", "agent_run_id", "states": {job_id:
        state}, "outputs": {job_id: output}}: the outputs of the final jobs (no other job
        depends on them), their end kept when long; "failed" adds "failed_job_ids". On
        "timeout" the run goes on (follow it with get_run_status)."""
        try:
            jobs = jobs_from_json(jobs_json, lambda entry, i: _job(job_from(entry, i), entry))
        except ValueError as error:
            return _error(str(error))
        except UsageError as error:  # args that do not split, a max_wait_seconds not a number
            return _error(f"ERROR: {error}")
        agent = agent_run_id or f"mcp-{uuid.uuid4().hex[:12]}"
        timeout = float(min(max(timeout_seconds, 1), MAX_WAIT_SECONDS))
        pipeline = Pipeline(dag_name, jobs, agent, source="mcp")

        def submit_and_wait(titan: Titan) -> dict[str, Any]:
            return _wait_answer(titan.submit(pipeline), agent, timeout)

        return _json(await native.call_alone(submit_and_wait))


def _sdk_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A tool that answers the SDK's exceptions as error results, named by their class
    (``NotFound: no run 'r1' ...``); any other exception passes on."""
    @functools.wraps(fn)
    async def tool(*args: Any, **kwargs: Any) -> str:
        try:
            return await fn(*args, **kwargs)
        except TitanSDKError as error:
            return _error(f"{type(error).__name__}: {error}")
    return tool
