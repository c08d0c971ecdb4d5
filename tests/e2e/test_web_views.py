"""Layer 4: the console's Agent runs and Files views against a real ``titanctl up`` cluster
(master, one worker, the console process on a free port), over HTTP as a browser reads them.

* An agent run of three runs (each later one submitted through the SDK by the job of the one
  before, so it inherits the agent run id) is one timeline row with its three stages in order,
  each linking to its run; its page lists them with the job that submitted each.
* A file uploaded with ``titanctl upload`` is listed and downloads byte-identical (more than one
  chunk) as an attachment.
* A file a job wrote in its run's workspace is listed with its worker and downloads
  byte-identical.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from support.console_data import agent_run, upload, workspace_run
from support.local_cluster import module_cluster
from titan_actors.wire.messages.files import CHUNK

AGENT = "web-views-agent"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("web-views"), workers=1, slots=3, web=True)


def get(cluster, path: str) -> tuple[int, dict, bytes]:
    with urllib.request.urlopen(cluster.web_url + path.lstrip("/"), timeout=15) as answer:
        return answer.status, dict(answer.headers), answer.read()


def test_an_agent_run_is_one_timeline_row_with_its_stages_in_order(cluster):
    runs = agent_run(cluster, AGENT, ["plan", "iterate", "synthesize"])
    ids = [r.run_id for r in runs]
    assert [r.name for r in runs] == ["plan", "iterate", "synthesize"]
    assert [r.from_job for r in runs] == ["", f"{AGENT}-plan", f"{AGENT}-iterate"]

    status, _, body = get(cluster, "/agents")
    page = body.decode()
    assert status == 200 and page.count('class="agent-run panel"') == 1
    assert f'data-agent-runs="{" ".join(ids)}"' in page
    assert re.findall(r'<li class="stage[^>]*>\s*<a href="/runs/([^"]+)"', page) == ids
    assert page.count('<li class="stage st-completed"') == 3
    assert f"from {AGENT}-plan" in page and f"from {AGENT}-iterate" in page

    status, _, body = get(cluster, f"/agents/{AGENT}")
    detail = body.decode()
    assert status == 200 and f"Agent run <span class=\"mono\">{AGENT}</span>" in detail
    assert f'href="/runs/{ids[0]}/jobs/{AGENT}-plan"' in detail
    positions = [detail.index(f'<a href="/runs/{run_id}">') for run_id in ids]
    assert positions == sorted(positions)


def test_an_uploaded_file_is_listed_and_downloads_byte_identical(cluster, tmp_path):
    content = bytes(range(256)) * (CHUNK // 256 + 1000)   # two chunks
    upload(cluster, tmp_path / "web data #1.bin", content)

    status, _, body = get(cluster, "/files")
    assert status == 200
    assert b'href="/files/uploads/web%20data%20%231.bin"' in body and b"web data #1.bin" in body

    status, headers, data = get(cluster, "/files/uploads/web%20data%20%231.bin")
    assert status == 200 and data == content
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"web_data__1.bin\"; filename*=UTF-8''web%20data%20%231.bin")


def test_a_file_a_job_wrote_is_listed_and_downloads_from_its_worker(cluster):
    content = b"<h1>not rendered</h1>\n" + bytes(range(256))
    run_id = workspace_run(cluster, "writes-files", {"out/report <1>.html": content})

    status, _, body = get(cluster, f"/runs/{run_id}/files")
    page = body.decode()
    link = f"/runs/{run_id}/files/worker-1/out/report%20%3C1%3E.html"
    assert status == 200 and f'href="{link}"' in page
    assert "out/report &lt;1&gt;.html" in page and "<td>worker-1</td>" in page

    status, headers, data = get(cluster, link)
    assert status == 200 and data == content
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment; ")
    _, _, run_page = get(cluster, f"/runs/{run_id}")
    assert f'href="/runs/{run_id}/files"'.encode() in run_page
