"""Regressions of a security read of the console: open redirects, HEAD requests that took a
slot for ever, a merge-key YAML bomb, launching without the right key."""

from __future__ import annotations

import time

import pytest

from titan_actors.errors import PipelineError
from titan_actors.pipeline import parse_pipeline
from titan_web.auth import local_path


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "//evil.example",
                                    "/\\evil", "https://evil.example/", "/x\x7f"])
def test_no_redirect_leaves_the_site(target):
    assert local_path(target) == "/"


def test_a_local_path_is_kept():
    assert local_path("/runs/r1?job=a") == "/runs/r1?job=a"


def test_login_next_with_a_tab_stays_home(make_console):
    browser, _master, _app = make_console()
    answer = browser.get("/login?next=/%09/evil.example")
    assert answer.status_code in (200, 302)
    assert "evil.example" not in answer.headers.get("Location", "")


def test_head_of_a_stream_takes_no_slot(make_console):
    browser, _master, app = make_console()
    hub = app.extensions["titan_console"].hub
    for _ in range(20):
        assert browser.client.head("/events").status_code == 200
        browser.client.head("/files/scripts/greet.py")
    assert hub.subscribers == 0
    slots = app.extensions.get("titan_downloads")
    assert slots is None or slots.counter == 16


def test_a_merge_key_chain_parses_in_linear_time():
    lines = ["x0: &a0 {k: 1}"]
    for i in range(1, 40):  # 2**40 expansions without memoisation
        lines.append(f"x{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}]}}")
    text = "\n".join(lines) + "\nname: t\njobs: [{id: a, command: [true], <<: *a39}]\n"
    started = time.monotonic()
    with pytest.raises(PipelineError):  # k is not a job key (and x0.. are not pipeline keys)
        parse_pipeline(text, "bomb.yaml")
    assert time.monotonic() - started < 5


def test_deep_nesting_is_a_clear_error():
    with pytest.raises(PipelineError, match="nests too deeply"):
        parse_pipeline("jobs: " + "[" * 50_000, "deep.yaml")


def test_a_console_that_cannot_launch_refuses_a_hand_made_post(make_console):
    browser, _master, app = make_console()
    options = app.extensions["titan_console"].options
    object.__setattr__(options, "can_launch", False)
    answer = browser.post("/workers/launch", {"name": "w9", "tags": "", "slots": "1"})
    assert answer.status_code == 303
    assert not list((options.web_dir).glob("**/w9*"))
