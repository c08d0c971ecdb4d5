"""OutputCapture over plain pipes (no launcher): batches, order, cap, errors, finish."""

from __future__ import annotations

import os
import time

import gevent
import pytest
from gevent.event import Event
from gevent.os import nb_write

from titan_actors.execution.output import TRUNCATION_MARKER, OutputCapture, Stream, finish


class Pipes:
    """Two pipes standing in for a job's stdout and stderr; the test holds the write ends."""

    def __init__(self) -> None:
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        for fd in (self.out_r, self.err_r, self.out_w, self.err_w):
            os.set_blocking(fd, False)
        self.batches: list[tuple[Stream, bytes]] = []
        self.arrived = Event()

    def on_batch(self, stream: Stream, data: bytes) -> None:
        self.batches.append((stream, data))
        self.arrived.set()

    def capture(self, **options) -> OutputCapture:
        return OutputCapture(self.out_r, self.err_r, self.on_batch, **options).start()

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[nb_write(fd, view):]

    def close_writers(self) -> None:
        for fd in (self.out_w, self.err_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def joined(self, stream: Stream) -> bytes:
        return b"".join(d for s, d in self.batches if s is stream)


@pytest.fixture
def pipes():
    p = Pipes()
    yield p
    p.close_writers()


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_both_streams_arrive_in_order_in_bounded_batches(pipes):
    capture = pipes.capture(batch_bytes=16384)
    out = bytes(range(256)) * 1200
    err = b"e" * 100_000
    writers = [gevent.spawn(pipes.write, pipes.out_w, out),
               gevent.spawn(pipes.write, pipes.err_w, err)]
    gevent.joinall(writers, timeout=10, raise_error=True)
    pipes.close_writers()
    assert capture.wait(10) and capture.complete
    assert pipes.joined(Stream.STDOUT) == out and pipes.joined(Stream.STDERR) == err
    assert all(0 < len(d) <= 16384 for _, d in pipes.batches)
    assert capture.captured_bytes == len(out) + len(err) and not capture.truncated
    assert _closed(pipes.out_r) and _closed(pipes.err_r)


def test_a_batch_is_flushed_as_soon_as_the_pipe_is_drained(pipes):
    capture = pipes.capture()
    pipes.write(pipes.out_w, b"first")
    assert pipes.arrived.wait(5)  # the writer is still open: no EOF, no full batch
    assert pipes.batches == [(Stream.STDOUT, b"first")]
    pipes.close_writers()
    assert capture.wait(5)


def test_linger_coalesces_chatty_output(pipes):
    capture = pipes.capture(linger=10)
    start = time.monotonic()
    for part in (b"a", b"b", b"c"):
        pipes.write(pipes.out_w, part)
        gevent.idle()  # let the reader take each part on its own
    pipes.close_writers()
    assert capture.wait(5) and time.monotonic() - start < 5  # EOF flushes; no linger wait
    assert pipes.batches == [(Stream.STDOUT, b"abc")]


def test_linger_ends_with_a_flush_while_the_pipe_stays_open(pipes):
    pipes.capture(linger=0.05)
    pipes.write(pipes.out_w, b"x")
    assert pipes.arrived.wait(5)
    assert pipes.batches == [(Stream.STDOUT, b"x")]


def test_the_cap_counts_both_streams_and_marks_once(pipes):
    capture = pipes.capture(cap_bytes=10)
    pipes.write(pipes.out_w, b"123456")
    assert pipes.arrived.wait(5)
    pipes.arrived.clear()
    pipes.write(pipes.err_w, b"abcdefgh")
    assert pipes.arrived.wait(5)
    pipes.write(pipes.out_w, b"more, dropped")
    pipes.close_writers()
    assert capture.wait(5)
    assert pipes.batches == [(Stream.STDOUT, b"123456"), (Stream.STDERR, b"abcd"),
                             (Stream.STDERR, TRUNCATION_MARKER)]
    assert capture.truncated and capture.captured_bytes == 10
    assert capture.dropped_bytes == 4 + len(b"more, dropped")


def test_a_failing_callback_stops_the_capture_and_is_raised(pipes):
    def on_batch(stream, data):
        raise ValueError("log sink broke")

    capture = OutputCapture(pipes.out_r, pipes.err_r, on_batch).start()
    pipes.write(pipes.out_w, b"x")
    with pytest.raises(ValueError, match="log sink broke"):
        capture.wait(5)
    assert _closed(pipes.out_r) and _closed(pipes.err_r)
    assert not capture.complete


def test_uncaptured_streams_and_close_before_start_ran(pipes):
    assert OutputCapture(-1, -1, pipes.on_batch).start().wait(0)
    capture = pipes.capture()
    capture.close()  # the greenlets never ran: close still closes the fds
    assert _closed(pipes.out_r) and _closed(pipes.err_r)


class _Exited:
    def __init__(self, code):
        self.code = code

    def wait(self, timeout):
        return self.code


def test_finish_waits_for_eof_after_the_exit(pipes):
    capture = pipes.capture()
    pipes.write(pipes.out_w, b"last words")
    pipes.close_writers()
    result = finish(_Exited(3), capture, timeout=1)
    assert (result.code, result.output_complete, result.captured_bytes) == (3, True, 10)
    assert pipes.joined(Stream.STDOUT) == b"last words"


def test_finish_gives_up_on_a_pipe_held_open(pipes):
    capture = pipes.capture()
    result = finish(_Exited(0), capture, timeout=1, drain_timeout=0.05)
    assert result.code == 0 and not result.output_complete
    assert _closed(pipes.out_r)


def test_finish_returns_none_while_the_process_runs(pipes):
    capture = pipes.capture()
    assert finish(_Exited(None), capture, timeout=0) is None
    capture.close()


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        OutputCapture(-1, -1, print, batch_bytes=0)
