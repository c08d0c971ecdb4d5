"""The native SDK: :class:`Titan` (a client of the master), :class:`Run` and :class:`RunResult`.

Beside the COMPAT ``TitanClient`` (which answers strings like the original), this API returns
typed objects and raises the exceptions of :mod:`titan_sdk.errors`. It is a thin adapter over
the blocking, gevent-free :class:`titan_actors.client.MasterClient`; waits follow the master's
event stream (a long-poll), never a sleep loop.

One :class:`Titan` holds one connection, opened on the first call and reopened after a failure;
it is not thread-safe (give each thread its own). Use it as a context manager, or call
:meth:`Titan.close`.
"""

from __future__ import annotations

import codecs
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

from titan_actors import errors as core
from titan_actors import transfer
from titan_actors.client import DEFAULT_HOST, DEFAULT_PORT, MasterClient
from titan_actors.scheduler.model import JobSpec, JobState, RunState
from titan_actors.wire.messages.master import (
    AgentRunSummary,
    JobInfo,
    RunSummary,
    WorkerInfo,
)

from ._connect import OwnedConnection
from .errors import RequestRefused, RunFailed, TitanSDKError, WaitTimeout, translated
from .jobs import Job, Pipeline
from .native_files import ClientFiles, RunFiles
from .native_lifecycle import ClientLifecycle

__all__ = ["FAILED_STATES", "Run", "RunResult", "Titan"]

_T = TypeVar("_T")
_BROKEN = (core.ConnectionError_, core.HandshakeError, core.ProtocolError,
           core.AskTimeoutError, OSError)
FAILED_STATES = frozenset({JobState.DEAD, JobState.SKIPPED, JobState.REJECTED,
                           JobState.TIMED_OUT, JobState.CANCELLED})
"""The job states :class:`RunFailed` reports (dead, skipped, rejected, timed out, cancelled).
A service stopped on request is not among them: it ended as asked (the run completes)."""


@dataclass(frozen=True)
class RunResult:
    """A run as it ended: its state, each job's exact state (``states``, in submission order)
    and each job's details (``jobs``). A run whose jobs all finished but ready services, which
    run on, is ``RunState.SERVING``: that is a success too (``ok``)."""

    run_id: str
    name: str
    state: RunState
    agent_run_id: str
    states: dict[str, JobState]
    jobs: tuple[JobInfo, ...]

    @property
    def ok(self) -> bool:
        """Every job completed (or approved), or only ready services run on."""
        return self.state in (RunState.COMPLETED, RunState.SERVING)

    @property
    def failed_job_ids(self) -> list[str]:
        """The jobs that are dead, skipped, rejected, timed out or cancelled."""
        return [job_id for job_id, state in self.states.items() if state in FAILED_STATES]


