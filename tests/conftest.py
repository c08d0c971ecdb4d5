"""Suite-wide rules: any greenlet error fails the test (unless the test expects some); jobs
run as the user running the tests."""

from __future__ import annotations

import os
import pwd

import gevent
import pytest

# A worker started as root runs its jobs as nobody, who may not reach this Python (it lives under
# /root here): every worker the suite starts runs them as the user running it, unless a test
# (tests/security) removes this from the environment it gives a worker.
os.environ.setdefault("TITAN_JOB_USER", pwd.getpwuid(os.geteuid()).pw_name)


class GreenletErrors:
    """Errors that reached gevent's hub during a test."""

    def __init__(self) -> None:
        self.errors: list[tuple[object, BaseException]] = []
        self.expected = False

    def expect(self) -> None:
        """Allow greenlet errors in this test (it asserts on them itself)."""
        self.expected = True


@pytest.fixture(autouse=True)
def greenlet_errors():
    hub = gevent.get_hub()
    record = GreenletErrors()
    original = hub.handle_error

    def handle_error(context, type_, value, tb):
        if type_ is not None and not issubclass(type_, hub.NOT_ERROR):
            record.errors.append((context, value))
        return original(context, type_, value, tb)

    hub.handle_error = handle_error
    try:
        yield record
    finally:
        del hub.handle_error
    if record.errors and not record.expected:
        pytest.fail(f"greenlet errors during the test: {record.errors!r}")


@pytest.fixture(autouse=True, scope="session")
def never_monkey_patched():
    """The test process stays unpatched: the SDK, MCP and browser tests need real blocking I/O."""
    from gevent import monkey
    yield
    patched = [name for name in ("socket", "ssl", "os", "time", "select", "thread")
               if monkey.is_module_patched(name)]
    assert not patched, f"something monkey-patched the test process: {patched}"
