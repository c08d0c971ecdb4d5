"""A worker's unacknowledged reports, kept on disk so that a worker killed after a job ended,
but before the master recorded it, still reports it when it comes back (instead of the job
running again after its lease)."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from ..errors import DecodeError
from ..wire import codec
from ..wire.messages.worker import AttemptRef, AttemptResult, JobFinished

log = logging.getLogger("titan.worker")

_LENGTH = struct.Struct("!I")


class ReportBook:
    """The file ``<worker dir>/reports.bin``: length-prefixed JobFinished payloads, rewritten
    whole (temp file, fsync, rename) whenever the set of unacknowledged reports changes."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "reports.bin"

    def load(self) -> dict[AttemptRef, AttemptResult]:
        """The reports a previous life left; a damaged file is set aside (and said so)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        results: dict[AttemptRef, AttemptResult] = {}
        offset = 0
        try:
            while offset < len(data):
                (length,) = _LENGTH.unpack_from(data, offset)
                offset += _LENGTH.size
                payload = data[offset:offset + length]
                if len(payload) != length:
                    raise DecodeError("the last report is cut short")
                offset += length
                result = codec.decode(JobFinished, payload).result
                results[result.ref] = result
        except (struct.error, DecodeError) as error:
            aside = self.path.with_suffix(".bad")
            os.replace(self.path, aside)
            log.error("the worker's report file was damaged (%s); kept %d reports, moved it to "
                      "%s", error, len(results), aside)
        return results

    def save(self, results: Iterable[AttemptResult]) -> None:
        """Replace the file with ``results`` (durably: a crash leaves the old or the new one)."""
        chunks = []
        for result in results:
            payload = codec.encode(JobFinished(result))
            chunks.append(_LENGTH.pack(len(payload)) + payload)
        temp = self.path.with_suffix(".tmp")
        with open(temp, "wb") as out:
            out.write(b"".join(chunks))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)
