"""Every view of the console in Chromium against a real ``titanctl up`` cluster holding some data
(an agent run of two runs, an uploaded file, a run whose job wrote files, a gate waiting for a
decision): each renders its main heading with no page or console error, and leaves a screenshot
in ``test-artifacts/screenshots/``. Then the Agent runs page live: a new stage appears without a
reload, and the row that holds a run re-fetches itself (alone) when that run changes.
"""

from __future__ import annotations

import re

import pytest

from support.console_data import agent_run, upload, workspace_run
from support.local_cluster import module_cluster
from titan_actors.scheduler.model import JobKind, JobSpec, JobState, RunSpec

pytestmark = pytest.mark.browser

AGENT = "browser-agent"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("console-views"), workers=1, slots=3,
                              web=True)


@pytest.fixture(scope="module")
def data(cluster, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("console-files")
    runs = agent_run(cluster, AGENT, ["plan", "work"])
    upload(cluster, folder / "report <v1>.csv", b"a,b\n1,2\n")
    wrote = workspace_run(cluster, "writes-files", {"out/summary.txt": b"done\n",
                                                    "model/weights.bin": bytes(4096)})
    gated = cluster.client.submit(RunSpec("release", (
        JobSpec("build-it", command=("true",)),
        JobSpec("ship-gate", kind=JobKind.GATE, parents=("build-it",), message="Ship v1?"),
    ))).run_id
    cluster.wait_for(lambda: cluster.client.job(f"{gated}/ship-gate").job.state
                     is JobState.WAITING, what="the gate to wait")
    return {"agent_runs": [r.run_id for r in runs], "workspace_run": wrote, "gated": gated}


def test_every_view_renders_its_heading_without_errors(page, cluster, data, console_errors,
                                                       screenshot):
    base = cluster.web_url.rstrip("/")
    wrote = data["workspace_run"]
    views = [
        ("pipelines", "/", "Pipelines"),
        ("run", f"/runs/{wrote}", "writes-files"),
        ("job", f"/runs/{wrote}/jobs/writes-files-write", "writes-files-write"),
        ("workers", "/workers", "Workers"),
        ("approvals", "/approvals", "Approvals"),
        ("agent-runs", "/agents", "Agent runs"),
        ("agent-run", f"/agents/{AGENT}", f"Agent run {AGENT}"),
        ("files", "/files", "Files"),
        ("run-files", f"/runs/{wrote}/files", "Files of writes-files"),
        ("constructor", "/constructor", "Constructor"),
    ]
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    for label, path, heading in views:
        page.goto(base + path)
        title = page.locator("main h1").first
        title.wait_for(state="visible")
        assert heading in title.inner_text(), (label, title.inner_text())
        screenshot(label)
        assert console_errors == [], (label, console_errors)

    page.goto(base + "/agents")
    assert page.locator(".agent-run .stage").count() == 2
    # a text answer has no <link rel="icon">: the browser asks for /favicon.ico (a 404 here)
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    page.goto(base + "/metrics")
    text = page.locator("body").inner_text()
    assert "titan_master_up 1" in text.splitlines()
    screenshot("metrics")
    assert failed == [] and console_errors == [], (failed, console_errors)


def test_agent_runs_refresh_live_row_by_row(page, cluster, data, console_errors, screenshot):
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "/agents-live/" in r.url else None)
    page.add_init_script("document.addEventListener('htmx:sseOpen', function () {"
                         " window.titanStreamOpen = true; });")
    page.goto(cluster.web_url + "agents")
    row = page.locator(f'article.agent-run:has(a[href="/agents/{AGENT}"])')
    assert row.locator(".stage").count() == 2
    page.wait_for_function("() => window.titanStreamOpen === true")  # no notice is missed

    # a new stage: a run this page has not seen -> the list is fetched again
    review = cluster.client.submit(RunSpec("review", (
        JobSpec("review-gate", kind=JobKind.GATE, message="Good?"),), agent_run_id=AGENT)).run_id
    third = row.locator(".stage").nth(2)
    third.wait_for(state="visible", timeout=10_000)
    assert "review" in third.inner_text() and "st-running" in third.get_attribute("class")
    assert any(url.endswith("/agents-live/list") for url in fetched), fetched
    screenshot("new-stage")

    # that run changes -> only its row is fetched again
    fetched.clear()
    cluster.client.decide_gate(f"{review}/review-gate", True, "fine")
    page.wait_for_function(
        "() => document.querySelector('article.agent-run .stage:nth-child(3)')"
        ".classList.contains('st-completed')", timeout=10_000)
    assert fetched and all(re.search(r"/agents-live/row\?id=browser-agent$", u)
                           for u in fetched), fetched
    screenshot("stage-completed")
    assert console_errors == [], console_errors
