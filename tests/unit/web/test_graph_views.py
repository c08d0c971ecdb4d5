"""The Pipelines view's server side over a fake master: the graph JSON (parents in other runs,
state colour classes), the job panel beside the graph (escaped, its forms coming back to the
run with the job selected, a waiting gate's decision), and Re-run."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from unit.web.conftest import Browser

from support.web_fakes import EVIL, FakeMaster, job
from titan_actors.errors import UnknownRunError
from titan_actors.scheduler.model import JobSpec, JobState, RunSpec
from titan_actors.wire.messages.master import RunAccepted, RunSpecReply
from titan_web.app import ConsoleOptions, create_app

ESCAPED = b"&lt;img src=x onerror=alert(1)&gt;"


class RerunMaster(FakeMaster):
    """FakeMaster with a run ``r1`` whose job ``after`` also waits for ``r0/base``, and
    ``run_spec`` / ``submit`` for Re-run."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs = (*self.jobs, job("after", JobState.PENDING, parents=("a", "r0/base")))

    def run_spec(self, run_ref: str = "latest") -> RunSpecReply:
        self.run(run_ref)  # UnknownRunError for any other run
        self.calls.append(("run_spec", run_ref))
        return RunSpecReply(run_ref, RunSpec("pipe", (JobSpec("a", command=("true",)),)))

    def submit(self, spec: RunSpec, from_run: str = "", from_job: str = "") -> RunAccepted:
        self.calls.append(("submit", spec.name, tuple(j.id for j in spec.jobs)))
        return RunAccepted("r2", spec.name, tuple(j.id for j in spec.jobs), 9)


@pytest.fixture
def console(tmp_path):
    master = RerunMaster()
    options = ConsoleOptions(web_dir=tmp_path, master=("127.0.0.1", 9090),
                             session_secret=b"s" * 32, data_root=tmp_path)
    return Browser(create_app(options, lambda: master)), master


def test_the_graph_json_draws_parents_in_other_runs_and_names_state_colours(console):
    browser, _ = console
    graph = browser.get("/api/runs/r1/graph").get_json()
    assert [n["id"] for n in graph["nodes"]] == ["a", EVIL, "gate", "after"]
    assert graph["external"] == [{"id": "r0/base", "run_id": "r0", "job_id": "base"}]
    assert {"source": "r0/base", "target": "after"} in graph["edges"]
    assert {"source": "a", "target": "after"} in graph["edges"]
    assert graph["nodes"][3]["external_parents"] == ["r0/base"]
    assert graph["state_classes"]["timed_out"] == "st-dead"
    assert graph["state_classes"]["ready"] == "st-ready"
    assert {"restarts", "decided_by", "exit_code", "created_at"} <= set(graph["nodes"][0])


def test_the_run_page_loads_the_graph_script_legend_and_rerun(console):
    browser, _ = console
    page = browser.get("/runs/r1?job=gate").data
    assert b'<script src="/static/js/graph.js" defer></script>' in page
    assert b'<script src="/static/vendor/cytoscape-dagre.js" defer></script>' in page
    assert b'data-selected="gate"' in page and b'data-side-url="/runs/r1/jobs/"' in page
    assert b'class="legend"' in page and b"waiting for approval" in page
    assert b'action="/runs/r1/rerun"' in page
    assert b"<script>" not in page  # nothing inline (CSP)
    assert browser.get("/static/js/graph.js").status_code == 200


def test_the_side_panel_is_escaped_and_its_actions_come_back_to_the_graph(console):
    browser, _ = console
    side = browser.get(f"/runs/r1/jobs/{quote(EVIL, safe='')}/side")
    assert side.status_code == 200 and EVIL.encode() not in side.data and ESCAPED in side.data
    back = f'name="back" value="/runs/r1?job={quote(EVIL, safe="")}"'.encode()
    assert back in side.data and b"Cancel job" in side.data and b"Approve" not in side.data
    gate = browser.get("/runs/r1/jobs/gate/side").data
    assert b'action="/approvals/decide"' in gate and b'value="r1/gate"' in gate
    assert b'name="back" value="/runs/r1?job=gate"' in gate
    assert b"ship " + ESCAPED + b"?" in gate and b"Approve" in gate and b"Reject" in gate


def test_a_decision_from_the_side_panel_comes_back_with_the_gate_selected(console):
    browser, master = console
    answer = browser.post("/approvals/decide", {"gate": "r1/gate", "decision": "approve",
                                                "comment": "fine", "back": "/runs/r1?job=gate"})
    assert answer.status_code == 303 and answer.location == "/runs/r1?job=gate"
    assert master.calls == [("decide", "r1/gate", True, "fine")]


def test_rerun_submits_the_runs_spec_and_goes_to_the_new_run(console):
    browser, master = console
    answer = browser.post("/runs/r1/rerun")
    assert answer.status_code == 303 and answer.location == "/runs/r2"
    assert master.calls == [("run_spec", "r1"), ("submit", "pipe", ("a",))]
    with browser.client.session_transaction() as session:
        assert session["_flashes"] == [("ok", "re-ran r1 as run r2 (1 jobs)")]


def test_rerun_of_an_unknown_run_says_why_and_stays(console):
    browser, master = console

    def unknown(run_ref: str = "latest"):
        raise UnknownRunError(f"no run {run_ref!r}")
    master.run_spec = unknown
    answer = browser.post("/runs/r9/rerun")
    assert answer.status_code == 303 and answer.location == "/runs/r9"
    assert browser.post("/runs/r1/rerun", token=False).status_code == 403  # CSRF
