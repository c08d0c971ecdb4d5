"""The Titan-compatible Python SDK: :class:`TitanJob` and :class:`TitanClient` (COMPAT.md,
"Python SDK").

A thin adapter over :class:`titan_actors.client.MasterClient` (blocking, gevent-free): each method
builds one request, calls the client core and turns the answer into the value the original SDK
returned. No method raises on a refusal or a transport failure: a refusal is a string starting
with ``ERROR: ``, an unreachable master one starting with ``CONNECTION_ERROR: ``.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from titan_actors import transfer
from titan_actors.client import DEFAULT_HOST, DEFAULT_PORT, MasterClient
from titan_actors.errors import (
    AskTimeoutError,
    ConnectionError_,
    HandshakeError,
    PipelineError,
    ProtocolError,
    TitanError,
    UnknownJobError,
    UnknownRunError,
    UsageError,
)
from titan_actors.scheduler.model import JobKind, JobSpec, RunSpec
from titan_actors.wire.messages.files import FileArea

from ._connect import OwnedConnection

__all__ = ["TITAN_HOST", "TITAN_PORT", "TitanClient", "TitanJob"]

TITAN_HOST = os.environ.get("TITAN_HOST", DEFAULT_HOST)
TITAN_PORT = int(os.environ.get("TITAN_PORT", DEFAULT_PORT))

ACCEPTED = "DAG_ACCEPTED"
UPLOADED = "UPLOAD_SUCCESS"
DEPLOYED = "DEPLOY_SUCCESS"
_SERVICE_TYPES = frozenset({"SERVICE", "DEPLOY_PAYLOAD"})
_T = TypeVar("_T")


class TitanJob:
    """One job of a DAG, as the original SDK describes it.

    ``filename`` is read now (a missing file raises FileNotFoundError naming the path, except for
    ``is_archive`` jobs, whose file is an entry of an uploaded archive); ``script_content`` is a
    Python script's text instead. ``args`` is one string, split like a shell would. ``delay`` is
    in milliseconds.

    ``job_type`` ``"SERVICE"`` or ``"DEPLOY_PAYLOAD"`` makes a long-running service (on ``port``,
    or a free one; it gets ``PORT``, and its children ``TITAN_SERVICE_<ID>=host:port``).
    ``hitl_message`` puts a human approval gate ``hitl-gate-<job_id>`` right after the job: the
    jobs that name it as a parent wait for a person's decision, at most ``max_wait_seconds``.
    """

    def __init__(self, job_id: str, filename: str | None = None, job_type: str = "RUN_PAYLOAD",
                 args: str | None = None, parents: Iterable[str] | None = None, port: int = 0,
                 is_archive: bool = False, priority: int = 1, delay: int = 0,
                 affinity: bool = False, requirement: str = "GENERAL",
                 hitl_message: str | None = None, max_wait_seconds: int = 172800,
                 script_content: str | None = None) -> None:
        self.id = job_id
        self.filename = filename
        self.job_type = job_type
        self.args = args
        self.parents = list(parents) if parents is not None else []
        self.port = port
        self.is_archive = is_archive
        self.priority = priority
        self.delay = delay
        self.affinity = affinity
        self.requirement = requirement
        self.hitl_message = hitl_message
        self.max_wait_seconds = max_wait_seconds
        self.script_content = script_content
        self._script = b""
        if script_content is not None:
            self._script = script_content.encode()
        elif filename is not None and not is_archive:
            path = Path(filename)
            if not path.is_file():
                raise FileNotFoundError(f"TitanJob {job_id!r}: script file {filename} does not "
                                        f"exist (looked for {path.resolve()})")
            self._script = path.read_bytes()

    def __repr__(self) -> str:
        return f"TitanJob(job_id={self.id!r}, filename={self.filename!r}, " \
               f"job_type={self.job_type!r}, parents={self.parents!r})"

    def to_spec(self) -> JobSpec:
        """The job as the master takes it: a service for ``job_type`` SERVICE or
        DEPLOY_PAYLOAD, with a gate ``hitl-gate-<id>`` after it when ``hitl_message`` is given
        (the master makes the gate). Raises UsageError for an ``args`` string that does not
        split or a ``max_wait_seconds`` that is not a number."""
        archive = ""
        if self.is_archive:
            archive, _, script_name = (self.filename or "").partition("/")
            if not archive or not script_name:
                raise UsageError(f"job {self.id!r}: an archive job's filename is "
                                 f"'<archive>.zip/path/main.py', got {self.filename!r}")
        elif self.script_content is not None:
            script_name = "script.py"
        elif self.filename is not None:
            script_name = os.path.basename(self.filename)
        else:
            raise UsageError(f"job {self.id!r}: give filename or script_content")
        try:
            args = tuple(shlex.split(self.args)) if self.args else ()
        except ValueError as error:
            raise UsageError(f"job {self.id!r}: args {self.args!r} do not split like a shell "
                             f"would ({error})") from None
        try:
            max_wait = float(self.max_wait_seconds)
        except (TypeError, ValueError):
            raise UsageError(f"job {self.id!r}: max_wait_seconds must be a number of seconds, "
                             f"got {self.max_wait_seconds!r}") from None
        kind = JobKind.SERVICE if str(self.job_type).upper() in _SERVICE_TYPES else JobKind.RUN
        return JobSpec(id=self.id, kind=kind, script_name=script_name, script=self._script,
                       args=args, parents=tuple(self.parents), priority=self.priority,
                       delay=self.delay / 1000.0, requirement=self.requirement,
                       affinity=bool(self.affinity), archive=archive,
                       # the original ignored a port on a run job: only a service has one
                       port=self.port if kind is JobKind.SERVICE else 0,
                       hitl_message=self.hitl_message or "", max_wait_seconds=max_wait)


class TitanClient(OwnedConnection):
    """A client of the master, with the original SDK's methods and return values.

    Host and port default to ``TITAN_HOST`` / ``TITAN_PORT`` (127.0.0.1:9090); credentials to
    ``key_file`` or ``token``, else ``TITAN_TOKEN`` (inside a job) or ``TITAN_KEY_FILE``. One
    connection is opened on the first call and kept (reopened after a failure); use as a context
    manager or call :meth:`close`. ``identity`` names the client in the master's logs and in the
    gate decisions it makes.
    """

    def __init__(self, host: str | None = None, port: int | None = None, timeout: float = 30.0,
                 key_file: str | os.PathLike[str] | None = None,
                 token: str | None = None, identity: str = "titan-sdk") -> None:
        self.host = host or os.environ.get("TITAN_HOST", DEFAULT_HOST)
        self.port = int(port if port is not None else os.environ.get("TITAN_PORT", DEFAULT_PORT))
        self.timeout = timeout
        self._key_file = key_file
        self._token = token
        self.identity = identity
        self._client: MasterClient | None = None

    @property
    def _identity(self) -> str:
        return self.identity

    # -- connection -----------------------------------------------------------------------------

    def _call(self, action: Callable[[MasterClient], _T], retry: bool = False) -> _T | str:
        """``action(client)``, or the ``ERROR:`` / ``CONNECTION_ERROR:`` string it failed with.

        ``CONNECTION_ERROR:`` (and the connection is closed) when the master cannot be reached
        or the link broke; ``ERROR:`` for a refusal, a local file that cannot be read or
        written (LocalFileError: the connection stays open), and any other unexpected error,
        since no method of this client raises. KeyboardInterrupt and the like still propagate.

        ``retry``: a read, safe to try once more on a fresh connection when a kept one broke.
        """
        for attempt in (1, 2):
            reused = self._client is not None
            try:
                return action(self._connect())
            except (ConnectionError_, HandshakeError, ProtocolError, AskTimeoutError,
                    OSError) as error:
                self.close()
                if retry and reused and attempt == 1:
                    continue
                where = f"{self.host}:{self.port}"
                text = str(error) if where in str(error) else f"{where}: {error}"
                return f"CONNECTION_ERROR: {text}"
            except TitanError as error:
                return f"ERROR: {error}"
            except Exception as error:  # not a refusal: say what it was, as a refusal would
                return f"ERROR: {type(error).__name__}: {error}"
        raise AssertionError("unreachable")

    # -- submitting -----------------------------------------------------------------------------

    def submit_job(self, job: TitanJob) -> str:
        """Submit one job as its own DAG (same as ``submit_dag(job.id, [job])``)."""
        return self.submit_dag(job.id, [job])

    def submit_dag(self, name: str, jobs: Iterable[TitanJob | JobSpec],
                   agent_run_id: str | None = None) -> str:
        """Submit ``jobs`` as a new run called ``name``: ``"DAG_ACCEPTED"``, or ``"ERROR: ..."``
        saying why it was refused, or ``"CONNECTION_ERROR: ..."``."""
        try:
            specs = tuple(j if isinstance(j, JobSpec) else j.to_spec() for j in jobs)
        except UsageError as error:
            return f"ERROR: {error}"
        spec = RunSpec(name=name, jobs=specs, agent_run_id=agent_run_id or "", source="sdk")
        result = self._call(lambda c: c.submit(spec, *_submitter()))
        return result if isinstance(result, str) else ACCEPTED

    def submit_yaml(self, path: str | os.PathLike[str], agent_run_id: str | None = None,
                    wait: bool = False, poll_interval: float = 2, timeout: float = 300
                    ) -> str | bool:
        """Submit a YAML pipeline; the submit reply. With ``wait``: block until every job is
        terminal or a service that is ready (following the master's events; ``poll_interval``
        is accepted for compatibility) and return the reply, or False after ``timeout``
        seconds. A run waiting at a gate is not finished: the wait goes on until a person
        decides (or the gate times out)."""
        del poll_interval
        try:
            spec = load_yaml(path)
        except PipelineError as error:
            return f"ERROR: {error}"
        if agent_run_id:
            spec = replace(spec, agent_run_id=agent_run_id)

        def submit(client: MasterClient) -> Any:
            accepted = transfer.submit_pipeline(client, spec, *_submitter())
            if not wait:
                return ACCEPTED
            try:
                client.follow_run(accepted.run_id, timeout, after_seq=accepted.last_seq)
            except AskTimeoutError:
                return False
            return ACCEPTED

        return self._call(submit)

    # -- reading --------------------------------------------------------------------------------

    def get_job_status(self, job_id: str) -> str:
        """PENDING, RUNNING, COMPLETED, DEAD or CANCELLED; ``"NULL"`` for an unknown id (with or
        without the ``DAG-`` prefix)."""
        def status(client: MasterClient) -> str:
            try:
                return client.job(job_id).job.status
            except (UnknownJobError, UnknownRunError):
                return "NULL"

        return self._call(status, retry=True)

    def fetch_logs(self, job_id: str) -> str:
        """The job's output (stdout and stderr) so far, as one string; ``""`` for an unknown
        id."""
        def read(client: MasterClient) -> str:
            out = bytearray()
            offset = 0
            try:
                while True:
                    chunk = client.logs(job_id, offset)
                    if not chunk.data or chunk.next_offset <= offset:
                        break
                    out += chunk.data
                    offset = chunk.next_offset
            except (UnknownJobError, UnknownRunError):
                return ""
            return out.decode("utf-8", errors="replace")

        return self._call(read, retry=True)

    # -- the store ----------------------------------------------------------------------------

    def store_put(self, key: str, value: str) -> str:
        """``"OK"`` once the write is durable."""
        def put(client: MasterClient) -> str:
            client.store_put(key, str(value))
            return "OK"
        return self._call(put)

    def store_get(self, key: str) -> str:
        """The value, or ``"NULL"`` when the key is missing."""
        def get(client: MasterClient) -> str:
            value = client.store_get(key)
            return "NULL" if value is None else value
        return self._call(get, retry=True)

    def store_sadd(self, key: str, member: str) -> int:
        """``1`` if the member was new, ``0`` if it was there."""
        return self._call(lambda client: client.store_sadd(key, str(member)))

    def store_smembers(self, key: str) -> list:
        """The members of the set, as a list."""
        return self._call(lambda client: list(client.store_members(key)), retry=True)

    # -- files ----------------------------------------------------------------------------------

    def upload_file(self, path: str) -> str:
        """Upload a file to the master (by its base name): ``"UPLOAD_SUCCESS"``, or
        ``"ERROR: ..."`` (a missing file makes no network call)."""
        if not os.path.isfile(path):
            return f"ERROR: {path} does not exist" if not os.path.exists(path) \
                else f"ERROR: {path} is not a file"
        return self._call(lambda c: (transfer.upload(c, path), UPLOADED)[1])

    def upload_project_folder(self, path: str, project_name: str | None = None) -> str:
        """Upload a folder as ``<project_name or folder name>.zip``, for archive jobs
        (``TitanJob(..., filename="<name>.zip/main.py", is_archive=True)``)."""
        if not os.path.isdir(path):
            return f"ERROR: {path} is not a folder"
        name = f"{project_name}.zip" if project_name and not project_name.endswith(".zip") \
            else project_name
        return self._call(lambda c: (transfer.upload_folder(c, path, name), UPLOADED)[1])

    def deploy_script(self, path: str) -> str:
        """Add a script to the master's script library (YAML ``script: <name>``):
        ``"DEPLOY_SUCCESS"``."""
        if not os.path.isfile(path):
            return f"ERROR: {path} does not exist"
        return self._call(lambda c: (transfer.upload(c, path, area=FileArea.SCRIPTS),
                                     DEPLOYED)[1])

    def deploy_script_content(self, name: str, content: str | bytes) -> str:
        """Add a script given as text to the script library (what MCP's deploy_script does)."""
        data = content.encode() if isinstance(content, str) else content
        return self._call(lambda c: (transfer.upload_bytes(c, data, name, FileArea.SCRIPTS),
                                     DEPLOYED)[1])

    def publish_artifact(self, key: str, filename: str) -> bool | str:
        """Upload ``filename`` and record its name under the store key ``key``: True."""
        if not os.path.isfile(filename):
            return f"ERROR: {filename} does not exist"

        def publish(client: MasterClient) -> bool:
            info = transfer.upload(client, filename)
            client.store_put(key, info.name)
            return True
        return self._call(publish)

    def get_artifact(self, key: str, save_path: str | None = None) -> bool | str:
        """Download the file recorded under ``key`` (default: into the system temp dir)."""
        def fetch(client: MasterClient) -> bool | str:
            name = client.store_get(key)
            if name is None:
                return f"ERROR: no artifact is recorded under {key!r}"
            transfer.download(client, name, _save_path(name, save_path))
            return True
        return self._call(fetch)

    def fetch_artifact(self, filename: str, save_path: str | None = None) -> bool | str:
        """Download an uploaded file by name (default: into the system temp dir)."""
        return self._call(lambda c: (transfer.download(c, filename,
                                                       _save_path(filename, save_path)), True)[1])

    # -- services and gates -----------------------------------------------------------------

    def stop_service(self, service_id: str) -> str:
        """Stop a service; it is not restarted, and its children that have not started are
        skipped. ``"STOPPED: DAG-<id>"``, ``"ERROR: service <id> not found"``, or
        ``"ERROR: ..."`` saying why it cannot be stopped (not a service, finished already).
        Inside a job, a bare id names the service of the job's own run first."""
        return self._call(_found(lambda c: c.stop_service(service_id), "service", service_id))

    def approve_gate(self, gate_id: str, comment: str = "") -> str:
        """Approve a waiting gate (``hitl-gate-<job>``, ``DAG-<gate>`` or ``RUN/GATE``): its
        children go ahead. The master's sentence (``"gate RUN/GATE approved"``), ``"ERROR:
        gate <id> not found"``, or ``"ERROR: ..."`` saying why (decided already, not reached
        yet, not a gate; a job may not decide gates)."""
        return self._call(_found(lambda c: c.decide_gate(gate_id, True, comment), "gate",
                                 gate_id))

    def reject_gate(self, gate_id: str, comment: str = "") -> str:
        """Reject a waiting gate: its unfinished descendants are skipped. Answers as
        :meth:`approve_gate` (``"gate RUN/GATE rejected"``)."""
        return self._call(_found(lambda c: c.decide_gate(gate_id, False, comment), "gate",
                                 gate_id))


def _found(action: Callable[[MasterClient], str], what: str,
           ref: str) -> Callable[[MasterClient], str]:
    """``action``, answering ``ERROR: <what> <ref> not found`` for an unknown id."""
    def run(client: MasterClient) -> str:
        try:
            return action(client)
        except (UnknownJobError, UnknownRunError):
            return f"ERROR: {what} {ref} not found"
    return run


def _save_path(name: str, save_path: str | None) -> str:
    return save_path or os.path.join(tempfile.gettempdir(), os.path.basename(name))


def _submitter() -> tuple[str, str]:
    """The submitting job's run and id (inside a job), so parents resolve in its run first and
    the run records which job submitted it."""
    return os.environ.get("TITAN_RUN_ID", ""), os.environ.get("TITAN_JOB_ID", "")


def load_yaml(path: str | os.PathLike[str]) -> RunSpec:
    """The pipeline at ``path`` (imported here: the loader needs ruamel.yaml)."""
    from titan_actors.pipeline import load_pipeline
    return load_pipeline(path)