class Titan(OwnedConnection, ClientFiles, ClientLifecycle):
    """A client of the Titan Actors master.

    Args:
        host, port: the master; default ``TITAN_HOST`` / ``TITAN_PORT`` (127.0.0.1:9090).
        timeout: seconds for connecting and for each request (waits have their own).
        key_file: the cluster key file; default ``TITAN_KEY_FILE``, unless ``token`` or (inside
            a job) ``TITAN_TOKEN`` gives the job's own credential.
        token: a job token.

    Every method raises ConnectionFailed when the master cannot be reached, NotFound for an
    unknown run or job, and RequestRefused (SubmissionRefused for submissions) for a refusal.
    Gates and services (``approve``, ``reject``, ``gates``, ``services``, ``stop_service``):
    see :class:`~titan_sdk.native_lifecycle.ClientLifecycle`.
    """

    _identity = "titan-sdk"

    def __init__(self, host: str | None = None, port: int | None = None,
                 timeout: float = 30.0, key_file: str | os.PathLike[str] | None = None,
                 token: str | None = None) -> None:
        self.host = host or os.environ.get("TITAN_HOST", DEFAULT_HOST)
        self.port = int(port if port is not None else os.environ.get("TITAN_PORT",
                                                                     DEFAULT_PORT))
        self.timeout = timeout
        self._key_file = key_file
        self._token = token
        self._client: MasterClient | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"Titan({self.address!r})"

    # -- calls ----------------------------------------------------------------------------------

    def _call(self, action: Callable[[MasterClient], _T], ref: str = "",
              read: bool = False) -> _T:
        """``action(client)`` with the core errors translated. ``read``: safe to try once more
        on a fresh connection when the kept one turns out broken."""
        with translated(self.address, ref):
            for attempt in (1, 2):
                reused = self._client is not None
                try:
                    return action(self._connect())
                except TitanSDKError:
                    raise
                except _BROKEN:
                    self.close()
                    if not (read and reused and attempt == 1):
                        raise
        raise AssertionError("unreachable")

    # -- submitting -------------------------------------------------------------------------------

    def submit(self, pipeline: Pipeline | str | os.PathLike[str], *,
               agent_run_id: str | None = None) -> Run:
        """Submit ``pipeline`` (or the YAML file at that path) as a new run.

        ``agent_run_id`` overrides the pipeline's. Inside a job, parents resolve in the job's
        own run first, the run records which job submitted it, and it inherits the job's agent
        run id unless it has one. A project-mode YAML pipeline (``project: true``) uploads its
        folder first. Raises SubmissionRefused with every problem (nothing kept).
        """
        if not isinstance(pipeline, Pipeline):
            pipeline = Pipeline.from_yaml(pipeline)
        spec = pipeline.to_spec()
        if agent_run_id:
            spec = replace(spec, agent_run_id=agent_run_id)
        from_run, from_job = _submitter()

        accepted = self._call(
            lambda client: transfer.submit_pipeline(client, spec, from_run, from_job))
        return Run(self, accepted.run_id, accepted.name)

    def add_jobs(self, run_id: str | Run | None, jobs: Iterable[Job | JobSpec]) -> list[str]:
        """Add ``jobs`` to a run that exists (``None``: the calling job's own run, from
        ``TITAN_RUN_ID``); returns their ids. A job may extend only its own run, and is recorded
        as the new jobs' ``added_by``. Parents resolve in the run first; a parent that already
        completed counts as satisfied. Raises NotFound or SubmissionRefused (nothing kept)."""
        target = run_id.run_id if isinstance(run_id, Run) else (
            run_id or os.environ.get("TITAN_RUN_ID", ""))
        if not target:
            raise RequestRefused("add_jobs needs a run id: give one, or call it from inside a "
                                 "job (whose TITAN_RUN_ID names its run)")
        specs = tuple(j if isinstance(j, JobSpec) else j.to_spec() for j in jobs)
        from_run, from_job = _submitter()
        from_job = from_job if from_run == target else ""
        accepted = self._call(lambda c: c.add_jobs(target, specs, from_job), ref=target)
        return list(accepted.job_ids)

    # -- reading ----------------------------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        """The run ``run_id`` ("latest": the newest). Raises NotFound."""
        summary = self._call(lambda c: c.run(run_id, jobs=False).run, ref=run_id, read=True)
        return Run(self, summary.run_id, summary.name)

    def runs(self, agent_run_id: str | None = None, limit: int = 50) -> list[RunSummary]:
        """The newest ``limit`` runs, newest first; with ``agent_run_id``, only its runs."""
        return list(self._call(lambda c: c.runs(limit, agent_run_id or ""), read=True))

    def agent_runs(self, limit: int = 50) -> list[AgentRunSummary]:
        """The newest ``limit`` agent runs (runs grouped by agent run id), newest first."""
        return list(self._call(lambda c: c.agent_runs(limit), read=True))

    def job(self, ref: str) -> JobInfo:
        """A job by reference: ``RUN/JOB``, ``JOB`` or ``DAG-JOB`` (a bare id: its latest
        run). Raises NotFound."""
        return self._call(lambda c: c.job(ref).job, ref=ref, read=True)

    def workers(self) -> list[WorkerInfo]:
        """The workers the master knows."""
        return list(self._call(lambda c: c.workers(), read=True))

    def cancel(self, ref: str) -> str:
        """Cancel a run (by id) or a job (and its descendants); the master's sentence."""
        return self._call(lambda c: c.cancel(ref), ref=ref)

    def ping(self) -> str:
        """The master's name and version; raises ConnectionFailed when it does not answer."""
        pong = self._call(lambda c: c.ping(), read=True)
        return f"{pong.identity} {pong.version}".strip()


def _submitter() -> tuple[str, str]:
    """Inside a job: its run and id (``TITAN_RUN_ID`` / ``TITAN_JOB_ID``), so parents resolve
    in its run first and the master records who submitted; ("", "") elsewhere."""
    run_id = os.environ.get("TITAN_RUN_ID", "")
    return run_id, os.environ.get("TITAN_JOB_ID", "") if run_id else ""


