"""The worker: dials the master, runs the attempts it is sent, streams their output back.

Processes are started by a small never-patched launcher process (``execution.launcher``), so
this actor's loop never forks. The connection lives in an owned greenlet that dials with a capped
backoff and reports to the actor by message; everything else is the actor's own state. A
finished attempt is kept until the master acknowledges it, across reconnects and master restarts.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from .. import failpoints
from ..errors import LauncherBrokenError, LauncherClosedError
from ..execution import workspace
from ..execution.command import TitanEnv, build_command, passed_env, wants_warm
from ..execution.job_user import user_env
from ..execution.launcher_client import Launcher
from ..execution.orphans import ChildRegistry, kill_orphans, read_records
from ..execution.output import OutputCapture
from ..job_limits import to_rlimits
from ..scheduler.model import JobKind
from ..wire.auth import KeyRing
from ..wire.bridge import Endpoint
from ..wire.messages import worker as w
from ..wire.messages.control import Ping, Pong
from .base import Actor, Sender, handles
from .worker_burst import BurstSpawner
from .worker_files import SweepWorkspaces, WorkerFiles
from .worker_link import Drain, MasterLink, _attempt_of, _Beat, _key
from .worker_model import (
    WorkerOptions,
    _Acked,
    _Attempt,
    _exit_reason,
    _Exited,
    _HandBackAcked,
    _lost_marker,
    _OutputDone,
    _Timeout,
)
from .worker_reports import ReportBook
from .worker_services import WorkerServices

__all__ = ["Drain", "WorkerActor", "WorkerOptions"]

log = logging.getLogger("titan.worker")


class WorkerActor(BurstSpawner, WorkerServices, WorkerFiles, MasterLink, Actor):
    """The worker actor. See the module docstring."""

    def __init__(self, options: WorkerOptions, *, keys: KeyRing | None = None,
                 clock=None, launcher: Launcher | None = None) -> None:
        super().__init__(clock=clock)
        self.options = options
        self.keys = keys
        self.master = None
        self.endpoint: Endpoint | None = None
        self.launcher = launcher
        self.attempts: dict[w.AttemptRef, _Attempt] = {}
        self.by_key: dict[str, w.AttemptRef] = {}
        self.unacked: dict[w.AttemptRef, w.AttemptResult] = {}
        self.lost_before: set[w.AttemptRef] = set()  # started by a previous life, unreported
        self.handing_back: set[w.AttemptRef] = set()
        self._projects: dict[tuple[str, str], Any] = {}  # (run, digest) -> Future of its folder
        self._folders: dict[tuple[str, str], str] = {}   # (run, folder) -> digest unpacking
        self.services: dict[w.AttemptRef, Any] = {}      # supervised services (worker_services)
        self.service_random = random.Random()            # their restart jitter
        self.draining = False
        self._stopping = False
        # what of this process's environment jobs get (as their user's)
        self.job_base_env = user_env(passed_env(), options.job_user)

    # -- life ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        started_before = read_records(self.options.data_dir)
        killed = kill_orphans(self.options.data_dir)
        if killed:
            log.warning("killed what %d attempts of a previous life left running",
                        len(killed))
        self.children = ChildRegistry(self.options.data_dir)
        self.reports = ReportBook(self.options.data_dir)
        self.unacked.update(self.reports.load())
        self.lost_before = {ref for ref in map(_attempt_of, (r.key for r in started_before))
                            if ref is not None and ref not in self.unacked}
        self._save_reports()  # the journal starts compacted, as this life's book
        if self.unacked:
            log.info("%d reports of a previous life wait for the master", len(self.unacked))
        if self.launcher is None:
            self.launcher = self._start_launcher()
        self.send_every(self.options.heartbeat_interval, _Beat())
        self.send_every(self.options.workspace_sweep, SweepWorkspaces())
        self.spawn(self._connect_loop)

    def on_stop(self) -> None:
        self._stopping = True
        self._stop_bursts()
        for ref in list(self.attempts):
            self.launcher.kill(_key(ref), 0.0)
        if self.endpoint is not None:
            self.endpoint.close()
        self.launcher.close()

    def _save_reports(self) -> None:
        self._book(self.reports.save, self.unacked.values())

    def _book(self, change, *args: Any) -> None:
        try:
            change(*args)
        except OSError as error:  # the reports stay in memory; only a crash would lose them
            log.error("cannot save the worker's reports: %s", error)

    # -- attempts -----------------------------------------------------------------------------

    @handles(Ping)
    def _ping(self, msg: Ping) -> Pong:
        return Pong(msg.payload, self.options.name, "worker")

    @handles(w.Dispatch)
    def _dispatch(self, msg: w.Dispatch, sender: Sender) -> None:
        if self.master is None and sender.ref is not None and sender.ref.is_alive:
            # The master dispatches as it registers us: this can come before _Connected does,
            # and JobStarted and the first output would be dropped for want of a master.
            self.master = sender.ref
        ref = msg.ref
        if ref in self.attempts:
            return
        if self.draining:
            self._report_hand_back(ref)
            return
        attempt = _Attempt(ref)
        self.attempts[ref] = attempt
        self.by_key[_key(ref)] = ref
        if msg.spec.archive or msg.spec.library:
            self._prepare(msg)  # launches once the stored file it runs is in place
            return
        try:
            owner = self.options.job_user
            cwd = workspace.prepare_run(self.options.data_dir, ref.run_id, owner)
            script = workspace.write_script(self.options.data_dir, ref.run_id, ref.job_id,
                                            ref.attempt, msg.spec.script_name, msg.spec.script,
                                            owner) if msg.spec.script_name else None
        except Exception as error:
            self._fail_to_start(attempt, str(error))
            return
        self._launch(attempt, msg, cwd, script)

    def _launch(self, attempt: _Attempt, msg: w.Dispatch, cwd: Path,
                script: Path | None) -> None:
        ref, spec = msg.ref, msg.spec
        if spec.kind is JobKind.SERVICE:
            self._launch_service(attempt, msg, cwd, script)
            return
        try:
            # jobs reach the master the way this worker does (its own --master address)
            host, port = self.options.master
            titan = TitanEnv(host, port, msg.token, ref.job_id, ref.run_id, ref.attempt,
                              self.options.name)
            cmd = build_command(spec, titan, str(script) if script else None,
                                base_env=self.job_base_env)
            attempt.limits = spec.limits
            process = self._spawn_process(_key(ref), cmd, cwd, warm=wants_warm(spec, cmd),
                                          rlimits=to_rlimits(spec.limits))
        except Exception as error:
            self._fail_to_start(attempt, str(error))
            return
        attempt.pid = process.pid  # the launcher recorded it in self.children
        self.spawn(self._read_output, ref, process)
        if spec.timeout > 0:
            attempt.timer = self.send_after(spec.timeout, _Timeout(ref))
        if self.master is not None:
            self._tell_master(w.JobStarted(ref, process.pid))

    def _start_launcher(self) -> Launcher:
        user = self.options.job_user
        return Launcher.start(on_exit=self._on_exit, registry=self.children,
                              warm_preload=self.options.warm_preload,
                              timeout=10.0 if self.options.warm_preload is None else 60.0,
                              user=None if user is None else (user.uid, user.gid))

    def _spawn_process(self, key: str, cmd, cwd: Path, warm: bool = False,
                       rlimits: dict[int, int] | None = None):
        """Start ``cmd`` (a ``Command``) in ``cwd`` through the launcher as ``key`` (``warm``:
        from the warm executor when the launcher runs one; ``rlimits``: its resource limits)."""
        try:
            return self.launcher.launch(key, cmd.argv, cmd.env, str(cwd), warm=warm,
                                        rlimits=rlimits)
        except (LauncherBrokenError, LauncherClosedError) as error:
            # the launcher died (killed, out of memory): start a new one, try once more
            log.error("the launcher is gone (%s); starting a new one", error)
            self.launcher = self._start_launcher()
            return self.launcher.launch(key, cmd.argv, cmd.env, str(cwd), warm=warm,
                                        rlimits=rlimits)

    def _fail_to_start(self, attempt: _Attempt, why: str, exit_code: int = 127) -> None:
        log.warning("could not start %s: %s", _key(attempt.ref), why)
        attempt.output_done = True
        attempt.exit_code = exit_code
        attempt.reason = f"could not start: {why}" if exit_code == 127 else why
        self._finalize(attempt)

    def _read_output(self, ref: w.AttemptRef, process) -> None:
        """Owned greenlet: read the attempt's output to EOF and ship it, then say so.

        Batches go straight to the master's connection from the capture's greenlets, waiting
        when it is full: the job's pipe then fills and the job waits too (backpressure, bounded
        memory), and the actor's loop is never held up. Without a master, output is dropped.
        """
        sent, lost = [0], [0]

        def ship(stream, data: bytes) -> None:
            master = self.master
            if master is None:
                lost[0] += len(data)
                return
            if lost[0]:  # say so in the log itself: a gap must not pass unnoticed
                data = _lost_marker(lost[0]) + data
            try:
                master.tell(w.JobOutput(ref, int(stream), data), timeout=30.0)
            except Exception as error:  # the link broke: this batch is lost with it
                log.debug("output of %s dropped: %s", _key(ref), error)
                lost[0] += len(data)
                return
            sent[0] += len(data)
            lost[0] = 0

        capture = OutputCapture(process.stdout_fd, process.stderr_fd, ship,
                                cap_bytes=self.options.output_cap).start()
        try:
            while not capture.wait(60.0):
                pass
        finally:
            capture.close()
        # after all of its output: "[titan: killed 2 processes the job left running: ...]"
        note = process.leftover_note(wait=True)
        if lost[0] or note:
            ship(2, note)
        self.notify(_OutputDone(ref, sent[0]))

    def _on_exit(self, process, exit_code: int) -> None:
        self.notify(_Exited(process.key, exit_code))

    @handles(_OutputDone)
    def _output_done(self, msg: _OutputDone) -> None:
        attempt = self.attempts.get(msg.ref)
        if attempt is not None:
            attempt.output_done = True
            attempt.output_bytes = msg.sent_bytes
            self._finalize(attempt)

    @handles(_Exited)
    def _exited(self, msg: _Exited) -> None:
        ref = self.by_key.get(msg.key)
        attempt = self.attempts.get(ref) if ref else None
        if attempt is None:
            return
        attempt.exit_code = msg.exit_code
        self._finalize(attempt)

    def _finalize(self, attempt: _Attempt) -> None:
        """Report an attempt once its process exited AND its output was read to the end."""
        if attempt.exit_code is None or not attempt.output_done:
            return
        if self._service_exited(attempt):
            return  # a service that starts again after its backoff: the attempt goes on
        ref = attempt.ref
        self.attempts.pop(ref, None)
        self.by_key.pop(_key(ref), None)
        if attempt.timer is not None:
            attempt.timer.cancel()
        if attempt.handed_back:
            self._report_hand_back(ref)
        else:
            reason = attempt.reason or _exit_reason(attempt.exit_code, attempt.limits)
            result = w.AttemptResult(ref, attempt.exit_code, reason, self.clock.time(),
                                     attempt.output_bytes)
            self.unacked[ref] = result
            self._book(self.reports.add, result)
            failpoints.hit("worker.finish.before_report")
            self._send_result(result)
        self._stop_if_drained()

    def _send_result(self, result: w.AttemptResult) -> None:
        if self.master is None:
            return  # sent with the next registration
        try:
            reply = self.master.ask_async(w.JobFinished(result), timeout=30)
        except Exception as error:
            log.info("could not report %s yet: %s", _key(result.ref), error)
            return
        reply.add_done_callback(
            lambda done: self.notify(_Acked(result.ref)) if done.successful() else None)

    @handles(_Acked)
    def _acked(self, msg: _Acked) -> None:
        if self.unacked.pop(msg.ref, None) is not None:
            self._book(self.reports.remove, msg.ref)
        self._stop_if_drained()

    def _report_hand_back(self, ref: w.AttemptRef) -> None:
        if self.master is None:
            return  # the master's lease declares the attempt lost
        try:
            reply = self.master.ask_async(w.HandBack(ref), timeout=30)
        except Exception as error:
            log.info("could not hand back %s: %s", _key(ref), error)
            return
        self.handing_back.add(ref)
        reply.add_done_callback(lambda _done: self.notify(_HandBackAcked(ref)))

    @handles(_HandBackAcked)
    def _hand_back_acked(self, msg: _HandBackAcked) -> None:
        self.handing_back.discard(msg.ref)
        self._stop_if_drained()

    @handles(_Timeout)
    def _timeout(self, msg: _Timeout) -> None:
        attempt = self.attempts.get(msg.ref)
        if attempt is not None and attempt.exit_code is None:
            self._kill_attempt(attempt, "timed out")

    @handles(w.KillAttempt)
    def _kill(self, msg: w.KillAttempt) -> None:
        attempt = self.attempts.get(msg.ref)
        if attempt is not None and self._kill_service(attempt, msg.reason):
            return  # a service: killed and never restarted (even between two processes)
        if attempt is not None and attempt.exit_code is None:
            self._kill_attempt(attempt, msg.reason)

    def _kill_attempt(self, attempt: _Attempt, reason: str) -> None:
        if not attempt.pid:  # still preparing its project: it never starts
            self._fail_to_start(attempt, reason, exit_code=-9)
            return
        attempt.reason = reason
        self._kill_process(attempt.ref)

