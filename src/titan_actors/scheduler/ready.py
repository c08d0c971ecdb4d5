"""The ready queue: QUEUED jobs in dispatch order, one heap per lane.

Order: higher priority first; within a priority, the earlier time it became queued, then the
earlier submission. A lane groups the jobs that the same workers can take (one per requirement
tag, one per pinned worker), so a job that no live worker can take waits in its own lane and
never blocks the jobs behind it: the dispatcher only looks at the heads of lanes that have a
free capable worker.

Removal is lazy: a discarded or re-queued job leaves a stale entry that is dropped when it
reaches the head of its heap.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Hashable, Iterator

__all__ = ["Entry", "ReadyQueue"]

JobKey = tuple[str, str]
# (-priority, queued_at, seq, key): a tuple compares in dispatch order; seq is unique
Entry = tuple[int, float, int, JobKey]


class ReadyQueue:
    """QUEUED jobs by lane, each lane in dispatch order."""

    __slots__ = ("_heaps", "_live")

    def __init__(self) -> None:
        self._heaps: dict[Hashable, list[Entry]] = {}
        self._live: dict[JobKey, tuple[Hashable, Entry]] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def push(self, key: JobKey, lane: Hashable, priority: int, queued_at: float,
             seq: int) -> None:
        """Queue ``key`` in ``lane`` (replacing any earlier entry of it)."""
        entry = (-priority, queued_at, seq, key)
        self._live[key] = (lane, entry)
        heapq.heappush(self._heaps.setdefault(lane, []), entry)

    def discard(self, key: JobKey) -> None:
        """Take ``key`` out of the queue (nothing happens when it is not queued)."""
        self._live.pop(key, None)

    def lanes(self) -> list[Hashable]:
        """The lanes that hold at least one queued job."""
        return [lane for lane in list(self._heaps) if self.head(lane) is not None]

    def head(self, lane: Hashable) -> Entry | None:
        """The first entry of ``lane`` in dispatch order, or None when the lane is empty."""
        heap = self._heaps.get(lane)
        while heap:
            entry = heap[0]
            live = self._live.get(entry[3])
            if live is not None and live[1] is entry:
                return entry
            heapq.heappop(heap)
        self._heaps.pop(lane, None)
        return None

    def pop(self, lane: Hashable) -> JobKey:
        """Remove and return the first job of ``lane``; raises KeyError when it is empty."""
        entry = self.head(lane)
        if entry is None:
            raise KeyError(f"lane {lane!r} is empty")
        heapq.heappop(self._heaps[lane])
        del self._live[entry[3]]
        return entry[3]

    def keys(self) -> Iterator[JobKey]:
        """Every queued job, in no particular order."""
        return iter(list(self._live))

    def counts(self) -> Counter[Hashable]:
        """How many jobs wait in each lane (lanes without one are absent)."""
        return Counter(lane for lane, _entry in self._live.values())
