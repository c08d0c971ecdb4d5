"""The web console as users run it with a cluster key: ``titanctl web --key-file`` over a real
``titanctl master --key-file``, reached over HTTP.

* Every page needs a sign-in (the password set with ``titanctl passwd``).
* Every state-changing route (each POST rule of the app, enumerated from its URL map, and any
  other method on any path) is refused without the session's CSRF token, from another Origin,
  or with no Origin or Referer at all, and when not signed in; nothing it would change did
  (the gate still waits, no run was added, no worker launched, no draft or script saved).
* User text is escaped: a run named ``<script>alert(1)</script>``, a gate asking
  ``<img src=x onerror=alert(1)>``, a job id that tries to break out of an attribute.

(Already covered: in process, tests/unit/web/test_auth.py (sign-in, rate limit, CSRF and Origin
on a gate decision, Host names, headers, redirects) and tests/e2e/test_web.py (a ``<script>``
job id and log escaped, CSRF on a gate decision over HTTP, without a key). MCP cannot decide a
gate unless TITAN_MCP_ALLOW_GATE_DECISIONS=1, by tool or by Titan's store key:
tests/e2e/test_mcp.py::test_gate_decisions_and_deploy_script and
tests/e2e/test_mcp.py::test_store_round_trip_and_gate_keys.)
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from support.processes import TITANCTL, wait_for_file
from support.secure_master import KeyedMaster, wait_for
from titan_actors import transfer
from titan_actors.scheduler.model import JobKind, JobSpec, JobState, RunSpec
from titan_actors.wire.messages.files import FileArea
from titan_actors.wire.roles import Role
from titan_web.app import ConsoleOptions, create_app

RUN_NAME = "<script>alert(1)</script>"
GATE_ID = 'x"onmouseover="alert(1)'
QUESTION = "<img src=x onerror=alert(1)>"
PASSWORD = "correct horse battery"


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer to look at, not to follow


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    master = KeyedMaster(root).start()
    try:
        with master.client(Role.CLIENT, "legit") as client:
            run_id = client.submit(RunSpec(RUN_NAME, (JobSpec(
                GATE_ID, kind=JobKind.GATE, message=QUESTION, max_wait_seconds=600),))).run_id
            wait_for(client, lambda: client.job(f"{run_id}/{GATE_ID}").job.state
                     is JobState.WAITING)
        made = subprocess.run([TITANCTL, "passwd", "--stdin", "--data-dir", str(master.data)],
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        ready = root / "web.ready"
        web = master.spawn(["web", "--key-file", str(master.cluster_key), "--data-dir",
                            str(master.data), "--master", master.address, "--web-port", "0",
                            "--ready-file", str(ready)], "web.log")
        url = json.loads(wait_for_file(ready, web))["url"].rstrip("/")
        yield master, url, run_id
    finally:
        master.stop()


def _browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _Stay())


def _send(opener, url: str, data: dict | None = None, *, method: str = "GET",
          headers: dict | None = None) -> tuple[int, dict, bytes]:
    body = urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _signed_in(url: str) -> tuple[urllib.request.OpenerDirector, str]:
    """A browser signed in with the password, and its session's CSRF token."""
    browser = _browser()
    page = _send(browser, url + "/login")[2].decode()
    token = _token(page)
    status, headers, _ = _send(browser, url + "/login", {"password": PASSWORD,
                                                        "csrf_token": token, "next": "/"},
                               method="POST", headers={"Origin": url})
    assert status == 302 and headers["Location"] == "/", status
    home = _send(browser, url + "/")[2].decode()
    return browser, _token(home)


def _token(page: str) -> str:
    return re.search(r'name="csrf(?:-token" content|_token" value)="([^"]+)"', page).group(1)


def _post_routes(run_id: str) -> list[str]:
    """Every POST route of the console's app, with real values in its variables."""
    app = create_app(ConsoleOptions(web_dir=Path("/nonexistent"), master=("127.0.0.1", 1)),
                     lambda: None)
    values = {"run_id": run_id, "job_id": GATE_ID, "name": "draft"}
    routes = []
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods:
            path = rule.rule
            for name in rule.arguments:
                path = re.sub(rf"<(?:\w+:)?{name}>", quote(values[name], safe=""), path)
            routes.append(path)
    assert len(routes) >= 15, routes  # the app's POST routes were found
    return sorted(routes)


