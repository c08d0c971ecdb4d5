"""Recovery: a master restarted after a SIGKILL, AOF replay and AOF compaction (figure 6).

Run ``python bench/bench_recovery.py`` (a few minutes at full size). Two parts, each figure as
ours, baseline and ratio (ours / baseline), the baseline measured in the same run:

**Restart of a real cluster** (``titanctl up --port 0 --workers 2 --slots 2 --no-web`` over a temp
data directory, burst workers off). :data:`FINISHED` ``/bin/true`` jobs run to completion in runs
of :data:`PENDING` jobs, after a throwaway run. Then, :data:`ROUNDS` times: a run of a ``hold``
job that blocks reading a FIFO and :data:`PENDING` ``/bin/true`` jobs that depend on it
(pending); a prune of the oldest finished run, which makes the master compact its AOF (as
``titanctl prune`` does); a SIGKILL of the master; the FIFO written (``hold`` exits while the
master is down: its worker reports it when it registers again); ``titanctl master`` started
again on the same port and data directory. From that restart command, on the master's event
stream (event times are the master's wall clock, on this host), medians over the rounds:

* ``restart_serving_s``: until the restarted master answers its first request (replay done);
  baseline: ``titanctl master`` on an empty data directory until its first answer, measured just
  before each restart (the shared machine's load moves both alike);
* ``restart_first_flow_s`` ("work flows again"): until the first pending job has completed;
  baseline as above; goal: under 2 s;
* ``restart_all_done_s``: until all :data:`PENDING` jobs have completed; baseline: a run of as
  many ``/bin/true`` jobs on the same cluster before the kills (median over the finished runs).
  The original Titan took 28 s after a master restart until its jobs were done;
* ``cluster_compaction_s`` (first round): the prune request that compacts the AOF, baseline:
  ``os.write`` and ``os.fsync`` of as many bytes as it wrote; ``cluster_compaction_size``: the
  AOF's bytes after and before. ``restart_rounds`` has every round's timeline.

**A 1,000,000-record AOF** (:data:`RECORDS`), written directly with the scheduler's record types
and the master's record codec (no jobs run): runs of :data:`HISTORY_JOBS` ``/bin/true`` jobs (one
root, the others its children), each ``RunSubmitted``, then per job ``PENDING->QUEUED``,
``QUEUED->RUNNING`` and ``RUNNING->COMPLETED``, and retention forgetting all but the newest
:data:`HISTORY_KEEP` runs (``RunsForgotten``). In this process, the best of :data:`PASSES`
interleaved passes of each read:

* ``replay_records_per_s``: what a master does on start: read, frame and CRC-check every record
  (``aof.replay``), decode it (``master.records.decode``) and apply it to a fresh Scheduler;
  baseline: the same read and decode with no state applied; goal: above 200,000 records/s.
  ``scan_records_per_s``: the read, framing and CRC checks alone; baseline: a raw sequential
  read of the file (``os.read``, 1 MiB at a time), as records/s. The ``breakdown`` gives the
  share of replay time each step takes;
* ``compaction_s``: the master's compaction of the state that file holds (snapshot, encode, and
  ``AppendOnlyFile.rewrite``: write, fsync, rename) into a new file; baseline: ``os.write`` and
  ``os.fsync`` of as many bytes; ``compaction_size``: compacted bytes against the original's;
* ``restart_1m_serving_s``: ``titanctl master`` on a data directory holding that file, until
  its first answer; baseline: an empty start measured just before.

Sizes come from ``BENCH_RECOVERY_FINISHED``, ``BENCH_RECOVERY_PENDING``,
``BENCH_RECOVERY_ROUNDS`` and ``BENCH_RECOVERY_RECORDS`` (short dev runs). :func:`main` returns
the figures (also written to bench/results/bench_recovery.json); ``_print`` prints them. Every
process started here is stopped whatever happens (``titanctl down``, SIGTERM, then psutil finds
and kills what is left, and says so).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _support import remember, sweep

from titan_actors.aof import AppendOnlyFile
from titan_actors.aof import record as aof_record
from titan_actors.aof.replay import scan
from titan_actors.client import MasterClient
from titan_actors.master import records as master_records
from titan_actors.scheduler import Scheduler
from titan_actors.scheduler.model import JobSpec, JobState, RunSpec, RunState
from titan_actors.scheduler.records import JobTransition, RunsForgotten, RunSubmitted
from titan_actors.scheduler.state import run_id_at
from titan_actors.wire.messages.master import Event, EventKind
from titan_actors.wire.roles import Role

HERE = Path(__file__).resolve().parent
TITANCTL = str(Path(sys.executable).parent / "titanctl")
FINISHED = int(os.environ.get("BENCH_RECOVERY_FINISHED", "10000"))
PENDING = int(os.environ.get("BENCH_RECOVERY_PENDING", "1000"))
RECORDS = int(os.environ.get("BENCH_RECOVERY_RECORDS", "1000000"))
HISTORY_JOBS, HISTORY_KEEP = 100, 1000
PASSES = 2  # over the 1,000,000-record file, for each measurement of it
ROUNDS = int(os.environ.get("BENCH_RECOVERY_ROUNDS", "3"))
WORKERS, SLOTS = 2, 2
GOAL_FLOW_S, GOAL_REPLAY, ORIGINAL_TITAN_S = 2.0, 200_000.0, 28.0
CLUSTER_ENV = {"TITAN_BURST_MAX_PER_HOST": "0", "TITAN_LOG_LEVEL": "warning"}
TRUE = ("/bin/true",)
_DONE = frozenset({RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED})
_PENDING, _QUEUED = JobState.PENDING, JobState.QUEUED
_RUNNING, _COMPLETED = JobState.RUNNING, JobState.COMPLETED


def _figure(ours: float, baseline: float, unit: str, **more: object) -> dict:
    return {"ours": ours, "baseline": baseline, "ratio": ours / baseline, "unit": unit, **more}


class _Processes:
    """What this benchmark starts under ``root``; :meth:`stop` leaves nothing running."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ, **CLUSTER_ENV)
        self.started: list[subprocess.Popen] = []
        self.seen: dict[int, psutil.Process] = {}
        self.clusters: list[Path] = []

    def titanctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([TITANCTL, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def up(self, data: Path) -> dict:
        self.clusters.append(data)
        done = self.titanctl("up", "--data-dir", str(data), "--port", "0", "--workers",
                             str(WORKERS), "--slots", str(SLOTS), "--no-web")
        if done.returncode != 0:
            raise RuntimeError(f"titanctl up failed ({done.returncode}): {done.stdout}"
                               f"{done.stderr}")
        state = json.loads((data / "cluster.json").read_text())
        for pid in [state["master"]["pid"], *(w["pid"] for w in state["workers"])]:
            self.remember(pid)
        return state

    def master(self, data: Path, port: int) -> tuple[subprocess.Popen, Path]:
        """``titanctl master`` on ``data`` in the background; returns it and its ready file."""
        ready = data / f"bench-master-{len(self.started)}.ready"
        log = open(data / f"bench-master-{len(self.started)}.log", "ab")
        with log:
            process = subprocess.Popen(
                [TITANCTL, "master", "--port", str(port), "--data-dir", str(data),
                 "--ready-file", str(ready)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env)
        self.started.append(process)
        self.remember(process.pid)
        return process, ready

    def remember(self, pid: int) -> None:
        remember(pid, self.seen)

    def stop(self) -> list[str]:
        """``titanctl down`` each cluster, SIGTERM what was started here, then kill whatever
        is left (returns what had to be killed or failed)."""
        problems = []
        for process in self.started:
            self.remember(process.pid)
        for data in self.clusters:
            if (data / "cluster.json").exists():
                down = self.titanctl("down", "--data-dir", str(data))
                if down.returncode != 0:
                    problems.append(f"titanctl down: {down.returncode} {down.stderr.strip()}")
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append(f"{process.args} did not stop on SIGTERM")
        return problems + sweep(str(self.root), self.seen)


def _serving(process: subprocess.Popen, ready: Path, start: float,
             timeout: float = 300) -> tuple[float, float, tuple[str, int]]:
    """Wait for the ready file, then for the first answer of the master; return (seconds to
    ready, seconds to the first answer, its address), counted from ``start`` (perf_counter)."""
    deadline = time.perf_counter() + timeout
    try:
        while not ready.exists():
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{ready} did not appear within {timeout} s")
            try:  # a bounded wait on the process (fails early if it exits), not a sleep
                process.wait(timeout=0.005)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"exited with {process.returncode} before it was ready")
        at_ready = time.perf_counter() - start
        info = json.loads(ready.read_text())
        with MasterClient(info["host"], int(info["port"]), timeout=timeout) as client:
            client.runs(1)  # served by the master actor: after its replay
    except Exception as error:
        log = ready.with_suffix(".log")
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"titanctl master ({process.args}, exit code {process.poll()}) "
                           f"did not serve: {error}\n{tail}") from error
    return at_ready, time.perf_counter() - start, (info["host"], int(info["port"]))


def _empty_start(procs: _Processes, data: Path) -> float:
    """Seconds from ``titanctl master`` on the empty data directory ``data`` to its first
    answer."""
    data.mkdir()
    start = time.perf_counter()
    process, ready = procs.master(data, 0)
    seconds = _serving(process, ready, start)[1]
    process.terminate()
    process.wait(timeout=30)
    return seconds


# -- restart of a real cluster -------------------------------------------------------------------

def _run_and_wait(client: MasterClient, spec: RunSpec, timeout: float = 600) -> tuple[str, float]:
    """Submit ``spec``; return its run id and the seconds until its end was seen."""
    start = time.perf_counter()
    accepted = client.submit(spec)
    summary = client.follow_run(accepted.run_id, timeout, after_seq=accepted.last_seq)
    if summary.state is not RunState.COMPLETED:
        raise RuntimeError(f"run {spec.name} ended {summary.state.value}")
    return accepted.run_id, time.perf_counter() - start


def _fan_out(count: int, parents: tuple[str, ...] = ()) -> tuple[JobSpec, ...]:
    return tuple(JobSpec(f"t{n:05d}", command=TRUE, parents=parents) for n in range(count))


def _wait_output(client: MasterClient, ref: str, text: bytes, timeout: float = 60) -> None:
    """Wait until job ``ref`` printed ``text``, re-checking after each event of the master."""
    deadline = time.monotonic() + timeout
    after = client.wait_events(1 << 60, 0.0).last_seq
    while text not in client.logs(ref).data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"{ref} did not print {text!r} within {timeout} s")
        after = client.wait_events(after, min(remaining, 5.0)).last_seq


