"""The child registry file (killing leftovers is tested with real processes in
tests/integration/test_launcher.py)."""

from __future__ import annotations

import os
import subprocess

import psutil

from titan_actors.execution import orphans


def test_registry_rewrites_the_file_on_every_change(tmp_path):
    registry = orphans.ChildRegistry(tmp_path)
    assert orphans.read_records(tmp_path) == []
    me = registry.add(os.getpid(), key="a key with spaces")
    assert me.create_time == psutil.Process().create_time() and me.pgid == os.getpid()
    assert orphans.read_records(tmp_path) == [me] == registry.records
    registry.remove(os.getpid())
    registry.remove(12345678)
    assert orphans.read_records(tmp_path) == []
    assert os.listdir(tmp_path) == [orphans.FILE_NAME]


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
