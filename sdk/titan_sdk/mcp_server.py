"""The Titan MCP server (COMPAT.md, "MCP tools"): the master's jobs, DAGs and store as MCP tools.

Every tool answers JSON text: its success shape from COMPAT, or ``{"status": "error",
"message": ...}``. The server talks to the master only through :class:`TitanClient` (blocking and
gevent-free), called from a worker thread so the asyncio event loop never blocks; one client is
kept for the server's life and its calls are serialised. Run over stdio with ``main()`` (``python
-m titan_sdk.mcp_server``): stdout carries only the protocol, all logging goes to stderr.

Gate decisions (``approve_hitl_gate`` / ``reject_hitl_gate``, and ``store_put`` to
``titan:hitl:status:*`` keys) are refused unless the operator sets
``TITAN_MCP_ALLOW_GATE_DECISIONS=1``: a gate an agent can open itself is not a human gate. When
allowed, a decision is recorded as made by ``titan-mcp (client)``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer

from .mcp_runs import NativeMaster, _error, _json, jobs_from_json, register_run_tools
from .native import Titan
from .titan_sdk import TitanClient, TitanJob

__all__ = ["ALLOW_GATES_ENV", "build_server", "main"]

ALLOW_GATES_ENV = "TITAN_MCP_ALLOW_GATE_DECISIONS"
GATE_KEY_PREFIX = "titan:hitl:status:"
_PING_PROBE = "__titan_mcp_ping__"
_FAILURE_PREFIXES = ("ERROR: ", "CONNECTION_ERROR: ")

log = logging.getLogger("titan_sdk.mcp")




def _failed(reply: object) -> bool:
    return isinstance(reply, str) and reply.startswith(_FAILURE_PREFIXES)


def _gates_allowed() -> bool:
    return os.environ.get(ALLOW_GATES_ENV, "") == "1"


def _gate_refusal(what: str) -> str:
    return (f"{what} through MCP is refused: set {ALLOW_GATES_ENV}=1 in the MCP server's "
            f"environment to allow it (a gate an agent can open itself is not a human gate)")


def _agent_run_id(given: str) -> str:
    return given or f"mcp-{uuid.uuid4().hex[:12]}"


class _Master:
    """One lazily made SDK client, its calls serialised and run in a worker thread."""

    def __init__(self, factory: Callable[[], TitanClient]) -> None:
        self._factory = factory
        self._client: TitanClient | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        client = self._get()
        return client.host, client.port

    def _get(self) -> TitanClient:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    async def call(self, action: Callable[[TitanClient], Any]) -> Any:
        def run() -> Any:
            client = self._get()
            with self._lock:
                return action(client)
        return await anyio.to_thread.run_sync(run)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A tool that answers an error result instead of raising."""
    @functools.wraps(fn)
    async def tool(*args: Any, **kwargs: Any) -> str:
        try:
            return await fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - every failure becomes an error result
            log.exception("MCP tool %s failed", fn.__name__)
            return _error(f"{type(error).__name__}: {error}")
    return tool


def _job_from(entry: object, index: int) -> TitanJob:
    if not isinstance(entry, dict):
        raise ValueError(f"jobs_json[{index}] is not an object")
    job_id = entry.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ValueError(f"jobs_json[{index}] has no job_id")
    parents = entry.get("parents") or []
    if isinstance(parents, str):
        parents = [parents]
    hitl_message = entry.get("hitl_message") or None
    if hitl_message is not None and not isinstance(hitl_message, str):
        raise ValueError(f"jobs_json[{index}] hitl_message must be a string")
    return TitanJob(job_id, script_content=str(entry.get("script_content", "")),
                    args=entry.get("args") or None, parents=list(parents),
                    priority=int(entry.get("priority", 1)),
                    requirement=str(entry.get("requirement") or "GENERAL"),
                    hitl_message=hitl_message,
                    max_wait_seconds=entry.get("max_wait_seconds", 172800))


def _mcp_client() -> TitanClient:
    return TitanClient(identity="titan-mcp")


