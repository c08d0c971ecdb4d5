"""The record format and replay: torn tails are dropped, mid-file damage is refused."""

from __future__ import annotations

import logging
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan_actors.aof import record as rec
from titan_actors.aof.replay import DamageKind, replay, scan
from titan_actors.errors import (
    AofCorruptError,
    AofFormatError,
    AofRecordTooLargeError,
    AofTornTailError,
)

PAYLOADS = [b"", b"a", b"hello world", bytes(range(256)), b"z" * 40, b"last-one"]


def build(payloads: list[bytes]) -> tuple[bytes, list[int]]:
    """Return a file's bytes and the start offset of each record."""
    data = bytearray(rec.encode_file_header())
    starts = []
    for p in payloads:
        starts.append(len(data))
        data += rec.encode_record(p)
    return bytes(data), starts


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_round_trip(tmp_path):
    data, _ = build(PAYLOADS)
    result = replay(write(tmp_path / "f.aof", data))
    assert result.records == tuple(PAYLOADS)
    assert result.record_count == len(PAYLOADS)
    assert result.format_version == rec.FORMAT_VERSION
    assert result.last_good_offset == result.file_size == len(data)
    assert result.damage is None


def test_header_is_magic_then_version():
    assert rec.encode_file_header() == b"TITANAOF\x00\x01"
    header = rec.encode_record(b"abc")[:rec.RECORD_HEADER_SIZE]
    length, inverted, _crc = struct.unpack("!III", header)
    assert length == 3 and inverted == 3 ^ 0xFFFFFFFF


def test_every_truncation_within_the_last_two_records_loads_the_records_before_it(tmp_path):
    data, starts = build(PAYLOADS)
    path = tmp_path / "f.aof"
    ends = starts[1:] + [len(data)]
    for cut in range(starts[-2], len(data) + 1):
        result = replay(write(path, data[:cut]))
        whole = [p for p, end in zip(PAYLOADS, ends, strict=True) if end <= cut]
        assert result.records == tuple(whole), cut
        if cut in ends or cut == starts[0]:
            assert result.damage is None, cut
        else:
            assert result.damage.kind is DamageKind.TORN, cut
            assert result.last_good_offset == max(e for e in [starts[0], *ends] if e <= cut)
            assert result.damage.dropped_bytes == cut - result.last_good_offset


def test_torn_tail_is_logged_with_offset_and_size(tmp_path, caplog):
    data, starts = build(PAYLOADS)
    path = write(tmp_path / "f.aof", data[:-3])
    with caplog.at_level(logging.WARNING, logger="titan.aof"):
        replay(path)
    message = caplog.records[-1].getMessage()
    assert f"offset {starts[-1]}" in message
    assert f"({len(data) - 3 - starts[-1]} bytes)" in message


def test_strict_mode_refuses_a_torn_tail(tmp_path):
    data, starts = build(PAYLOADS)
    path = write(tmp_path / "f.aof", data[:-1])
    with pytest.raises(AofTornTailError, match=f"offset {starts[-1]}"):
        replay(path, strict=True)
    assert replay(write(path, data), strict=True).records == tuple(PAYLOADS)


def flip(data: bytes, offset: int, mask: int = 0xFF) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_a_flipped_byte_before_the_last_record_is_corruption(tmp_path, mask):
    data, starts = build(PAYLOADS)
    path = tmp_path / "f.aof"
    for offset in range(rec.FILE_HEADER_SIZE, starts[-1]):
        record_start = max(s for s in starts if s <= offset)
        with pytest.raises(AofCorruptError, match=f"offset {record_start}:"):
            replay(write(path, flip(data, offset, mask)))


@pytest.mark.parametrize("mask", [0x01, 0xFF])
def test_a_flipped_byte_in_the_last_record_is_a_torn_tail(tmp_path, mask):
    data, starts = build(PAYLOADS)
    path = tmp_path / "f.aof"
    for offset in range(starts[-1], len(data)):
        result = replay(write(path, flip(data, offset, mask)))
        assert result.records == tuple(PAYLOADS[:-1]), offset
        assert result.damage.kind is DamageKind.TORN
        assert result.damage.offset == starts[-1]
        with pytest.raises(AofTornTailError):
            replay(path, strict=True)


@given(payloads=st.lists(st.binary(max_size=64), min_size=2, max_size=8),
       position=st.floats(min_value=0, max_value=1, exclude_max=True),
       mask=st.integers(min_value=1, max_value=255))
@settings(max_examples=150, deadline=None)
def test_any_flipped_byte_is_detected(payloads, position, mask):
    data, starts = build(payloads)
    offset = rec.FILE_HEADER_SIZE + int(position * (len(data) - rec.FILE_HEADER_SIZE))
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "f.aof", flip(data, offset, mask))
        if offset >= starts[-1]:
            assert replay(path).records == tuple(payloads[:-1])
        else:
            with pytest.raises(AofCorruptError):
                replay(path)


