"""Fakes for the web console's tests: a master client with canned answers and a scripted event
source, both with the interface of ``MasterClient`` that the console uses."""

from __future__ import annotations

import gevent.queue

from titan_actors.errors import BrokenError, UnknownRunError
from titan_actors.scheduler.model import JobKind, JobState, RunState
from titan_actors.wire.messages.master import (
    Event,
    EventBatch,
    EventKind,
    JobDetail,
    JobInfo,
    LogChunk,
    RunDetail,
    RunSummary,
    WorkerInfo,
)

EVIL = "<img src=x onerror=alert(1)>"   # a job id may hold any text but whitespace and '/'
EVIL_LOG = b"<script>alert('log')</script>\n"


def job(job_id: str, state: JobState = JobState.COMPLETED, *, run_id: str = "r1",
        kind: JobKind = JobKind.RUN, parents: tuple[str, ...] = (), reason: str = "",
        message: str = "", worker: str = "w1") -> JobInfo:
    return JobInfo(run_id, job_id, state, "COMPLETED", 1, 4, worker, 1, "GENERAL", parents,
                   reason, 0, 1000.0, 1001.0, 1002.0, kind=kind, message=message)


class FakeMaster:
    """A master client with one run ``r1`` (jobs ``a``, EVIL after it, and a waiting gate),
    one worker, and the calls it received in ``calls``."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.closed = False
        gate = job("gate", JobState.WAITING, kind=JobKind.GATE, parents=(EVIL,),
                   reason="waiting for a decision", message=f"ship {EVIL}?", worker="")
        self.jobs = (job("a"), job(EVIL, JobState.RUNNING, parents=("a",)), gate)
        self.summary = RunSummary("r1", f"pipe {EVIL}", RunState.ACTIVE, "agent-1", 1000.0,
                                  0.0, {"completed": 1, "running": 1, "waiting": 1})

    def runs(self, limit: int = 50, agent_run_id: str = ""):
        return (self.summary,)

    def run(self, run_ref: str = "latest", jobs: bool = True) -> RunDetail:
        if run_ref != "r1":
            raise UnknownRunError(f"no run {run_ref}")
        return RunDetail(self.summary, self.jobs if jobs else (), 7)

    def job(self, job_ref: str) -> JobDetail:
        run_id, _, job_id = job_ref.partition("/")
        found = [j for j in self.run(run_id).jobs if j.job_id == job_id]
        if not found:
            raise UnknownRunError(f"no job {job_ref}")
        history = (Event(3, 1001.0, EventKind.JOB, run_id, job_id, JobState.RUNNING,
                         attempt=1, worker="w1"),)
        return JobDetail(found[0], ("echo", EVIL), "", (), history)

    def logs(self, job_ref: str, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        data = EVIL_LOG[offset:offset + limit]
        return LogChunk("r1", job_ref, data, offset, offset + len(data), True, False, 7)

    def workers(self):
        return (WorkerInfo("w1", ("GENERAL",), 2, 1, "host", 42, True, 0.1, False, False),)

    def gates(self, all: bool = False):
        return tuple(j for j in self.jobs if j.kind is JobKind.GATE)

    def ping(self):
        return "pong"

    def decide_gate(self, ref: str, approve: bool, comment: str = "") -> str:
        self.calls.append(("decide", ref, approve, comment))
        return f"{'approved' if approve else 'rejected'} {ref}"

    def cancel(self, ref: str) -> str:
        self.calls.append(("cancel", ref))
        return f"cancelled {ref}"

    def retry(self, ref: str) -> str:
        self.calls.append(("retry", ref))
        return f"retrying {ref}"

    def stop_service(self, ref: str) -> str:
        self.calls.append(("stop", ref))
        return f"STOPPED: DAG-{ref}"

    def close(self) -> None:
        self.closed = True


class ScriptedSource:
    """``connect()`` gives clients whose ``wait_events`` answers from a shared script: push
    batches with :meth:`push`, a broken connection with :meth:`break_connection`. Records the
    ``after_seq`` of every call in ``asked``."""

    def __init__(self, start_seq: int = 0) -> None:
        self.script: gevent.queue.Queue = gevent.queue.Queue()
        self.asked: list[int] = []
        self.connects = 0
        self.start_seq = start_seq
        self.refuse = 0  # connections to refuse before accepting again

    def connect(self) -> "ScriptedSource._Client":
        if self.refuse:
            self.refuse -= 1
            raise BrokenError("could not connect to the fake master")
        self.connects += 1
        return self._Client(self)

    def push(self, *events: Event, reset: bool = False, last_seq: int | None = None) -> None:
        last = last_seq if last_seq is not None else (events[-1].seq if events else 0)
        self.script.put(EventBatch(tuple(events), last, reset))

    def break_connection(self) -> None:
        self.script.put(BrokenError("the fake master went away"))

    class _Client:
        def __init__(self, source: "ScriptedSource") -> None:
            self.source = source

        def wait_events(self, after_seq: int, timeout: float, run_id: str = "") -> EventBatch:
            if after_seq >= 1 << 60:  # "where is the stream now?"
                return EventBatch((), self.source.start_seq, True)
            self.source.asked.append(after_seq)
            try:
                item = self.source.script.get(timeout=timeout)
            except gevent.queue.Empty:
                return EventBatch((), after_seq, False)
            if isinstance(item, Exception):
                raise item
            return item

        def close(self) -> None:
            pass


def job_event(seq: int, run_id: str = "r1", job_id: str = "a",
              state: JobState | None = JobState.RUNNING, worker: str = "w1") -> Event:
    return Event(seq, 1000.0 + seq, EventKind.JOB, run_id, job_id, state, attempt=1,
                 worker=worker)