class Run(RunFiles):
    """One run of the master: read it, wait for it, follow its jobs' output, cancel it.

    Made by :meth:`Titan.submit` and :meth:`Titan.run`; every call goes through that client.
    """

    def __init__(self, client: Titan, run_id: str, name: str = "") -> None:
        self.client = client
        self.run_id = run_id
        self.name = name

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.run_id == self.run_id

    def __hash__(self) -> int:
        return hash(self.run_id)

    def summary(self) -> RunSummary:
        """The run's state, times, agent run id, job counts and submitter, as it stands."""
        return self.client._call(lambda c: c.run(self.run_id, jobs=False).run, ref=self.run_id,
                                 read=True)

    def jobs(self) -> list[JobInfo]:
        """Every job of the run (its added ones too), in submission order."""
        return list(self.client._call(lambda c: c.run(self.run_id).jobs, ref=self.run_id,
                                      read=True))

    def status(self) -> dict[str, JobState]:
        """Each job's exact state (``JobState`` values are strings: "completed", ...)."""
        return {job.job_id: job.state for job in self.jobs()}

    def result(self) -> RunResult:
        """The run as it stands, whether or not it has finished."""
        detail = self.client._call(lambda c: c.run(self.run_id), ref=self.run_id, read=True)
        run = detail.run
        return RunResult(run.run_id, run.name, run.state, run.agent_run_id,
                         {j.job_id: j.state for j in detail.jobs}, detail.jobs)

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until every job has finished, following the master's events; ``timeout``
        seconds at most (None: no limit). A ready service counts as finished (the run is
        SERVING: its services run on until stopped); a gate waiting for its decision does not.

        Returns the result when every job completed (or only ready services run on: the
        result's state is SERVING). Raises RunFailed (with ``run_id`` and
        ``failed_job_ids``) when the run failed or was cancelled, WaitTimeout when time ran out
        (the run goes on), ConnectionFailed when the master stopped answering.
        """
        limit = math.inf if timeout is None else max(float(timeout), 0.0)
        deadline = time.monotonic() + limit

        def follow(client: MasterClient) -> None:
            try:
                client.follow_run(self.run_id, limit)
            except core.AskTimeoutError:
                if time.monotonic() < deadline:
                    raise  # a request went unanswered: the connection, not the wait
                raise WaitTimeout(f"run {self.run_id} ({self.name or 'unnamed'}) did not "
                                  f"finish within {limit:g} s; it goes on", self.run_id,
                                  limit) from None

        self.client._call(follow, ref=self.run_id)
        result = self.result()
        if not result.ok:
            raise RunFailed(result)
        return result

    def logs(self, job_id: str) -> str:
        """The job's whole output so far (stdout and stderr), decoded as UTF-8 (bad bytes
        replaced). Raises NotFound naming the job."""
        ref = f"{self.run_id}/{job_id}"

        def read(client: MasterClient) -> bytes:
            out = bytearray()
            offset = 0
            while True:
                chunk = client.logs(ref, offset)
                if not chunk.data or chunk.next_offset <= offset:
                    return bytes(out)
                out += chunk.data
                offset = chunk.next_offset

        return self.client._call(read, ref=ref, read=True).decode("utf-8", errors="replace")

    def stream_logs(self, job_id: str, timeout: float | None = None) -> Iterator[str]:
        """Yield the job's output as it comes, from its start, until the job has finished
        (then the iterator ends). Chunks are text (UTF-8, a character split between chunks
        is kept whole). ``timeout``: seconds before WaitTimeout (None: no limit)."""
        ref = f"{self.run_id}/{job_id}"
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        deadline = None if timeout is None else time.monotonic() + timeout
        with translated(self.client.address, ref):
            try:
                for data in self.client._connect().follow_logs(ref, 0, timeout):
                    text = decoder.decode(data)
                    if text:
                        yield text
            except core.AskTimeoutError:
                if deadline is None or time.monotonic() < deadline:
                    self.client.close()
                    raise
                raise WaitTimeout(f"the output of {ref} did not end within {timeout:g} s",
                                  ref, timeout) from None
            except TitanSDKError:
                raise
            except _BROKEN:
                self.client.close()
                raise
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def add_jobs(self, jobs: Iterable[Job | JobSpec]) -> list[str]:
        """Add jobs to this run; see :meth:`Titan.add_jobs`."""
        return self.client.add_jobs(self.run_id, jobs)

    def cancel(self) -> str:
        """Cancel every job of the run that has not finished (running processes are killed);
        the master's sentence."""
        return self.client.cancel(self.run_id)