def build_server(client_factory: Callable[[], TitanClient] = _mcp_client,
                 native_factory: Callable[[], Titan] | None = None) -> MCPServer:
    """The MCP server with the COMPAT tools, talking to the master through
    ``client_factory()`` (made on the first call that needs the master), and the run tools of
    ``mcp_runs`` through ``native_factory()`` (default: a native client with the same address,
    timeout and credentials as the COMPAT one)."""
    master = _Master(client_factory)
    server = MCPServer("titan", instructions=(
        "Submit jobs and DAGs to a Titan Actors cluster, follow their status and logs, and use "
        "its key-value store. Every tool answers JSON text; failures are "
        '{"status": "error", "message": ...}.'))

    def tool(fn: Callable[..., Any]) -> Callable[..., Any]:
        server.add_tool(_guarded(fn), name=fn.__name__, description=fn.__doc__,
                        structured_output=False)
        return fn

    @tool
    async def ping_master() -> str:
        """Check that the Titan master answers. Returns {"status": "ok", "host", "port"}."""
        reply = await master.call(lambda c: c.get_job_status(_PING_PROBE))
        if _failed(reply):
            return _error(reply)
        host, port = master.address
        return _json({"status": "ok", "host": host, "port": port})

    @tool
    async def submit_single_job(job_id: str, script_content: str, args: str = "",
                                requirement: str = "GENERAL", priority: int = 1) -> str:
        """Submit one Python script as a job (its own DAG). ``args`` is one shell-like string.
        Returns {"status": "submitted", "job_id", "master_response"}."""
        job = TitanJob(job_id, script_content=script_content, args=args or None,
                       requirement=requirement or "GENERAL", priority=priority)
        reply = await master.call(lambda c: c.submit_job(job))
        if _failed(reply):
            return _error(reply)
        return _json({"status": "submitted", "job_id": job_id, "master_response": reply})

    @tool
    async def submit_dag_pipeline(dag_name: str, jobs_json: str, agent_run_id: str = "") -> str:
        """Submit a DAG of Python-script jobs. ``jobs_json`` is a JSON list of {job_id,
        script_content, args, requirement, priority, parents, hitl_message, max_wait_seconds};
        a job with hitl_message is followed by a human approval gate hitl-gate-<job_id> (its
        children wait for a person's decision, at most max_wait_seconds). An agent run id is
        generated when none is given. Returns {"status": "submitted", "dag_name", "job_count",
        "agent_run_id", "master_response"}."""
        try:
            jobs = jobs_from_json(jobs_json, _job_from)
        except ValueError as error:
            return _error(str(error))
        run_id = _agent_run_id(agent_run_id)
        reply = await master.call(lambda c: c.submit_dag(dag_name, jobs, agent_run_id=run_id))
        if _failed(reply):
            return _error(reply)
        return _json({"status": "submitted", "dag_name": dag_name, "job_count": len(jobs),
                      "agent_run_id": run_id, "master_response": reply})

    @tool
    async def submit_yaml_pipeline(yaml_path: str, agent_run_id: str = "") -> str:
        """Submit the YAML pipeline at ``yaml_path`` (a path on the MCP server's machine); an
        agent run id is generated when none is given. Returns {"status": "submitted",
        "yaml_path", "agent_run_id", "master_response"}."""
        run_id = _agent_run_id(agent_run_id)
        reply = await master.call(lambda c: c.submit_yaml(yaml_path, agent_run_id=run_id))
        if _failed(reply):
            return _error(reply)
        return _json({"status": "submitted", "yaml_path": yaml_path, "agent_run_id": run_id,
                      "master_response": reply})

    @tool
    async def get_job_status(job_id: str) -> str:
        """A job's status: PENDING, RUNNING, COMPLETED, DEAD or CANCELLED; NULL for an unknown
        id. Returns {"job_id", "status"}."""
        reply = await master.call(lambda c: c.get_job_status(job_id))
        if _failed(reply):
            return _error(reply)
        return _json({"job_id": job_id, "status": reply})

    @tool
    async def get_job_logs(job_id: str) -> str:
        """A job's output (stdout and stderr) so far; empty for an unknown id. Returns
        {"job_id", "logs"}."""
        reply = await master.call(lambda c: c.fetch_logs(job_id))
        if _failed(reply):
            return _error(reply)
        return _json({"job_id": job_id, "logs": reply})

    async def decide(gate_id: str, approve: bool, comment: str) -> str:
        verb = "approved" if approve else "rejected"
        if not _gates_allowed():
            return _error(_gate_refusal(f"{'approving' if approve else 'rejecting'} gate "
                                        f"{gate_id!r}"))
        reply = await master.call(lambda c: (c.approve_gate if approve else c.reject_gate)(
            gate_id, comment))
        if _failed(reply):
            return _error(reply)
        return _json({"status": verb, "gate_id": gate_id, "message": reply})

    @tool
    async def approve_hitl_gate(gate_id: str, comment: str = "") -> str:
        """Approve a waiting human-in-the-loop gate (a job's hitl_message makes the gate
        hitl-gate-<job_id>); its children go ahead. Refused unless the operator set
        TITAN_MCP_ALLOW_GATE_DECISIONS=1. Returns {"status": "approved", "gate_id",
        "message"}."""
        return await decide(gate_id, True, comment)

    @tool
    async def reject_hitl_gate(gate_id: str, comment: str = "") -> str:
        """Reject a waiting human-in-the-loop gate; its downstream jobs are skipped. Refused
        unless the operator set TITAN_MCP_ALLOW_GATE_DECISIONS=1. Returns {"status":
        "rejected", "gate_id", "message"}."""
        return await decide(gate_id, False, comment)

    @tool
    async def store_get(key: str) -> str:
        """Read a key of the cluster's store; the value is "NULL" when the key is missing.
        Returns {"key", "value"}."""
        reply = await master.call(lambda c: c.store_get(key))
        if _failed(reply):
            return _error(reply)
        return _json({"key": key, "value": reply})

    @tool
    async def store_put(key: str, value: str) -> str:
        """Write a key of the cluster's store (gate status keys titan:hitl:status:* are refused
        unless the operator set TITAN_MCP_ALLOW_GATE_DECISIONS=1). Returns {"status": "ok",
        "key"}."""
        if key.startswith(GATE_KEY_PREFIX) and not _gates_allowed():
            return _error(_gate_refusal(f"writing the gate status key {key!r}"))
        reply = await master.call(lambda c: c.store_put(key, value))
        if _failed(reply):
            return _error(reply)
        return _json({"status": "ok", "key": key})

    @tool
    async def deploy_script(script_name: str, script_content: str) -> str:
        """Deploy a script to the cluster's script library. Returns {"status": "deployed",
        "script_name"}."""
        reply = await master.call(lambda c: c.deploy_script_content(script_name,
                                                                    script_content))
        if _failed(reply):
            return _error(reply)
        return _json({"status": "deployed", "script_name": script_name})

    def same_master() -> Titan:
        client = master._get()
        return Titan(client.host, client.port, client.timeout,
                     key_file=getattr(client, "_key_file", None),
                     token=getattr(client, "_token", None))

    register_run_tools(tool, NativeMaster(native_factory or same_master), _job_from)
    return server


def main(argv: list[str] | None = None) -> int:
    """Serve the MCP tools over stdio until the client closes stdin."""
    del argv
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("TITAN_MCP_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = build_server()
    log.info("Titan MCP server on stdio")
    server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
