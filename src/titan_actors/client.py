"""The client core: every call a user can make to the master, over a blocking connection.

gevent-free (the CLI, the SDK and the MCP server use it in plain programs). The adapters parse
their input, call one method here and format the answer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import AskTimeoutError, UsageError
from .scheduler.model import JobSpec, RunSpec, RunState
from .wire.auth import JobToken, KeyRing
from .wire.blocking import BlockingClient
from .wire.messages import store as st
from .wire.messages.control import Ping, Pong
from .wire.messages.lifecycle import DecideGate, ListGates, ListServices, StopService
from .wire.messages.master import (
    AddJobs,
    AgentRunSummary,
    Cancel,
    Done,
    Event,
    EventBatch,
    EventKind,
    GetJob,
    GetLogs,
    GetRun,
    GetRunSpec,
    JobDetail,
    JobInfo,
    ListAgentRuns,
    ListRuns,
    ListWorkers,
    LogChunk,
    Prune,
    Retry,
    RunAccepted,
    RunDetail,
    RunSpecReply,
    RunSummary,
    SubmitRun,
    WaitEvents,
    WorkerInfo,
)
from .wire.roles import Role

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090
_LONG_POLL = 25.0


def parse_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6). Raises UsageError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{text!r} is not HOST:PORT (for example 127.0.0.1:9090)")
    return host.strip("[]"), int(port)


class MasterClient:
    """A connection to the master. Use as a context manager, or call :meth:`close`.

    Args:
        host, port: the master's address.
        keys: a key ring (from ``--key-file``), or None.
        token: a job's token (``TITAN_TOKEN``) instead of keys.
        timeout: seconds for connecting and for each request.
        identity: a name for the master's logs.
        role: CLIENT (submit, query, decide gates) or ADMIN (also prune and cluster control).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 keys: KeyRing | None = None, token: JobToken | None = None,
                 timeout: float = 30.0, identity: str = "titanctl",
                 role: Role = Role.CLIENT) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._conn = BlockingClient(host, port, role=role, identity=identity, keys=keys,
                                    token=token, timeout=timeout)

    @classmethod
    def from_environment(cls, *, timeout: float = 30.0, identity: str = "client",
                         environ: dict | None = None) -> "MasterClient":
        """Connect as a job would: TITAN_HOST/TITAN_PORT, TITAN_TOKEN or TITAN_KEY_FILE."""
        env = os.environ if environ is None else environ
        host = env.get("TITAN_HOST", DEFAULT_HOST)
        port = int(env.get("TITAN_PORT", DEFAULT_PORT))
        token = JobToken.parse(env["TITAN_TOKEN"]) if env.get("TITAN_TOKEN") else None
        keys = None
        if token is None and env.get("TITAN_KEY_FILE"):
            from .keys import load_keyring
            keys = load_keyring(Path(env["TITAN_KEY_FILE"]))
        return cls(host, port, keys=keys, token=token, timeout=timeout, identity=identity)

    def __enter__(self) -> "MasterClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    # -- commands -----------------------------------------------------------------------------

    def ask(self, message: object) -> object:
        """Send any request the master serves and return its answer (``transfer`` uses it)."""
        return self._conn.ask(message)

    def ping(self, payload: bytes = b"") -> Pong:
        """Are you there? The master's answer names it and its version."""
        return self._conn.ask(Ping(payload))

    def submit(self, spec: RunSpec, from_run: str = "", from_job: str = "") -> RunAccepted:
        """Submit a run; ``from_run`` / ``from_job``: the submitting job (inside a job:
        ``TITAN_RUN_ID`` / ``TITAN_JOB_ID``). Raises SubmissionError (a UsageError) saying
        what is wrong."""
        return self._conn.ask(SubmitRun(spec, from_run, from_job))

    def add_jobs(self, run_id: str, jobs: tuple[JobSpec, ...],
                 from_job: str = "") -> RunAccepted:
        """Add jobs to a run (a job may extend only its own run; ``from_job``: that job, as in
        :meth:`submit`). Raises UnknownRunError or SubmissionError."""
        return self._conn.ask(AddJobs(run_id, jobs, from_job))

    def run(self, run_ref: str = "latest", jobs: bool = True) -> RunDetail:
        """A run and its jobs (``jobs=False``: its summary alone, however many jobs it has)."""
        return self._conn.ask(GetRun(run_ref, jobs))

    def run_spec(self, run_ref: str = "latest") -> RunSpecReply:
        """The spec to submit a run again (``.spec``; ``.run_id``: the run it is from), as
        ``GetRunSpec`` describes. Raises UnknownRunError."""
        return self._conn.ask(GetRunSpec(run_ref))

    def rerun(self, run_ref: str = "latest") -> RunAccepted:
        """Submit a run's spec again as a new run (see :meth:`run_spec`)."""
        return self.submit(self.run_spec(run_ref).spec)

    def runs(self, limit: int = 50, agent_run_id: str = "") -> tuple[RunSummary, ...]:
        """The newest ``limit`` runs, newest first (with ``agent_run_id``: only its runs)."""
        return self._conn.ask(ListRuns(limit, agent_run_id)).runs

    def agent_runs(self, limit: int = 50) -> tuple[AgentRunSummary, ...]:
        """The newest ``limit`` agent runs, newest first (a job sees only its own)."""
        return self._conn.ask(ListAgentRuns(limit)).agent_runs

    def job(self, job_ref: str) -> JobDetail:
        return self._conn.ask(GetJob(job_ref))

    def logs(self, job_ref: str, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        return self._conn.ask(GetLogs(job_ref, offset, limit))

    def cancel(self, ref: str) -> str:
        return self._reply_text(self._conn.ask(Cancel(ref)))

    def retry(self, ref: str) -> str:
        return self._reply_text(self._conn.ask(Retry(ref)))

    def decide_gate(self, ref: str, approve: bool, comment: str = "") -> str:
        """Approve or reject a waiting gate (``RUN/GATE``, ``GATE`` or ``DAG-GATE``); the
        master's sentence once the decision is durable. Raises InvalidTransitionError for a
        gate that is not waiting (decided already, timed out, not reached yet)."""
        return self._reply_text(self._conn.ask(DecideGate(ref, approve, comment)))

    def gates(self, all: bool = False) -> tuple[JobInfo, ...]:
        """The waiting gates, oldest first (``all``: every gate)."""
        return self._conn.ask(ListGates(all)).jobs

    def stop_service(self, ref: str) -> str:
        """Stop a service; it is not restarted. Returns ``STOPPED: DAG-<id>``."""
        return self._reply_text(self._conn.ask(StopService(ref)))

    def services(self, all: bool = False) -> tuple[JobInfo, ...]:
        """The services that have not finished (``all``: every service)."""
        return self._conn.ask(ListServices(all)).jobs

    def workers(self) -> tuple[WorkerInfo, ...]:
        return self._conn.ask(ListWorkers()).workers

    def prune(self, older_than: float, keep: int) -> str:
        return self._reply_text(self._conn.ask(Prune(older_than, keep)))

    # -- the store ----------------------------------------------------------------------------

    def store_get(self, key: str) -> str | None:
        """The value of ``key``, or None when it is missing or expired."""
        reply = self._conn.ask(st.StoreGet(key))
        return reply.value if reply.found else None

    def store_put(self, key: str, value: str, ttl: float | None = None) -> None:
        """Set ``key``; with ``ttl`` (seconds) it expires. Returns once the write is durable."""
        expires_at = time.time() + ttl if ttl else 0.0
        self._conn.ask(st.StorePut(key, value, expires_at))

    def store_delete(self, key: str) -> int:
        """Delete ``key`` (its value and its set); 1 when something was there."""
        return self._conn.ask(st.StoreDelete(key)).count

    def store_sadd(self, key: str, member: str) -> int:
        """Add ``member`` to the set ``key``: 1 when it was new, 0 when it was there."""
        return self._conn.ask(st.StoreSetAdd(key, member)).count

    def store_srem(self, key: str, member: str) -> int:
        return self._conn.ask(st.StoreSetRemove(key, member)).count

    def store_members(self, key: str) -> tuple[str, ...]:
        return self._conn.ask(st.StoreMembers(key)).members

    def store_keys(self, prefix: str = "") -> tuple[str, ...]:
        return self._conn.ask(st.StoreKeys(prefix)).keys

    def wait_events(self, after_seq: int, timeout: float, run_id: str = "") -> EventBatch:
        """Long-poll the event stream: returns as soon as there is an event after ``after_seq``."""
        return self._conn.ask(WaitEvents(after_seq, timeout, run_id), timeout=timeout + 10)

    # -- following ----------------------------------------------------------------------------

    def follow_run(self, run_id: str, timeout: float,
                   on_event: Callable[[Event], None] | None = None,
                   after_seq: int | None = None) -> RunSummary:
        """Wait until ``run_id`` has finished, following the event stream from ``after_seq``
        (``RunAccepted.last_seq`` shows a run from its start; default: from now).

        The end is the run's own "finished" event, which the master publishes once the last
        job's record is durable, so every job event before it has been delivered too. Returns
        the run's final summary. Raises AskTimeoutError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        detail = self.run(run_id, jobs=False)
        if after_seq is None:
            if detail.run.state is not RunState.ACTIVE:
                return detail.run
            after_seq = detail.last_seq
        after = after_seq
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AskTimeoutError(f"run {run_id} did not finish within {timeout} s")
            batch = self.wait_events(after, min(remaining, _LONG_POLL), run_id)
            after = batch.last_seq
            ended = False
            for event in batch.events:
                if on_event is not None:
                    on_event(event)
                ended = ended or (event.kind is EventKind.RUN and event.run_state is not None
                                  and event.run_state is not RunState.ACTIVE)
            if ended:
                return self.run(run_id, jobs=False).run
            if batch.reset:  # events were lost (a restart, a slow reader): trust the state
                detail = self.run(run_id, jobs=False)
                after = detail.last_seq
                if detail.run.state is not RunState.ACTIVE:
                    return detail.run

    def follow_logs(self, job_ref: str, offset: int = 0,
                    timeout: float | None = None) -> Iterator[bytes]:
        """Yield a job's output as it comes, until the job is terminal (``logs -f``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            chunk = self.logs(job_ref, offset)
            after = chunk.last_seq
            if chunk.data:
                yield chunk.data
                offset = chunk.next_offset
                continue
            if chunk.finished:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise AskTimeoutError(f"the output of {job_ref} did not end within {timeout} s")
            self.wait_events(after, _LONG_POLL, chunk.run_id)

    @staticmethod
    def _reply_text(reply: Done) -> str:
        return reply.text

