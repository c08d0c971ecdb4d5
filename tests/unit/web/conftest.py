"""A console app over a fake master (``support.web_fakes.FakeMaster``), and a browser-like
client that sends the session's CSRF token and this origin with its POSTs."""

from __future__ import annotations

import pytest

from support.web_fakes import FakeMaster
from titan_web.app import ConsoleOptions, create_app

ORIGIN = "http://localhost"


class Browser:
    """A Flask test client that behaves like the console's pages: POSTs carry the CSRF token
    of the session and an Origin header."""

    def __init__(self, app) -> None:
        self.app = app
        self.client = app.test_client()

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def token(self) -> str:
        with self.client.session_transaction() as session:
            if "csrf" not in session:
                session["csrf"] = "test-token"
            return session["csrf"]

    def post(self, path: str, data: dict | None = None, *, origin: str | None = ORIGIN,
             token: bool = True, **kwargs):
        data = dict(data or {})
        if token:
            data["csrf_token"] = self.token()
        headers = kwargs.pop("headers", {})
        if origin is not None:
            headers["Origin"] = origin
        return self.client.post(path, data=data, headers=headers, **kwargs)


@pytest.fixture
def make_console(tmp_path):
    """``make_console(auth=False, admin=None)`` -> (Browser, FakeMaster, app)."""
    def make(auth: bool = False, admin: bytes | None = None):
        master = FakeMaster()
        options = ConsoleOptions(web_dir=tmp_path, master=("127.0.0.1", 9090),
                                 auth_required=auth, session_secret=b"s" * 32,
                                 admin_secret=admin, data_root=tmp_path)
        app = create_app(options, lambda: master)
        return Browser(app), master, app
    return make
