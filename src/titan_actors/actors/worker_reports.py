"""A worker's unacknowledged reports, kept on disk so that a worker killed after a job ended,
but before the master recorded it, still reports it when it comes back (instead of the job
running again after its lease).

The file ``<worker dir>/reports.bin`` is a journal: the magic ``TRB1``, then entries of one
kind byte and a length-prefixed payload: ``R`` a JobFinished (a report to keep), ``A`` an
acknowledged attempt (``run\\0job\\0attempt\\0epoch``: forget its report). Each change is one
``write`` on the open file (no rename, no fsync: the journal matters when the worker died and the
machine did not, and then the page cache has it; after a power cut the master's lease runs the
unreported jobs again, nothing is lost). The journal is rewritten with only the live reports
(temp file, rename) when it grows past many more entries than it holds live, and durably (with
an fsync) on :meth:`ReportBook.save`, which the worker calls at start and on registration; a
short write (a full disk) makes the next change rewrite it whole. A file without the magic is
of the older format (length-prefixed JobFinished payloads, no kinds) and is read as such.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from ..errors import DecodeError
from ..journal import Journal
from ..wire import codec
from ..wire.messages.worker import AttemptRef, AttemptResult, JobFinished

log = logging.getLogger("titan.worker")

_LENGTH = struct.Struct("!I")
_MAGIC = b"TRB1"
_REPORT, _ACK = b"R", b"A"


class ReportBook:
    """The worker's journal of unacknowledged reports (see the module docstring).

    :meth:`load` once at start; then :meth:`add` each report and :meth:`remove` it once
    acknowledged. Not thread-safe: one greenlet hub uses it.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "reports.bin"
        self._live: dict[AttemptRef, AttemptResult] = {}
        self._journal = Journal(self.path)

    def load(self) -> dict[AttemptRef, AttemptResult]:
        """The reports a previous life left; a damaged file is set aside (and said so)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        results: dict[AttemptRef, AttemptResult] = {}
        try:
            if data.startswith(_MAGIC):
                _read_journal(data, results)
            else:
                _read_older(data, results)
        except (struct.error, DecodeError, UnicodeDecodeError, ValueError) as error:
            aside = self.path.with_suffix(".bad")
            os.replace(self.path, aside)
            log.error("the worker's report file was damaged (%s); kept %d reports, moved it to "
                      "%s", error, len(results), aside)
        return results

    def add(self, result: AttemptResult) -> None:
        """Keep ``result`` until :meth:`remove` (one appended entry)."""
        self._live[result.ref] = result
        self._append(_REPORT, codec.encode(JobFinished(result)))

    def remove(self, ref: AttemptRef) -> None:
        """Forget the report of ``ref`` (the master has it). Unknown refs are ignored."""
        if self._live.pop(ref, None) is not None:
            self._append(_ACK, _ref_bytes(ref))

    def save(self, results: Iterable[AttemptResult]) -> None:
        """Replace the file with ``results`` (durably: a crash leaves the old or the new one)."""
        self._live = {result.ref: result for result in results}
        self._journal.rewrite(self._content(), len(self._live), durably=True)

    def _append(self, kind: bytes, payload: bytes) -> None:
        self._journal.append(kind + _LENGTH.pack(len(payload)) + payload, len(self._live),
                             self._content)

    def _content(self) -> bytes:
        """The journal of the live reports alone."""
        chunks = [_MAGIC]
        for result in self._live.values():
            payload = codec.encode(JobFinished(result))
            chunks.append(_REPORT + _LENGTH.pack(len(payload)) + payload)
        return b"".join(chunks)


def _ref_bytes(ref: AttemptRef) -> bytes:
    return f"{ref.run_id}\0{ref.job_id}\0{ref.attempt}\0{ref.epoch}".encode()


def _ref_of(payload: bytes) -> AttemptRef:
    run_id, job_id, attempt, epoch = payload.decode().split("\0")
    return AttemptRef(run_id, job_id, int(attempt), int(epoch))


def _entries(data: bytes, offset: int, kinds: bool):
    """(kind, payload) of each entry from ``offset``; DecodeError for a cut-short last one."""
    while offset < len(data):
        kind = _REPORT
        if kinds:
            kind = data[offset:offset + 1]
            offset += 1
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        payload = data[offset:offset + length]
        if len(payload) != length:
            raise DecodeError("the last report is cut short")
        offset += length
        yield kind, payload


def _read_journal(data: bytes, results: dict[AttemptRef, AttemptResult]) -> None:
    for kind, payload in _entries(data, len(_MAGIC), kinds=True):
        if kind == _REPORT:
            result = codec.decode(JobFinished, payload).result
            results[result.ref] = result
        elif kind == _ACK:
            results.pop(_ref_of(payload), None)
        else:
            raise DecodeError(f"unknown entry kind {kind!r}")


def _read_older(data: bytes, results: dict[AttemptRef, AttemptResult]) -> None:
    for _kind, payload in _entries(data, 0, kinds=False):
        result = codec.decode(JobFinished, payload).result
        results[result.ref] = result
