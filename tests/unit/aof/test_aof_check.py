"""Offline check and fix: reports never raise on damage; fix backs up, refuses mid-file damage."""

from __future__ import annotations

import calendar
import time

import pytest

from titan_actors.aof import DamageKind, check_aof, fix_aof, replay
from titan_actors.aof import record as rec
from titan_actors.errors import AofCorruptError, AofFormatError, PersistenceError

RECORDS = [b"one", b"two", b"three"]
GOOD = rec.encode_file_header() + b"".join(rec.encode_record(r) for r in RECORDS)
NOW = calendar.timegm((2024, 5, 17, 13, 45, 9, 0, 0, 0))


def clock():
    return NOW


@pytest.fixture
def path(tmp_path):
    return tmp_path / "master.aof"


def test_report_on_a_clean_file(path):
    path.write_bytes(GOOD)
    report = check_aof(path)
    assert (report.format_version, report.record_count) == (1, 3)
    assert report.last_good_offset == report.file_size == len(GOOD)
    assert report.damage is None and report.loadable
    text = report.format()
    assert f"{path}: format version 1, {len(GOOD)} bytes" in text
    assert "records: 3 good" in text and "OK: no damage" in text


def test_report_on_a_torn_tail(path):
    path.write_bytes(GOOD[:-2])
    report = check_aof(path)
    assert report.damage.kind is DamageKind.TORN and report.record_count == 2
    assert report.loadable and not check_aof(path, strict=True).loadable
    text = report.format()
    assert f"torn tail at byte offset {report.last_good_offset}" in text
    assert "--fix" in text
    assert "NOT LOADABLE in strict mode" in check_aof(path, strict=True).format()


def test_report_on_mid_file_corruption(path):
    damaged = bytearray(GOOD)
    damaged[rec.FILE_HEADER_SIZE + rec.RECORD_HEADER_SIZE] ^= 0xFF
    path.write_bytes(bytes(damaged))
    report = check_aof(path)
    assert report.damage.kind is DamageKind.CORRUPT and not report.loadable
    assert report.damage.offset == rec.FILE_HEADER_SIZE and report.record_count == 0
    assert "CORRUPT at byte offset 10" in report.format()
    assert "restore the file from a backup" in report.format()


def test_report_on_a_file_that_is_not_an_aof(path):
    path.write_bytes(b"hello world, not an aof")
    report = check_aof(path)
    assert not report.loadable and report.format_version is None
    assert report.damage.kind is DamageKind.FORMAT and report.damage.offset == 0
    assert "NOT LOADABLE" in report.format()
    assert "found magic b'hello wo'" in report.format()


def test_check_of_a_missing_file_raises(path):
    with pytest.raises(PersistenceError, match=str(path)):
        check_aof(path)


def test_fix_backs_up_then_truncates_a_torn_tail(path):
    torn = GOOD + rec.encode_record(b"four")[:-1]
    path.write_bytes(torn)
    backup = fix_aof(path, now=clock)
    assert backup.name == "master.aof.bak-20240517-134509"
    assert backup.read_bytes() == torn
    assert path.read_bytes() == GOOD
    assert check_aof(path).damage is None
    path.write_bytes(torn)
    assert fix_aof(path, now=clock).name == "master.aof.bak-20240517-134509-2"


def test_fix_of_a_clean_file_does_nothing(path):
    path.write_bytes(GOOD)
    assert fix_aof(path, now=clock) is None
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.aof"]


def test_fix_refuses_mid_file_corruption(path):
    damaged = bytearray(GOOD)
    damaged[-len(rec.encode_record(b"three")) - 1] ^= 0x01  # last byte of record "two"
    path.write_bytes(bytes(damaged))
    with pytest.raises(AofCorruptError, match="offset 25.*Restore the file from a backup"):
        fix_aof(path, now=clock)
    assert path.read_bytes() == bytes(damaged)
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.aof"]


def test_fix_refuses_a_foreign_file(path):
    path.write_bytes(b"not an aof at all")
    with pytest.raises(AofFormatError):
        fix_aof(path, now=clock)


def test_fixed_file_replays(path):
    path.write_bytes(GOOD + bytes(7))
    fix_aof(path, now=time.time)
    assert replay(path, strict=True).records == tuple(RECORDS)
