"""The console's pages over a fake master: what each shows, that user text (job ids, messages,
logs) is escaped everywhere, the graph's JSON, the actions, /metrics and /readyz."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from support.web_fakes import EVIL, EVIL_LOG
from titan_web.app import console_of
from titan_web.metrics import CONTENT_TYPE

ESCAPED = b"&lt;img src=x onerror=alert(1)&gt;"
RAW = EVIL.encode()
EVIL_URL = f"/runs/r1/jobs/{quote(EVIL, safe='')}"


@pytest.mark.parametrize("path", ["/", "/runs/table", "/runs/r1", "/runs/r1/jobs",
                                  "/runs/r1/summary", EVIL_URL, EVIL_URL + "/panel",
                                  "/approvals", "/approvals/table", "/workers"])
def test_user_text_is_escaped_on_every_page(make_console, path):
    browser, _, _ = make_console()
    page = browser.get(path)
    assert page.status_code == 200, page.data[:500]
    assert RAW not in page.data and b"<script>alert" not in page.data
    if path not in ("/workers",):
        assert ESCAPED in page.data, path


def test_a_log_with_markup_is_shown_as_text(make_console):
    browser, _, _ = make_console()
    page = browser.get(EVIL_URL)
    assert b"&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in page.data
    assert b"<script>alert('log')" not in page.data
    raw = browser.get(EVIL_URL + "/log.txt")
    assert raw.data == EVIL_LOG and raw.headers["Content-Type"].startswith("text/plain")
    assert raw.headers["X-Content-Type-Options"] == "nosniff"


def test_the_run_page_leaves_a_graph_container_and_its_json(make_console):
    browser, _, _ = make_console()
    page = browser.get("/runs/r1")
    assert b'<div id="graph" data-run="r1"' in page.data
    assert b'data-graph-url="/api/runs/r1/graph"' in page.data
    assert b'sse-connect="/events?run=r1"' in page.data
    graph = browser.get("/api/runs/r1/graph").get_json()
    assert [n["id"] for n in graph["nodes"]] == ["a", EVIL, "gate"]
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {("a", EVIL), (EVIL, "gate")}
    gate = graph["nodes"][2]
    assert (gate["kind"], gate["state"], gate["waiting"]) == ("gate", "waiting",
                                                              "waiting for a decision")
    assert graph["nodes"][1]["worker"] == "w1" and graph["last_seq"] == 7
    assert browser.get("/api/runs/nope/graph").status_code == 404


def test_the_job_page_shows_attempts_and_its_actions(make_console):
    browser, _, _ = make_console()
    page = browser.get(EVIL_URL).data
    assert b"Attempts" in page and b"Cancel job" in page and b"Retry job" not in page
    assert b'data-stream="/runs/r1/jobs/%3Cimg' in page


def test_actions_call_the_master_and_come_back_with_its_sentence(make_console):
    browser, master, _ = make_console()
    answer = browser.post(EVIL_URL + "/cancel")
    assert answer.status_code == 303 and "/runs/r1/jobs/%3Cimg" in answer.location
    assert browser.post("/runs/r1/cancel").status_code == 303
    assert browser.post("/runs/r1/jobs/svc/stop").status_code == 303
    decided = browser.post("/approvals/decide", {"gate": "r1/gate", "decision": "reject",
                                                 "comment": "not now"})
    assert decided.location == "/approvals"
    assert master.calls == [("cancel", f"r1/{EVIL}"), ("cancel", "r1"), ("stop", "r1/svc"),
                            ("decide", "r1/gate", False, "not now")]
    shown = browser.get("/approvals").data
    assert b"rejected r1/gate" in shown  # the master's sentence, once


def test_the_status_line_and_banner_render_from_the_hubs_status(make_console):
    browser, _, app = make_console()
    from titan_web.app import render_status
    from titan_web.status import read_status

    status = read_status(console_of(app).connect())
    fragments = dict(render_status(app, status))
    assert b"Gates waiting" not in browser.get("/").data  # no status yet: "Connecting"
    assert "Workers <b>1</b>" in fragments["status"] and "127.0.0.1:9090" in fragments["status"]
    assert "1 gate waits for approval" in fragments["banner"]
    assert EVIL not in fragments["banner"] and EVIL not in fragments["status"]
    console_of(app).hub.status = status
    assert b"1 gate waits for approval" in browser.get("/workers").data


def test_metrics_are_prometheus_text(make_console):
    browser, _, _ = make_console()
    answer = browser.get("/metrics")
    assert answer.headers["Content-Type"] == CONTENT_TYPE
    text = answer.data.decode()
    for line in ('titan_jobs{state="running"} 1', "titan_jobs_queued 0",
                 "titan_gates_waiting 1", 'titan_workers{connected="true"} 1',
                 'titan_worker_slots{worker="w1"} 2', "titan_web_event_stream_up 0"):
        assert line in text.splitlines(), line
    assert "# TYPE titan_jobs gauge" in text


def test_readyz_needs_the_event_subscription(make_console):
    browser, _, app = make_console()
    answer = browser.get("/readyz")
    assert answer.status_code == 503 and b"event stream" in answer.data
    console_of(app).hub.live = True
    assert browser.get("/readyz").data == b"ready\n"


def test_an_unknown_run_is_a_404_page(make_console):
    page = make_console()[0].get("/runs/nope")
    assert page.status_code == 404 and b"no run nope" in page.data


def test_a_launch_with_a_bad_name_is_refused_before_anything_starts(make_console, tmp_path):
    browser, _, _ = make_console()
    answer = browser.post("/workers/launch", {"name": "../x", "tags": "GPU"})
    assert answer.status_code == 303
    assert b"not valid" in browser.get("/workers").data
    assert not (tmp_path / "launched.json").exists()


def test_the_workers_page_shows_each_workers_recent_jobs(make_console):
    browser, _master, _app = make_console()
    page = browser.get("/workers").data.decode()
    recent = page.split("Recent jobs</th>")[1]
    assert 'href="/runs/r1/jobs/a"' in recent and "completed" in recent