def test_a_zero_filled_tail_is_torn(tmp_path):
    data, _ = build(PAYLOADS)
    for zeros in (1, 11, 12, 13, 4096):
        result = replay(write(tmp_path / "f.aof", data + bytes(zeros)))
        assert result.records == tuple(PAYLOADS)
        assert result.damage.kind is DamageKind.TORN
        assert result.damage.dropped_bytes == zeros


def test_a_record_whose_payload_was_zeroed_with_zeros_after_it_is_torn(tmp_path):
    # A filesystem that extended the file but never wrote the blocks: a good header, then zeros.
    data, starts = build(PAYLOADS)
    damaged = data[:starts[-1] + rec.RECORD_HEADER_SIZE] + bytes(len(PAYLOADS[-1]) + 100)
    result = replay(write(tmp_path / "f.aof", damaged))
    assert result.records == tuple(PAYLOADS[:-1])
    assert result.damage.kind is DamageKind.TORN


def test_zeros_in_the_middle_are_corruption(tmp_path):
    data, starts = build(PAYLOADS)
    damaged = data[:starts[2]] + bytes(starts[3] - starts[2]) + data[starts[3]:]
    with pytest.raises(AofCorruptError, match="inconsistent length"):
        replay(write(tmp_path / "f.aof", damaged))


def test_corruption_message_names_path_offset_and_reason(tmp_path):
    data, starts = build(PAYLOADS)
    path = write(tmp_path / "f.aof", flip(data, starts[2] + rec.RECORD_HEADER_SIZE + 1))
    with pytest.raises(AofCorruptError) as info:
        replay(path)
    message = str(info.value)
    assert str(path) in message and f"offset {starts[2]}" in message
    assert "CRC mismatch" in message and "backup" in message


def test_bad_magic_unknown_version_and_short_file_are_format_errors(tmp_path):
    data, _ = build(PAYLOADS)
    path = tmp_path / "f.aof"
    with pytest.raises(AofFormatError, match=r"found magic b'XITANAOF', expected b'TITANAOF'"):
        replay(write(path, b"X" + data[1:]))
    with pytest.raises(AofFormatError, match="format version 7"):
        replay(write(path, b"TITANAOF\x00\x07" + data[10:]))
    for short in (b"", b"TITAN"):
        with pytest.raises(AofFormatError, match=str(path)):
            replay(write(path, short))


def test_an_oversized_length_is_refused_before_allocating(tmp_path):
    data, starts = build(PAYLOADS)
    big = 1_000_000
    header = rec.RECORD_HEADER.pack(big, big ^ 0xFFFFFFFF, 0)
    # Consistent header, payload past the end of the file: a torn tail, not an allocation.
    result = scan(write(tmp_path / "f.aof", data + header + b"x" * 10), max_record_size=1000)
    assert result.damage.kind is DamageKind.TORN
    # Consistent header claiming more than the maximum, with the bytes present: corruption.
    body = data + header + b"x" * big + data[starts[1]:]
    with pytest.raises(AofCorruptError, match="exceeds the maximum record size 1000"):
        replay(write(tmp_path / "f.aof", body), max_record_size=1000)


def test_encoding_refuses_an_oversized_record():
    with pytest.raises(AofRecordTooLargeError, match="11 bytes exceeds .* 10 bytes"):
        rec.encode_record(b"x" * 11, max_record_size=10)


def test_scan_can_count_without_keeping_records(tmp_path):
    data, _ = build(PAYLOADS)
    result = scan(write(tmp_path / "f.aof", data), keep_records=False)
    assert result.records == () and result.record_count == len(PAYLOADS)


def test_records_across_read_chunks_and_larger_than_a_chunk(tmp_path):
    """Replay reads in 1 MiB chunks: records straddling a chunk's end, a record longer than a
    chunk, and damage past the first chunk are all read and classified as record by record."""
    payloads = [bytes([n % 251]) * (700 + n % 97) for n in range(3000)]
    payloads[1500] = b"big" * 600_000  # 1.8 MB: longer than a chunk
    data, starts = build(payloads)
    path = write(tmp_path / "f.aof", data)
    result = replay(path)
    assert result.records == tuple(payloads) and result.damage is None
    assert result.last_good_offset == len(data)

    victim = 2500  # well past the first chunk
    damaged = bytearray(data)
    damaged[starts[victim] + rec.RECORD_HEADER_SIZE + 5] ^= 0xFF
    with pytest.raises(AofCorruptError, match=f"offset {starts[victim]}"):
        replay(write(path, bytes(damaged)))

    cut = starts[2999] + 100  # a torn last record, past the big one
    result = replay(write(path, data[:cut]))
    assert result.records == tuple(payloads[:2999])
    assert result.damage.kind is DamageKind.TORN
    assert result.last_good_offset == starts[2999]
