"""Every test that drives the scheduler through ``sched`` also checks, at its end, that
replaying the records it got back rebuilds exactly the same state."""

from __future__ import annotations

import pytest
from unit.scheduler.helpers import Harness


@pytest.fixture
def sched():
    harness = Harness()
    yield harness
    harness.check_replay()