def _finish_jobs(client: MasterClient) -> list[float]:
    """A throwaway run (pruned later), then FINISHED jobs in runs of PENDING; returns the
    seconds each full run took."""
    _run_and_wait(client, RunSpec("bench-throwaway", _fan_out(1)))
    seconds, left = [], FINISHED
    while left > 0:
        size = min(PENDING, left)
        took = _run_and_wait(client, RunSpec("bench-finished", _fan_out(size)))[1]
        if size == PENDING:
            seconds.append(took)
        left -= size
    return seconds


def _pend_and_compact(address: tuple[str, int], data: Path, fifo: Path) -> dict:
    """Submit the pending run (``hold`` running, PENDING jobs waiting for it), then prune the
    oldest finished run, which compacts the AOF; returns the run id and the compaction."""
    aof = data / "master" / "master.aof"
    with MasterClient(*address, timeout=120, role=Role.ADMIN) as client:
        hold = JobSpec("hold", command=("sh", "-c", f"echo held; read x < {fifo}"), retries=0)
        accepted = client.submit(RunSpec("bench-pending", (hold, *_fan_out(PENDING,
                                                                              ("hold",)))))
        _wait_output(client, f"{accepted.run_id}/hold", b"held")
        before = aof.stat().st_size, scan(aof, keep_records=False).record_count
        start = time.perf_counter()
        said = client.prune(1e9, -(-FINISHED // PENDING))  # keeps FINISHED jobs' runs
        seconds = time.perf_counter() - start
    after = aof.stat().st_size, scan(aof, keep_records=False).record_count
    return {"run_id": accepted.run_id, "compaction_s": seconds, "master_said": said,
            "bytes": [before[0], after[0]], "records": [before[1], after[1]]}


def _kill(master: psutil.Process | subprocess.Popen) -> None:
    if isinstance(master, subprocess.Popen):
        master.kill()
    else:
        master.send_signal(signal.SIGKILL)
    master.wait(timeout=30)


def _restart(procs: _Processes, data: Path, port: int, fifo_fd: int,
             run_id: str) -> tuple[subprocess.Popen, dict]:
    """Start the master again on ``data`` (after its SIGKILL) and let ``hold`` exit; return the
    new master and the timeline, seconds from the restart command."""
    os.write(fifo_fd, b"go\n")
    t0_wall, t0 = time.time(), time.perf_counter()
    process, ready = procs.master(data, port)
    at_ready, at_serving, address = _serving(process, ready, t0)
    timeline: dict = {"ready_s": at_ready, "serving_s": at_serving, "workers_s": []}
    with MasterClient(*address, timeout=120) as client:
        after, deadline = 0, time.monotonic() + 300
        while "all_done_s" not in timeline:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"run {run_id} did not finish within 300 s of the restart")
            batch = client.wait_events(after, min(remaining, 5.0))
            after = batch.last_seq
            for event in batch.events:
                _note(timeline, event, run_id, event.at - t0_wall)
        detail = client.run(run_id)
    if detail.run.state is not RunState.COMPLETED:
        raise RuntimeError(f"run {run_id} ended {detail.run.state.value} after the restart")
    return process, timeline


def _note(timeline: dict, event: Event, run_id: str, at: float) -> None:
    if event.kind is EventKind.WORKER and event.detail == "connected":
        timeline["workers_s"].append(at)
    elif event.run_id != run_id:
        return
    elif event.kind is EventKind.JOB and event.job_state is JobState.COMPLETED:
        key = "hold_done_s" if event.job_id == "hold" else "first_flow_s"
        timeline.setdefault(key, at)
    elif event.kind is EventKind.RUN and event.run_state in _DONE:
        timeline["all_done_s"] = at


def _cluster_part(procs: _Processes, root: Path) -> dict:
    data = root / "cluster"
    data.mkdir()
    fifo = root / "hold.fifo"
    os.mkfifo(fifo)
    # Held open for reading and writing: a job's open never blocks, and each "go" waits in the
    # pipe for the read of that round's hold.
    fifo_fd = os.open(fifo, os.O_RDWR)
    rounds: list[dict] = []
    try:
        state = procs.up(data)
        address = state["master"]["host"], int(state["master"]["port"])
        with MasterClient(*address, timeout=120) as client:
            fanout_s = _finish_jobs(client)
        master: psutil.Process | subprocess.Popen = psutil.Process(state["master"]["pid"])
        for n in range(ROUNDS):
            empty = _empty_start(procs, root / f"empty-{n}")  # next to each restart: same load
            compaction = _pend_and_compact(address, data, fifo)
            _kill(master)
            master, timeline = _restart(procs, data, address[1], fifo_fd,
                                        compaction["run_id"])
            rounds.append({"empty_start_s": empty, "compaction": compaction, **timeline})
    finally:
        os.close(fifo_fd)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    first = rounds[0]["compaction"]
    flow = median("first_flow_s")
    return {
        "restart_serving_s": _figure(median("serving_s"), median("empty_start_s"), "s"),
        "restart_first_flow_s": _figure(flow, median("empty_start_s"), "s",
                                        goal_max=GOAL_FLOW_S, goal_met=flow < GOAL_FLOW_S),
        "restart_all_done_s": _figure(median("all_done_s"), statistics.median(fanout_s), "s",
                                      original_titan=ORIGINAL_TITAN_S),
        "cluster_compaction_s": _figure(first["compaction_s"],
                                        _raw_write_fsync(root, first["bytes"][1]), "s",
                                        master_said=first["master_said"]),
        "cluster_compaction_size": _figure(first["bytes"][1], first["bytes"][0], "bytes",
                                           records=first["records"]),
        "restart_rounds": rounds,
    }


# -- a 1,000,000-record AOF ------------------------------------------------------------------------

def _write_history(path: Path, records: int) -> int:
    """Write an AOF of at least ``records`` master records (see the module docstring); returns
    how many it holds."""
    spec = RunSpec("bench-history", (JobSpec("root", command=TRUE),
                                     *_fan_out(HISTORY_JOBS - 1, ("root",))))
    children = [job.id for job in spec.jobs[1:]]
    clock = int(time.time() * 1000) - records // (3 * HISTORY_JOBS) * 1000  # a run a second
    count = epoch = 0
    live: list[str] = []

    def ran(run_id: str, job_id: str, at: float) -> list[JobTransition]:
        nonlocal epoch
        epoch += 1
        return [JobTransition(run_id, job_id, _RUNNING, _QUEUED, at, 1, epoch, "worker-1"),
                JobTransition(run_id, job_id, _COMPLETED, _RUNNING, at + 0.1, 1, epoch,
                              "worker-1", exit_code=0)]

    with open(path, "wb") as f:
        f.write(aof_record.encode_file_header())
        while count < records:
            clock += 1000
            at, run_id = clock / 1000, run_id_at(clock)
            out: list = [RunSubmitted(run_id, spec, at, {}),
                         JobTransition(run_id, "root", _QUEUED, _PENDING, at, 0, 0),
                         *ran(run_id, "root", at)]
            out += [JobTransition(run_id, job_id, _QUEUED, _PENDING, at + 0.1, 0, 0)
                    for job_id in children]
            for job_id in children:
                out += ran(run_id, job_id, at + 0.2)
            live.append(run_id)
            if len(live) > HISTORY_KEEP:
                out.append(RunsForgotten((live.pop(0),), at + 0.5))
            f.write(b"".join(aof_record.encode_record(master_records.encode(r)) for r in out))
            count += len(out)
    return count


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _raw_read(path: Path) -> float:
    def read() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)
    return _timed(read)[0]


