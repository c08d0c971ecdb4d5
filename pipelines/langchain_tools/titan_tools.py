"""The Titan SDK as LangChain tools: run a DAG of Python jobs, read a job's status and output,
get and put store values.

``make_tools(client)`` returns the tools, bound to one :class:`titan_sdk.TitanClient` (default:
``TitanClient()``, which finds the master through ``TITAN_HOST`` / ``TITAN_PORT``). Give them to
a chat model (``model.bind_tools(tools)``) or call them directly (``tool.invoke({...})``).

Each tool answers JSON text, in the shapes of the MCP server's tools. A refusal (``ERROR: ...``)
or an unreachable master (``CONNECTION_ERROR: ...``) is raised as a ToolException, which the
tool hands back as its answer, so a model reads why and can try again.

This module imports only the SDK and ``langchain_core``: never gevent, nor the runtime.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from langchain_core.tools import BaseTool, ToolException, tool
from pydantic import BaseModel, Field

from titan_sdk import TitanClient

__all__ = ["JobInput", "make_tools"]


class JobInput(BaseModel):
    """One job of a DAG: a Python script run on some worker."""

    job_id: str = Field(description="the job's id, unique in the DAG (no spaces or '/')")
    script_content: str = Field(description="the Python script; `from titan_sdk import "
                                            "TitanClient` works in it, for the store")
    args: str = Field(default="", description="its arguments, split like a shell would")
    parents: list[str] = Field(default=[], description="ids of the jobs it waits for")


def _checked(reply: object) -> object:
    """``reply``, unless the SDK answered with an error string: raise that as a ToolException."""
    if isinstance(reply, str) and reply.startswith(("ERROR:", "CONNECTION_ERROR:")):
        raise ToolException(reply)
    return reply


def make_tools(client: TitanClient | None = None) -> list[BaseTool]:
    """The tools ``submit_dag``, ``job_status``, ``job_logs``, ``store_get`` and ``store_put``,
    each calling ``client`` (one connection, kept; close the client when done)."""
    sdk = client if client is not None else TitanClient()

    @tool(parse_docstring=True)
    def submit_dag(dag_name: str, jobs: list[JobInput], agent_run_id: str = "",
                   wait: bool = True, timeout_seconds: float = 120) -> str:
        """Run Python jobs as one DAG (a new run) and, with wait, answer once every job is done,
        with each job's status (COMPLETED, DEAD, ...). A failed job is not retried.

        Args:
            dag_name: a name for the run.
            jobs: the jobs; a job starts once all its parents completed.
            agent_run_id: groups the runs of one agent task (empty: none).
            wait: wait until every job has finished before answering.
            timeout_seconds: with wait, give up after this many seconds.
        """
        # A pipeline file, because submit_yaml is the SDK call that can wait: it follows the
        # master's events until the run is over, where a model would poll job_status.
        with tempfile.TemporaryDirectory(prefix="titan-tools-") as folder:
            entries = []
            for n, job in enumerate(jobs):
                script = f"job-{n}.py"
                Path(folder, script).write_text(job.script_content)
                entries.append({"id": job.job_id, "file": script, "args": job.args,
                                "depends_on": job.parents, "retries": 0})
            pipeline = Path(folder, "pipeline.yaml")  # JSON is YAML
            pipeline.write_text(json.dumps({"name": dag_name, "jobs": entries}))
            reply = _checked(sdk.submit_yaml(pipeline, agent_run_id=agent_run_id or None,
                                             wait=wait, timeout=timeout_seconds))
        statuses = {job.job_id: _checked(sdk.get_job_status(job.job_id)) for job in jobs}
        state = "timed_out" if reply is False else "finished" if wait else "submitted"
        return json.dumps({"status": state, "dag_name": dag_name, "agent_run_id": agent_run_id,
                           "jobs": statuses})

    @tool(parse_docstring=True)
    def job_status(job_id: str) -> str:
        """A job's status: PENDING, RUNNING, COMPLETED, DEAD or CANCELLED (NULL: no such job).

        Args:
            job_id: the job's id (its latest run).
        """
        return json.dumps({"job_id": job_id, "status": _checked(sdk.get_job_status(job_id))})

    @tool(parse_docstring=True)
    def job_logs(job_id: str) -> str:
        """A job's output so far (stdout and stderr together).

        Args:
            job_id: the job's id (its latest run).
        """
        return json.dumps({"job_id": job_id, "logs": _checked(sdk.fetch_logs(job_id))})

    @tool(parse_docstring=True)
    def store_get(key: str) -> str:
        """Read a value from the cluster's key-value store (null when the key is missing).

        Args:
            key: the key.
        """
        value = _checked(sdk.store_get(key))
        return json.dumps({"key": key, "value": None if value == "NULL" else value})

    @tool(parse_docstring=True)
    def store_put(key: str, value: str) -> str:
        """Write a value to the cluster's key-value store (durable once this answers).

        Args:
            key: the key.
            value: the value, as text.
        """
        _checked(sdk.store_put(key, value))
        return json.dumps({"status": "ok", "key": key})

    tools = [submit_dag, job_status, job_logs, store_get, store_put]
    for each in tools:
        each.handle_tool_error = True
    return tools
