"""The child registry file, what its records name (pure), and killing by record (a few real
processes; the launcher's cleanup is tested in tests/integration/test_launcher.py)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import psutil

from support import wait_until
from titan_actors.execution import orphans


def test_registry_records_every_change_in_the_file(tmp_path):
    registry = orphans.ChildRegistry(tmp_path)
    assert orphans.read_records(tmp_path) == []
    me = registry.add(os.getpid(), key="a key with spaces")
    assert me.create_time == psutil.Process().create_time() and me.pgid == os.getpid()
    assert orphans.read_records(tmp_path) == [me] == registry.records
    registry.remove(os.getpid())
    registry.remove(12345678)
    assert orphans.read_records(tmp_path) == []
    assert os.listdir(tmp_path) == [orphans.FILE_NAME]


def test_registry_appends_one_line_per_change_and_compacts(tmp_path):
    registry = orphans.ChildRegistry(tmp_path)
    path = tmp_path / orphans.FILE_NAME
    registry.expect("k1", "k1/aa")
    registry.expect("k2", "k2/bb")
    registry.forget("k1/aa")
    assert path.read_text() == ("0 0 0.0 k1/aa k1\n0 0 0.0 k2/bb k2\n- k1/aa\n")
    assert orphans.read_records(tmp_path) == [orphans.ChildRecord(0, 0, 0.0, "k2", "k2/bb")]
    for n in range(1000):  # many more lines than records: the journal is rewritten
        registry.expect(f"j{n}", f"j{n}/cc")
        registry.forget(f"j{n}/cc")
    assert len(path.read_text().splitlines()) < 300
    assert orphans.read_records(tmp_path) == registry.records == [
        orphans.ChildRecord(0, 0, 0.0, "k2", "k2/bb")]


def test_a_process_already_gone_is_not_recorded(tmp_path):
    done = subprocess.Popen(["/bin/true"])
    done.wait(10)
    assert orphans.ChildRegistry(tmp_path).add(done.pid) is None


def test_damaged_lines_are_skipped(tmp_path):
    good = orphans.ChildRecord(10, 10, 1234.5, "k")
    (tmp_path / orphans.FILE_NAME).write_text("garbage\n1 2\n" + good.to_line() + "7 7 x k\n")
    assert orphans.read_records(tmp_path) == [good]


def test_a_record_of_a_process_that_is_gone_kills_nothing(tmp_path):
    done = subprocess.Popen(["/bin/true"])
    done.wait(10)
    (tmp_path / orphans.FILE_NAME).write_text(
        orphans.ChildRecord(done.pid, done.pid, 1.0, "gone").to_line())
    assert orphans.kill_orphans(tmp_path) == []
    assert orphans.kill_orphans(tmp_path / "no-such-dir") == []


# -- what a record names (pure) -------------------------------------------------------------------

LEADER = orphans.ChildRecord(100, 100, 1000.0, "run/job/1/1", "run/job/1/1/abcd")


def _named(records, seen):
    return sorted(proc.pid for _, proc in orphans.select_orphans(records, seen))


def test_the_leader_is_named_only_with_its_own_start_time():
    same = orphans.Seen(100, 1000.0, 100, 100)
    assert _named([LEADER], [same]) == [100]
    reused = orphans.Seen(100, 2000.0, 100, 100)  # pid 100 now belongs to another process
    assert _named([LEADER], [reused]) == []


def test_group_and_session_match_only_while_the_leader_lives():
    # group 100 is the leader's only while the leader itself is alive with its start time
    member = orphans.Seen(101, 1001.0, 100, 100)
    leader = orphans.Seen(100, 1000.0, 100, 100)
    assert _named([LEADER], [leader, member]) == [100, 101]
    assert _named([LEADER], [member, orphans.Seen(100, 3000.0, 100, 100)]) == []
    # once the leader is gone, its pid may have led another group whose members live on
    # (`cat f | sort`: cat leads and exits first): only the marker names the job's processes
    assert _named([LEADER], [member]) == []
    older_format = orphans.ChildRecord(100, 100, 1000.0, "run/job/1/1")
    assert _named([older_format], [member]) == [101]
    # ... but the marker still names a process that carries it
    marked = orphans.Seen(102, 1002.0, 102, 102, LEADER.marker)
    assert _named([LEADER], [orphans.Seen(100, 3000.0, 100, 100), marked]) == [102]


def test_group_members_older_than_the_leader_are_not_its_own():
    older = orphans.Seen(90, 900.0, 100, 100)
    assert _named([LEADER], [older]) == []


def test_the_marker_names_a_process_in_any_session_and_only_its_own_marker():
    daemon = orphans.Seen(300, 1005.0, 300, 300, LEADER.marker)   # setsid + double fork
    other = orphans.Seen(301, 1005.0, 301, 301, "run/job/1/1/ffff")  # another attempt's
    plain = orphans.Seen(302, 1005.0, 302, 302)
    assert _named([LEADER], [daemon, other, plain]) == [300]
    not_started = orphans.ChildRecord(0, 0, 0.0, "k", LEADER.marker)  # pid never recorded
    assert _named([not_started], [daemon, plain, orphans.Seen(1, 1.0, 0, 0)]) == [300]


def test_a_process_named_by_two_records_is_listed_once():
    twin = dataclasses.replace(LEADER, key="twin")
    chosen = orphans.select_orphans([LEADER, twin], [orphans.Seen(100, 1000.0, 100, 100)])
    assert [(r.key, p.pid) for r, p in chosen] == [(LEADER.key, 100)]


def test_a_job_outside_its_own_session_names_no_group():
    shared = orphans.ChildRecord(100, 7, 1000.0, "k")  # pgid 7: the launcher's group
    assert _named([shared], [orphans.Seen(200, 1001.0, 7, 7)]) == []


# -- the registry's lines ------------------------------------------------------------------------

def test_a_launch_is_recorded_by_marker_before_it_starts_then_by_pid(tmp_path):
    registry = orphans.ChildRegistry(tmp_path)
    registry.expect("run/a b/1/1", "run/a_b/1/1/abcd")
    assert orphans.read_records(tmp_path) == [
        orphans.ChildRecord(0, 0, 0.0, "run/a b/1/1", "run/a_b/1/1/abcd")]
    record = registry.started("run/a_b/1/1/abcd", os.getpid())
    assert record.pid == os.getpid() and record.pgid == os.getpgid(0)
    assert record.create_time == psutil.Process().create_time()
    assert orphans.read_records(tmp_path) == [record]
    assert registry.started("unknown", os.getpid()) is None
    registry.forget("run/a_b/1/1/abcd")
    registry.forget("run/a_b/1/1/abcd")
    assert orphans.read_records(tmp_path) == []


def test_a_launch_that_exited_before_it_was_recorded_keeps_its_marker(tmp_path):
    done = subprocess.Popen(["/bin/true"])
    done.wait(10)
    registry = orphans.ChildRegistry(tmp_path)
    registry.expect("k", "k/1234")
    registry.started("k/1234", done.pid)
    assert orphans.read_records(tmp_path) == [orphans.ChildRecord(0, 0, 0.0, "k", "k/1234")]


def test_lines_of_the_older_format_have_no_marker(tmp_path):
    (tmp_path / orphans.FILE_NAME).write_text("10 10 1234.5 run/job/1/1\n")
    assert orphans.read_records(tmp_path) == [orphans.ChildRecord(10, 10, 1234.5,
                                                                  "run/job/1/1")]


# -- killing with real processes ------------------------------------------------------------------

_SLEEPER = [sys.executable, "-c", "import signal; signal.pause()"]


def _sleeper(**env):
    return subprocess.Popen(_SLEEPER, start_new_session=True, env={**os.environ, **env})


def test_kill_records_finds_a_marked_process_in_another_session():
    marker = "run/job/1/1/feedface"
    daemon = _sleeper(TITAN_ATTEMPT_MARKER=marker)
    bystander = _sleeper(TITAN_ATTEMPT_MARKER=marker + "0")  # a marker that merely starts so
    try:  # Popen returns before exec has set up the new environment: wait for it
        wait_until(lambda: psutil.Process(daemon.pid).environ().get("TITAN_ATTEMPT_MARKER"),
                   timeout=10, what="the daemon's environment")
        killed = orphans.kill_records([orphans.ChildRecord(0, 0, 0.0, "k", marker)])
        assert [r.key for r in killed] == ["k"]
        assert daemon.wait(10) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        for process in (daemon, bystander):
            process.kill()
            process.wait(10)


def test_kill_records_never_signals_a_pid_whose_start_time_differs():
    stranger = _sleeper()
    try:
        started = psutil.Process(stranger.pid).create_time()
        reused = orphans.ChildRecord(stranger.pid, stranger.pid, started - 100, "old")
        assert orphans.kill_records([reused]) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(10)
