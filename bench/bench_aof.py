"""Append-only file throughput for each fsync policy, against raw ``os.write`` (+ ``os.fsync``).

Run ``python bench/bench_aof.py`` (about 10 s). Everything is measured in this process, in the
same run, on the same disk: a temp directory under the repository (override with
``TITAN_BENCH_DIR``); the device, filesystem and mount point are printed, because fsync cost is
the disk's, not ours.

* baseline ``raw write+fsync``: ``os.write`` of one encoded record then ``os.fsync``, in a loop;
* ``always, 1 appender``: one greenlet that appends and waits for each barrier (latency-bound);
* ``always, 50 appenders``: 50 greenlets appending and waiting concurrently; group commit makes
  one fsync cover many records, so this should beat the baseline;
* baseline ``raw write``: ``os.write`` of one record, no fsync;
* ``everysec`` and ``no``: appends whose barriers resolve at once (one background fsync a
  second under ``everysec``), compared with ``raw write``.

:func:`main` returns the figures as a dict.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gevent
from _support import CountingFsync

from titan_actors.aof import AppendOnlyFile, FsyncPolicy
from titan_actors.aof import record as rec

DURATION = 1.0  # seconds per measurement
PAYLOAD = b"p" * 128
CONCURRENT = 50
REPO = Path(__file__).resolve().parent.parent



def _disk(path: Path) -> dict[str, str]:
    """The mount that holds ``path``, from /proc/mounts (the longest matching mount point)."""
    best = {"device": "?", "mount": "/", "fstype": "?"}
    try:
        with open("/proc/mounts") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best["mount"]):
                    best = {"device": device, "mount": mount, "fstype": fstype}
    except OSError:
        pass
    return best


def _rate(body: Callable[[float], int]) -> float:
    """Run ``body(deadline)`` (it returns how many records it wrote); return records per second."""
    start = time.perf_counter()
    count = body(start + DURATION)
    return count / (time.perf_counter() - start)


def _raw(directory: Path, sync: bool) -> float:
    record = rec.encode_record(PAYLOAD)
    fd = os.open(directory / f"raw-{sync}.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def body(deadline: float) -> int:
        n = 0
        while time.perf_counter() < deadline:
            os.write(fd, record)
            if sync:
                os.fsync(fd)
            n += 1
        return n

    try:
        return _rate(body)
    finally:
        os.close(fd)


def _always(directory: Path, appenders: int) -> tuple[float, float]:
    """Return (appends per second, records per fsync) under ALWAYS with ``appenders`` greenlets."""
    fsync = CountingFsync()
    aof = AppendOnlyFile.open(directory / f"always-{appenders}.aof", FsyncPolicy.ALWAYS,
                              fsync=fsync, inline_io=True)  # as with os.fsync: counted only
    counts = [0] * appenders

    def appender(i: int, deadline: float) -> None:
        while time.perf_counter() < deadline:
            aof.append(PAYLOAD).wait(10.0)
            counts[i] += 1

    def body(deadline: float) -> int:
        before = fsync.calls
        greenlets = [gevent.spawn(appender, i, deadline) for i in range(appenders)]
        gevent.joinall(greenlets, timeout=DURATION + 10.0, raise_error=True)
        body.fsyncs = fsync.calls - before
        return sum(counts)

    rate = _rate(body)
    aof.close()
    return rate, sum(counts) / max(body.fsyncs, 1)


def _unsynced(directory: Path, policy: FsyncPolicy) -> float:
    aof = AppendOnlyFile.open(directory / f"{policy.value}.aof", policy)

    def body(deadline: float) -> int:
        n = 0
        while time.perf_counter() < deadline:
            for _ in range(1000):
                aof.append(PAYLOAD)
            n += 1000
            gevent.sleep(0)  # an owner's loop yields; this lets the everysec syncer run
        return n

    try:
        return _rate(body)
    finally:
        aof.close()


def main() -> dict[str, object]:
    """Measure and return ``{"disk": {...}, "<case>": {"per_s": .., "baseline": .., ...}}``."""
    root = Path(os.environ.get("TITAN_BENCH_DIR", REPO))
    directory = Path(tempfile.mkdtemp(prefix=".bench-aof-", dir=root))
    try:
        raw_fsync = _raw(directory, sync=True)
        raw_write = _raw(directory, sync=False)
        always_1, per_fsync_1 = _always(directory, 1)
        always_n, per_fsync_n = _always(directory, CONCURRENT)
        everysec = _unsynced(directory, FsyncPolicy.EVERYSEC)
        no = _unsynced(directory, FsyncPolicy.NO)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    figures: dict[str, object] = {"disk": {"dir": str(directory), **_disk(directory)},
                                  "payload_bytes": len(PAYLOAD)}
    for name, rate, baseline_name, baseline, extra in (
            ("raw write+fsync", raw_fsync, "raw write+fsync", raw_fsync, {}),
            ("always, 1 appender", always_1, "raw write+fsync", raw_fsync,
             {"records_per_fsync": per_fsync_1}),
            (f"always, {CONCURRENT} appenders", always_n, "raw write+fsync", raw_fsync,
             {"records_per_fsync": per_fsync_n}),
            ("raw write", raw_write, "raw write", raw_write, {}),
            ("everysec", everysec, "raw write", raw_write, {}),
            ("no", no, "raw write", raw_write, {})):
        figures[name] = {"per_s": rate, "baseline": baseline_name,
                         "ratio": rate / baseline, **extra}
    return figures


def _print(figures: dict[str, object]) -> None:
    disk = figures["disk"]
    print(f"disk: {disk['dir']} on {disk['device']} ({disk['fstype']}, mounted at "
          f"{disk['mount']}); {figures['payload_bytes']}-byte payloads, {DURATION:.0f} s each")
    print(f"{'case':<22} {'appends/s':>11} {'us/append':>10} {'vs baseline':>16} "
          f"{'ratio':>7} {'rec/fsync':>9}")
    for name, r in figures.items():
        if not isinstance(r, dict) or "per_s" not in r:
            continue
        per_fsync = f"{r['records_per_fsync']:.1f}" if "records_per_fsync" in r else ""
        print(f"{name:<22} {r['per_s']:>11.0f} {1e6 / r['per_s']:>10.1f} {r['baseline']:>16} "
              f"{r['ratio']:>7.2f} {per_fsync:>9}")


if __name__ == "__main__":
    _print(main())
