"""The Constructor in Chromium against a real cluster (``titanctl up`` with the console).

One scenario, as a user would: build a 3-job pipeline with the palette (a click and a drag),
the form (ids; a library script, a pasted script, a script uploaded through the form) and
both ways of drawing a dependency (edgehandles with the mouse, the "add a dependency"
select); see a cycle reported before deploy; deploy and land on the run's page; the run
completes. Then the YAML pane, saved to a file, goes through the real ``titanctl submit
--wait``: the same jobs and edges. Loaded back into the canvas, it gives the same graph.
"""

from __future__ import annotations

import re

import pytest

from support.local_cluster import module_cluster
from titan_actors.transfer import upload_bytes
from titan_actors.wire.messages.files import FileArea

pytestmark = pytest.mark.browser

SETTLED = "#constructor[data-sync=done]"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("constructor"), workers=1, slots=2,
                              web=True)


def settle(page) -> None:
    """Wait until the panes and the console's verdict show the latest change."""
    page.wait_for_selector(SETTLED, state="attached", timeout=10_000)


def node_center(page, key: str) -> tuple[float, float]:
    return tuple(page.evaluate("""(key) => {
        const at = titanConstructor.cy.getElementById(key).renderedPosition();
        const box = document.getElementById("c-canvas").getBoundingClientRect();
        return [box.left + at.x, box.top + at.y];
    }""", key))


def drag_edge(page, source: str, target: str) -> None:
    """Draw a dependency with the mouse, in Connect mode (edgehandles)."""
    page.click(".ctor-seg [data-mode=connect]")
    (x1, y1), (x2, y2) = node_center(page, source), node_center(page, target)
    page.mouse.move(x1, y1)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(x1 + (x2 - x1) * step / 8, y1 + (y2 - y1) * step / 8)
    # edgehandles snaps to a target at most 15 times a second: release once it has
    page.wait_for_function("(key) => titanConstructor.cy.getElementById(key).hasClass('eh-target')",
                           arg=target, timeout=5_000)
    page.mouse.up()
    page.click(".ctor-seg [data-mode=move]")


def graph(page) -> dict:
    """The canvas as (ids, kinds, scripts, edges by id)."""
    return page.evaluate("""() => {
        const model = titanConstructor.snapshot();
        const ids = Object.fromEntries(model.nodes.map((n) => [n.key, n.id]));
        return {
            jobs: model.nodes.map((n) => [n.id, n.kind, n.source, n.library]),
            edges: model.edges.map((e) => [ids[e.source], ids[e.target]]),
        };
    }""")


def run_graph(cluster, run_id: str) -> dict:
    detail = cluster.json("status", run_id)
    return {"states": {j["job_id"]: j["state"] for j in detail["jobs"]},
            "edges": sorted((p, j["job_id"]) for j in detail["jobs"] for p in j["parents"])}


def test_build_check_deploy_and_round_trip(page, console_errors, screenshot, cluster,
                                           tmp_path):
    from playwright.sync_api import expect  # here: without playwright the conftest skips

    upload_bytes(cluster.client, b"print('extracted')\n", "extract.py", FileArea.SCRIPTS)
    page.goto(cluster.web_url + "constructor")
    settle(page)
    screenshot("empty")

    page.fill("#c-name", "nightly")
    page.click(".ctor-tile[data-kind=run]")  # a click adds a task and selects it
    page.fill("#f-id", "extract")
    page.select_option("#f-library", "extract.py")

    page.drag_and_drop(".ctor-tile[data-kind=run]", "#c-canvas",
                       target_position={"x": 420, "y": 120})
    page.fill("#f-id", "train")
    page.check("input[name=f-source][value=paste]")
    page.fill("#f-content_name", "train.py")
    page.fill("#f-content", "print('trained')\n")

    page.click(".ctor-tile[data-kind=run]")
    page.fill("#f-id", "report")
    page.set_input_files("#f-upload", files=[{"name": "report.py", "mimeType": "text/plain",
                                              "buffer": b"print('reported')\n"}])
    expect(page.locator("#f-library")).to_have_value("report.py")

    drag_edge(page, "n1", "n2")  # extract -> train, with the mouse
    page.select_option("#f-add-parent", label="train")  # report waits for train: the form
    page.click("#f-add-parent-go")
    settle(page)
    assert page.get_attribute("#constructor", "data-check") == "ok", \
        page.text_content("#c-checks")
    assert graph(page)["edges"] == [["extract", "train"], ["train", "report"]]
    yaml_text = page.text_content("#c-yaml")
    assert "  - id: report\n    script: report.py\n    depends_on: [train]\n" in yaml_text
    assert re.search(r"  - id: train\n    script: train-[0-9a-f]{8}\.py  # pasted", yaml_text)
    assert "Job('report', library='report.py', parents=['train'])," in \
        page.text_content("#c-python")
    built = graph(page)
    page.click("#c-layout")
    screenshot("built")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("[data-copy=c-yaml]")
    expect(page.locator("[data-copy=c-yaml]")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == yaml_text
    page.click("#c-drafts-open")
    page.fill("#c-draft-name", "nightly draft")
    page.click("#c-draft-save")
    expect(page.locator("#c-draft-list")).to_contain_text("nightly draft")
    page.click("#c-drafts button[value=close]")

    # a cycle is reported before deploy, on the canvas and in the checks
    page.select_option("#c-pick", label="extract · Task")
    page.select_option("#f-add-parent", label="report")
    page.click("#f-add-parent-go")
    settle(page)
    assert page.get_attribute("#constructor", "data-check") == "problems"
    assert "Cycle: extract → train → report → extract" in page.text_content("#c-checks")
    assert page.is_disabled("#c-deploy")
    screenshot("cycle")
    page.click("#f-parents button[aria-label='Remove the dependency on report']")
    settle(page)
    assert page.get_attribute("#constructor", "data-check") == "ok"

    page.click("#c-deploy")
    page.wait_for_url(re.compile(r".*/runs/[^/]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    first = run_graph(cluster, cluster.wait_run(run_id)["run"]["run_id"])
    assert first["states"] == {"extract": "completed", "train": "completed",
                               "report": "completed"}
    assert first["edges"] == [("extract", "train"), ("train", "report")]
    assert "trained" in cluster.ctl("logs", f"{run_id}/train").stdout

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml_text)
    submitted = cluster.ctl("submit", str(pipeline), "--wait", "--timeout", "30")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    second_id = re.search(r"run (\S+) accepted", submitted.stdout).group(1)
    assert run_graph(cluster, second_id) == first

    page.goto(cluster.web_url + "constructor")
    settle(page)
    assert graph(page) == built  # the browser kept the canvas
    page.click("#c-load-open")
    page.fill("#c-load-text", yaml_text)
    page.click("#c-load-go")
    page.wait_for_selector("#c-load", state="hidden")
    settle(page)
    loaded = graph(page)
    assert loaded["edges"] == built["edges"]
    assert [job[:2] for job in loaded["jobs"]] == [job[:2] for job in built["jobs"]]
    assert page.text_content("#c-yaml") == yaml_text.replace(
        "  # pasted: deploy uploads it to the library", "")

    page.click("#c-drafts-open")
    page.click("#c-draft-list button[aria-label='Open the draft nightly draft']")
    page.wait_for_selector("#c-drafts", state="hidden")
    settle(page)
    assert graph(page) == built
    assert console_errors == []