def test_every_page_needs_a_sign_in(console):
    master, url, run_id = console
    stranger = _browser()
    page = _send(stranger, url + f"/runs/{run_id}")
    assert page[0] == 302 and page[1]["Location"].startswith("/login")
    for path in (f"/api/runs/{run_id}/graph", "/events", "/metrics",
                 f"/runs/{run_id}/jobs/{quote(GATE_ID, safe='')}/log.txt"):
        assert _send(stranger, url + path)[0] == 401, path
    browser, _ = _signed_in(url)
    assert _send(browser, url + f"/runs/{run_id}")[0] == 200


def test_every_state_change_needs_the_token_and_this_origin(console):
    master, url, run_id = console
    browser, token = _signed_in(url)
    stranger = _browser()
    own = {"Origin": url}
    refused = 0
    for path in _post_routes(run_id):
        form = {"gate": f"{run_id}/{GATE_ID}", "decision": "approve", "name": "w9",
                "slots": "1", "tags": "GENERAL", "lifetime": "permanent", "yaml": "x: 1"}
        tries = [
            (browser, form, own),                                         # no token
            (browser, {**form, "csrf_token": "forged"}, own),             # a wrong token
            (browser, {**form, "csrf_token": token}, {"Origin": "http://evil.example"}),
            (browser, {**form, "csrf_token": token}, {"Origin": "null"}),
            (browser, {**form, "csrf_token": token},
             {"Referer": "http://evil.example/" + url}),                  # another page
            (browser, {**form, "csrf_token": token}, {}),                 # no Origin, no Referer
            (stranger, {**form, "csrf_token": token}, own),               # not signed in
        ]
        for who, data, headers in tries:
            status = _send(who, url + path, data, method="POST", headers=headers)[0]
            assert status in (401, 403), (path, headers, status)
            refused += 1
    for method in ("PUT", "DELETE", "PATCH"):
        assert _send(browser, url + "/approvals/decide", {}, method=method,
                     headers=own)[0] in (403, 405)
    # the same browser, token and origin are otherwise right: a harmless POST goes through
    checked = _send(browser, url + "/constructor/validate", {"csrf_token": token,
                                                             "yaml": "name: x\njobs: []\n"},
                    method="POST", headers=own)
    assert checked[0] not in (401, 403), checked

    with master.client(Role.ADMIN, "auditor") as admin:
        assert [r.run_id for r in admin.runs(100)] == [run_id]
        gate = admin.job(f"{run_id}/{GATE_ID}").job
        assert (gate.state, gate.decided_by) == (JobState.WAITING, "")
        assert admin.workers() == ()
        assert transfer.list_files(admin, FileArea.SCRIPTS) == ()
    web = master.data / "web"
    assert not (web / "launched.json").exists() and not list(web.glob("drafts/*"))
    print(f"\n{refused} forged or unsigned state changes refused, 0 done")


def test_user_text_is_escaped_on_every_page(console):
    master, url, run_id = console
    browser, _ = _signed_in(url)
    job = quote(GATE_ID, safe="")
    pages = {path: _send(browser, url + path) for path in (
        "/", "/runs", "/runs/table", f"/runs/{run_id}", f"/runs/{run_id}/jobs",
        f"/runs/{run_id}/summary", f"/runs/{run_id}/jobs/{job}",
        f"/runs/{run_id}/jobs/{job}/panel", f"/runs/{run_id}/jobs/{job}/side", "/approvals",
        "/approvals/table", "/agents")}
    for path, (status, _, body) in pages.items():
        assert status == 200, (path, body[:300])
        assert b"<script>alert(1)" not in body and b"<img src=x" not in body, path
        assert b'"onmouseover="' not in body, path
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in pages[f"/runs/{run_id}"][2]
    assert b"&lt;img src=x onerror=alert(1)&gt;" in pages["/approvals"][2]
    graph = json.loads(_send(browser, url + f"/api/runs/{run_id}/graph")[2])
    assert [n["id"] for n in graph["nodes"]] == [GATE_ID]  # JSON carries it as data