def _decode_all(path: Path) -> int:
    decode = master_records.decode
    count = 0
    for payload in scan(path).records:
        decode(payload)
        count += 1
    return count


def _replay_all(path: Path) -> Scheduler:
    scheduler, decode = Scheduler(), master_records.decode
    for payload in scan(path).records:
        scheduler.apply(decode(payload))
    return scheduler


def _compact(scheduler: Scheduler, directory: Path) -> tuple[float, int]:
    """Compact as the master does, into a new file; returns (seconds, bytes written)."""
    aof = AppendOnlyFile.open(directory / "compacted.aof", "always")
    try:
        seconds, _ = _timed(lambda: aof.rewrite(master_records.encode(record)
                                                for record in scheduler.snapshot()))
        return seconds, aof.size
    finally:
        aof.close()


def _raw_write_fsync(directory: Path, size: int) -> float:
    data = b"\0" * (1 << 20)

    def write() -> None:
        fd = os.open(directory / "raw.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            left = size
            while left > 0:
                left -= os.write(fd, data[:min(left, len(data))])
            os.fsync(fd)
        finally:
            os.close(fd)
    return _timed(write)[0]


def _history_part(procs: _Processes, root: Path) -> dict:
    data = root / "history"
    (data / "master").mkdir(parents=True)
    path = data / "master" / "master.aof"
    generate_s, count = _timed(lambda: _write_history(path, RECORDS))
    size = path.stat().st_size
    # Each step PASSES times, interleaved, the best time of each: the machine is shared.
    raw_s = scan_s = decode_s = replay_s = float("inf")
    for _ in range(PASSES):
        raw_s = min(raw_s, _raw_read(path))
        scan_s = min(scan_s, _timed(lambda: scan(path))[0])
        decode_s = min(decode_s, _timed(lambda: _decode_all(path))[0])
        seconds, scheduler = _timed(lambda: _replay_all(path))
        replay_s = min(replay_s, seconds)
    compaction_s, compacted = _compact(scheduler, root)
    write_s = _raw_write_fsync(root, compacted)
    compacted_records = scan(root / "compacted.aof", keep_records=False).record_count
    del scheduler
    empty_start = _empty_start(procs, root / "empty-history")
    start = time.perf_counter()
    process, ready = procs.master(data, 0)
    serving_s = _serving(process, ready, start)[1]
    process.terminate()
    process.wait(timeout=30)
    return {
        "replay_records_per_s": _figure(count / replay_s, count / decode_s, "rec/s",
                                        goal_min=GOAL_REPLAY,
                                        goal_met=count / replay_s > GOAL_REPLAY),
        "scan_records_per_s": _figure(count / scan_s, count / raw_s, "rec/s"),
        "restart_1m_serving_s": _figure(serving_s, empty_start, "s"),
        "compaction_s": _figure(compaction_s, write_s, "s"),
        "compaction_size": _figure(compacted, size, "bytes",
                                   records=[count, compacted_records]),
        "breakdown": {
            "records": count, "bytes": size, "generate_s": generate_s,
            "raw_read_mb_per_s": size / raw_s / 1e6,
            "decode_records_per_s": count / decode_s,
            "share_of_replay": {"read_and_crc": scan_s / replay_s,
                                "decode": (decode_s - scan_s) / replay_s,
                                "apply": (replay_s - decode_s) / replay_s},
        },
    }


def main() -> dict:
    figures: dict = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="titan-bench-") as tmp:
        root = Path(tmp)
        procs = _Processes(root)
        try:
            figures.update(_cluster_part(procs, root))
            figures.update(_history_part(procs, root))
        finally:
            problems = procs.stop()
    if problems:
        print("bench_recovery: processes did not stop cleanly:\n  " + "\n  ".join(problems),
              file=sys.stderr)
    figures["setup"] = {"workers": WORKERS, "slots": SLOTS, "finished": FINISHED,
                        "pending": PENDING, "records": RECORDS, "history_jobs": HISTORY_JOBS,
                        "history_keep": HISTORY_KEEP, "rounds": ROUNDS,
                        "cleanup_problems": problems}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_recovery.json").write_text(json.dumps(figures, indent=2))
    return figures


