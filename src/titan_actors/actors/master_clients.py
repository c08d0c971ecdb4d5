"""The master's answers to clients: submissions, queries, cancel and retry, the event stream.

A mixin of :class:`~titan_actors.actors.master.MasterActor`: its handlers use the master's
state (scheduler, events, logs, workers) and its commit path.
"""

from __future__ import annotations

from ..errors import PermissionDeniedError, UsageError
from ..master import views
from ..wire.messages import master as m
from ..wire.messages import store as st
from ..wire.messages.control import Ping, Pong
from ..wire.roles import Role
from .base import Sender, handles
from .future import Future


class ClientRequests:
    """Handlers for the CLI, the SDK, the console, MCP and jobs."""

    @handles(Ping)
    def _ping(self, msg: Ping, sender: Sender) -> Pong | Future:
        # with what is degraded (master_persistence); a worker's liveness ping (each heartbeat)
        # is answered at once, never held up by a slow store
        return self._pong(msg, ask_store=sender.peer.role is not Role.WORKER)

    @handles(m.SubmitRun)
    def _submit(self, msg: m.SubmitRun, sender: Sender) -> Future:
        from_run = msg.from_run or sender.peer.run_id
        run_id, records = self.scheduler.submit(self._with_files(msg.spec), self.clock.time(),
                                                from_run=from_run,
                                                from_job=_submitting_job(sender, msg.from_job))
        accepted = m.RunAccepted(run_id, msg.spec.name, tuple(j.id for j in msg.spec.jobs))
        return self._advance(records, reply_value=accepted, want_reply=True,
                             failpoint="master.submit.before_ack")

    @handles(m.AddJobs)
    def _add_jobs(self, msg: m.AddJobs, sender: Sender) -> Future:
        from_job = _submitting_job(sender, msg.from_job)
        jobs = self._jobs_with_files(msg.run_id, msg.jobs)
        records = self.scheduler.add_jobs(msg.run_id, jobs, self.clock.time(),
                                          from_run=sender.peer.run_id or (
                                              msg.run_id if from_job else ""),
                                          from_job=from_job)
        run = self.scheduler.run(msg.run_id)
        accepted = m.RunAccepted(msg.run_id, run.name, tuple(j.id for j in msg.jobs))
        return self._advance(records, reply_value=accepted, want_reply=True)

    def _check_run_scope(self, sender: Sender, run_id: str) -> None:
        """A job's token reaches only its own run."""
        if sender.peer.role is Role.JOB and run_id != sender.peer.run_id:
            raise PermissionDeniedError(
                f"the token of job {sender.peer.job_id!r} is scoped to run "
                f"{sender.peer.run_id!r}; it cannot act on run {run_id!r}")

    @handles(m.Cancel)
    def _cancel(self, msg: m.Cancel, sender: Sender) -> Future:
        try:
            self.scheduler.run(msg.ref)
            run_id, job_id = msg.ref, None
        except UsageError:
            run_id, job_id = self._resolve_job(msg.ref, sender)
        self._check_run_scope(sender, run_id)
        records = self.scheduler.cancel(run_id, job_id, self.clock.time())
        what = f"job {run_id}/{job_id}" if job_id else f"run {run_id}"
        text = f"cancelled {what} ({len(records)} jobs changed)"
        return self._advance(records, reply_value=m.Done(text), want_reply=True)

    @handles(m.Retry)
    def _retry(self, msg: m.Retry, sender: Sender) -> Future:
        run_id, job_id = self._resolve_job(msg.ref, sender)
        records = self.scheduler.retry(run_id, job_id, self.clock.time())
        text = f"retrying {run_id}/{job_id} ({len(records)} jobs changed)"
        return self._advance(records, reply_value=m.Done(text), want_reply=True)

    @handles(m.Prune)
    def _prune(self, msg: m.Prune) -> Future:
        return self._prune_runs(msg.older_than, msg.keep)[1]

    def _resolve_job(self, ref: str, sender: Sender) -> tuple[str, str]:
        """A job reference; from a job, a bare id means a job of its own run."""
        if sender.peer.role is Role.JOB and "/" not in ref:
            job_id = ref.removeprefix("DAG-")
            try:
                self.scheduler.job(sender.peer.run_id, job_id)
                return sender.peer.run_id, job_id
            except UsageError:
                pass
        run_id, job_id = self.scheduler.resolve(ref)
        self._check_run_scope(sender, run_id)
        return run_id, job_id

    @handles(m.GetRun)
    def _get_run(self, msg: m.GetRun, sender: Sender) -> m.RunDetail:
        run_ref = msg.run_ref
        if sender.peer.role is Role.JOB and run_ref in ("", "latest"):
            run_ref = sender.peer.run_id
        detail = views.run_detail(self.scheduler, run_ref, self.events.last_seq, msg.jobs)
        self._check_run_scope(sender, detail.run.run_id)
        return detail

    @handles(m.GetRunSpec)
    def _get_run_spec(self, msg: m.GetRunSpec, sender: Sender) -> m.RunSpecReply:
        run_ref = msg.run_ref
        if sender.peer.role is Role.JOB and run_ref in ("", "latest"):
            run_ref = sender.peer.run_id
        run_id = views.latest_run(self.scheduler, run_ref).run_id
        self._check_run_scope(sender, run_id)
        return m.RunSpecReply(run_id, self.scheduler.run_spec(run_id))

    @handles(m.ListRuns)
    def _list_runs(self, msg: m.ListRuns, sender: Sender) -> m.RunList:
        runs = self.scheduler.runs()
        if sender.peer.role is Role.JOB:
            runs = [r for r in runs if r.run_id == sender.peer.run_id]
        if msg.agent_run_id:
            runs = [r for r in runs if r.agent_run_id == msg.agent_run_id]
        return m.RunList(tuple(views.run_summary(r) for r in runs[:max(msg.limit, 0)]))

    @handles(m.ListAgentRuns)
    def _list_agent_runs(self, msg: m.ListAgentRuns, sender: Sender) -> m.AgentRunList:
        runs = self.scheduler.runs()
        if sender.peer.role is Role.JOB:  # a job sees the agent run of its own run only
            own = next((r.agent_run_id for r in runs if r.run_id == sender.peer.run_id), "")
            runs = [r for r in runs if own and r.agent_run_id == own]
        found = views.agent_runs(runs)
        return m.AgentRunList(tuple(found[:max(msg.limit, 0)]))

    @handles(m.GetJob)
    def _get_job(self, msg: m.GetJob, sender: Sender) -> m.JobDetail:
        run_id, job_id = self._resolve_job(msg.job_ref, sender)
        history = [e for e in self.events.since(0, run_id, limit=100_000).events
                   if e.job_id == job_id]
        return views.job_detail(self.scheduler, run_id, job_id, history)

    @handles(m.GetLogs)
    def _get_logs(self, msg: m.GetLogs, sender: Sender) -> m.LogChunk:
        run_id, job_id = self._resolve_job(msg.job_ref, sender)
        data = self.logs.read(run_id, job_id, msg.offset, msg.limit)
        finished = self._output_complete(run_id, job_id)
        return m.LogChunk(run_id, job_id, data, msg.offset, msg.offset + len(data), finished,
                          self.logs.truncated(run_id, job_id), self.events.last_seq)

    @handles(m.WaitEvents)
    def _wait_events(self, msg: m.WaitEvents, sender: Sender):
        run_id = msg.run_id
        if sender.peer.role is Role.JOB:
            run_id = run_id or sender.peer.run_id
            self._check_run_scope(sender, run_id)
        return self.events.wait(msg.after_seq, run_id, min(max(msg.timeout, 0.0), 60.0))

    @handles(st.StoreGet, st.StorePut, st.StoreDelete, st.StoreSetAdd, st.StoreSetRemove,
             st.StoreMembers, st.StoreKeys)
    def _store(self, msg, sender: Sender) -> Future:
        """Clients reach the store through the master: one address for users. The store
        answers once the write is durable; the master passes the answer on."""
        if self.store is None:
            raise UsageError("this master has no store")
        decided = self._gate_by_store(msg, sender)
        if decided is not None:
            return decided
        return self.store.ask_async(msg, timeout=30.0)

    @handles(m.ListWorkers)
    def _list_workers(self, msg: m.ListWorkers) -> m.WorkerList:
        now = self.clock.monotonic()
        return m.WorkerList(tuple(entry.info(now) for entry in self.workers))


def _submitting_job(sender: Sender, claimed: str) -> str:
    """The job that sends a submission (recorded as who added what): a job's token says; a
    client (a job in a cluster without a key has no token) may only claim it, and the
    scheduler refuses a claim that names no job of the submitting run."""
    return sender.peer.job_id if sender.peer.role is Role.JOB else claimed