def _print(r: dict) -> None:
    n, pending = r["breakdown"]["records"], r["setup"]["pending"]
    rows = [
        ("restart -> serving (compacted AOF)", "restart_serving_s", "empty master start", ""),
        ("restart -> first pending job done", "restart_first_flow_s", "empty master start",
         f"< {GOAL_FLOW_S:g} s"),
        (f"restart -> all {pending} pending done", "restart_all_done_s",
         f"{pending}-job fan-out", f"(Titan {ORIGINAL_TITAN_S:g} s)"),
        ("compaction in the cluster (prune)", "cluster_compaction_s", "raw write+fsync", ""),
        ("  size after / before", "cluster_compaction_size", "before", ""),
        (f"replay, {n:,} records", "replay_records_per_s", "read+decode, no apply",
         f"> {GOAL_REPLAY:,.0f}"),
        ("  read+CRC only", "scan_records_per_s", "raw sequential read", ""),
        ("restart -> serving (that AOF)", "restart_1m_serving_s", "empty master start", ""),
        ("compaction of that AOF's state", "compaction_s", "raw write+fsync", ""),
        ("  size after / before", "compaction_size", "before", ""),
    ]
    print(f"{'figure':36} {'ours':>10} {'baseline':>10} {'unit':>5} {'ratio':>6}   "
          f"{'baseline is':22} goal")
    for label, key, what, goal in rows:
        f = r[key]
        unit, scale = ("MB", 1e-6) if f["unit"] == "bytes" else (f["unit"], 1)
        shown = "{:10,.0f} {:10,.0f}" if unit == "rec/s" else "{:10.2f} {:10.2f}"
        met = "" if "goal_met" not in f else (" met" if f["goal_met"] else " MISSED")
        print(f"{label:36} {shown.format(f['ours'] * scale, f['baseline'] * scale)} "
              f"{unit:>5} {f['ratio']:6.2f}   {what:22} {goal}{met}")
    share = r["breakdown"]["share_of_replay"]
    print(f"replay time: read+CRC {share['read_and_crc']:.0%}, decode {share['decode']:.0%}, "
          f"apply {share['apply']:.0%}")
    print("each restart, seconds after the command (the table gives medians):")
    for t in r["restart_rounds"]:
        print("  ready {:.2f}, serving {:.2f}, workers registered {}, first done {:.2f}, all "
              "done {:.2f}; empty start {:.2f}".format(
                  t["ready_s"], t["serving_s"], " ".join(f"{w:.2f}" for w in t["workers_s"]),
                  t["first_flow_s"], t["all_done_s"], t["empty_start_s"]))
    print("ratio = ours / baseline (s: higher is slower; rec/s: lower is slower)")


if __name__ == "__main__":
    _print(main())
