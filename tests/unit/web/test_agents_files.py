"""Agent runs and Files over a fake master: the timeline rows (stages in submission order, their
state, duration and submitting job, links to each run), an agent run's page, the live fragments,
the file tables, downloads streamed as attachments (never rendered), a run's workspace from every
worker with unreachable and truncated workers noted, and user text escaped and quoted
everywhere."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from urllib.parse import quote

import pytest

from support.web_fakes import EVIL, FakeMaster, job
from titan_actors.errors import UsageError
from titan_actors.scheduler.model import JobKind, JobState, RunState
from titan_actors.wire.messages.files import (
    CHUNK,
    FileArea,
    FileData,
    FileInfo,
    FileList,
    GetFile,
    GetWorkspaceFile,
    ListFiles,
    ListWorkspace,
    WorkspaceEntry,
    WorkspaceFileData,
    WorkspaceListing,
)
from titan_actors.wire.messages.master import AgentRunSummary, RunDetail, RunSummary
from titan_web.app import ConsoleOptions, create_app
from titan_web.views_agents import STAGES_SHOWN, stages
from titan_web.views_files import MAX_DOWNLOADS, attachment

RAW = EVIL.encode()
ESCAPED = b"&lt;img src=x onerror=alert(1)&gt;"
AGENT = f"team/{EVIL}"                       # an agent run id is any text, '/' included
BIG = bytes(range(256)) * (CHUNK // 256 * 2 + 100)   # three chunks
PAGE = "reports/page #1?.html"               # a path that needs quoting
PAGE_BODY = b"<script>alert('workspace')</script>"


def summary(run_id: str, name: str, state: RunState, created: float, finished: float,
            agent: str = AGENT, from_run: str = "", from_job: str = "") -> RunSummary:
    return RunSummary(run_id, name, state, agent, created, finished, {"completed": 1},
                      from_run, from_job)


class FilesMaster(FakeMaster):
    """FakeMaster plus an agent run of three runs (r1 from outside, r2 from r1/plan, r3 from
    r2/EVIL, still active), a run outside any agent run, stored files and a workspace on two
    workers (a third unreachable, the second's listing cut)."""

    def __init__(self) -> None:
        super().__init__()
        self.summary = summary("r1", f"plan {EVIL}", RunState.COMPLETED, 1000.0, 1010.0)
        self.all_runs = (  # newest first, as the master answers
            summary("r9", "alone", RunState.COMPLETED, 1100.0, 1101.0, agent=""),
            summary("r3", "synth", RunState.ACTIVE, 1040.0, 0.0, from_run="r2", from_job=EVIL),
            summary("r2", "iter", RunState.FAILED, 1008.0, 1038.0, from_run="r1",
                    from_job="plan"),
            self.summary)
        self.uploads = {f"{EVIL}.html": b"<html>" + RAW + b"</html>", "big.bin": BIG}
        self.scripts = {"greet.py": b"print('hello')\n"}
        self.workspace = {("w1", "out.txt"): b"one\n", ("w2", PAGE): PAGE_BODY}
        self.asked: list[object] = []

    def run(self, run_ref: str = "latest", jobs: bool = True) -> RunDetail:
        if run_ref == "r3":  # the active run: a ready service on w1
            return RunDetail(self.all_runs[1], (job("svc", JobState.READY, run_id="r3",
                                                    kind=JobKind.SERVICE),), 7)
        return super().run(run_ref)

    def runs(self, limit: int = 50, agent_run_id: str = ""):
        found = [r for r in self.all_runs if not agent_run_id or r.agent_run_id == agent_run_id]
        return tuple(found[:limit])

    def agent_runs(self, limit: int = 50):
        mine = ("r1", "r2", "r3")
        return (AgentRunSummary(AGENT, mine, ("plan", "iter", "synth"), RunState.ACTIVE, 1000.0,
                                0.0, {"completed": 3}),)[:limit]

    def ask(self, message):
        self.asked.append(message)
        if isinstance(message, ListFiles):
            stored = self.uploads if message.area is FileArea.UPLOADS else self.scripts
            return FileList(tuple(self._info(message.area, n, d) for n, d in stored.items()))
        if isinstance(message, GetFile):
            stored = self.uploads if message.area is FileArea.UPLOADS else self.scripts
            if message.name not in stored:
                raise UsageError(f"{message.name!r} is not in the uploaded files")
            data = stored[message.name]
            piece = data[message.offset:message.offset + message.limit]
            return FileData(self._info(message.area, message.name, data), message.offset, piece,
                            message.offset + len(piece) >= len(data))
        if isinstance(message, ListWorkspace):
            entries = tuple(WorkspaceEntry(w, p, len(d), 1005.0)
                            for (w, p), d in self.workspace.items())
            return WorkspaceListing(message.run_id, entries, ("w3",), ("w2",))
        if isinstance(message, GetWorkspaceFile):
            data = self.workspace.get((message.worker, message.path))
            if data is None:
                raise UsageError(f"no connected worker has {message.path!r}")
            piece = data[message.offset:message.offset + message.limit]
            return WorkspaceFileData(message.worker, message.path, len(data), message.offset,
                                     piece, message.offset + len(piece) >= len(data))
        raise AssertionError(f"unexpected {message!r}")

    @staticmethod
    def _info(area: FileArea, name: str, data: bytes) -> FileInfo:
        return FileInfo(area, name, len(data), hashlib.sha256(data).hexdigest(), 1002.0,
                        "r2" if name.startswith("<") else "")


@pytest.fixture
def console(tmp_path):
    master = FilesMaster()
    options = ConsoleOptions(web_dir=tmp_path, master=("127.0.0.1", 9090),
                             session_secret=b"s" * 32, data_root=tmp_path)
    app = create_app(options, lambda: master)
    return app.test_client(), master, app


def clean(page) -> bytes:
    assert page.status_code == 200, page.data[:500]
    assert RAW not in page.data and b"<script>alert" not in page.data
    return page.data


# -- agent runs ---------------------------------------------------------------------------------

def test_stages_are_in_submission_order_and_sized_by_duration():
    agent = FilesMaster().agent_runs()[0]
    runs = [r for r in FilesMaster().all_runs if r.agent_run_id]
    placed = stages(agent, runs, now=1050.0)
    assert [s.run.run_id for s in placed] == ["r1", "r2", "r3"]
    assert [s.number for s in placed] == [1, 2, 3]
    assert [s.took for s in placed] == [10.0, 30.0, 10.0]   # r3 runs: until now
    assert [s.offset for s in placed] == [0.0, 8.0, 40.0]
    assert [s.grow for s in placed] == [2.24, 5.0, 2.24]
    quick = stages(agent, [replace(r, finished_at=r.created_at + 0.5) for r in runs], now=1050.0)
    assert [s.grow for s in quick] == [1.0, 1.0, 1.0]   # all "<1s": one size


def test_the_agent_runs_page_draws_one_timeline_row_per_agent_run(console):
    client, _, _ = console
    page = clean(client.get("/agents")).decode()
    assert page.count('class="agent-run panel"') == 1
    assert 'data-agent-runs="r1 r2 r3"' in page
    assert re.findall(r'<li class="stage (st-[a-z]+)"', page) == \
        ["st-completed", "st-failed", "st-running"]   # the runs list's colours
    links = re.findall(r'<li class="stage[^>]*>\s*<a href="([^"]+)"', page)
    assert links == ["/runs/r1", "/runs/r2", "/runs/r3"]
    assert "from outside" in page and "from plan" in page
    assert "from &lt;img src=x onerror=alert(1)&gt;" in page
    assert f'href="/agents/{quote(AGENT, safe="")}"' in page
    assert f'hx-get="/agents-live/row?id={quote(AGENT)}"' in page
    assert 'data-plain-runs="r9"' in page            # the run outside: the script ignores it
    assert 'src="/static/js/agents.js"' in page
    assert 'aria-current="page"' in page and 'href="/agents" aria-current' in page
    fragment = clean(client.get("/agents-live/list")).decode()
    assert "<html" not in fragment and 'data-agent-runs="r1 r2 r3"' in fragment


def test_an_agent_runs_page_lists_its_stages_and_its_fragments_refresh(console):
    client, _, _ = console
    page = clean(client.get(f"/agents/{quote(AGENT, safe='')}")).decode()
    assert "<h1>Agent run" in page and "3 runs" in page
    assert page.index('href="/runs/r1"') < page.index('href="/runs/r2"') < \
        page.index('href="/runs/r3"')
    assert f'href="/runs/r2/jobs/{quote(EVIL, safe="")}"' in page   # r3's submitting job
    assert 'href="/runs/r1/jobs/plan"' in page and "+40s" in page
    assert 'data-agent-runs="r1 r2 r3"' in page and 'data-plain-runs="r9"' in page
    detail = clean(client.get(f"/agents-live/detail?id={quote(AGENT)}")).decode()
    assert "<html" not in detail and "Stages" in detail
    row = clean(client.get(f"/agents-live/row?id={quote(AGENT)}")).decode()
    assert row.lstrip().startswith("<article") and 'hx-swap="outerHTML"' in row
    assert client.get("/agents/nope").status_code == 404
    assert client.get("/agents-live/row?id=nope").status_code == 404
    assert client.get("/agents-live/row").status_code == 404


def test_a_long_agent_run_shows_its_latest_stages_in_its_row(console):
    client, master, _ = console
    loop = [summary(f"x{n:02d}", f"round {n}", RunState.COMPLETED, 2000.0 + n, 2000.5 + n,
                    agent="loop") for n in range(STAGES_SHOWN + 6)]
    master.all_runs = tuple(reversed(loop))
    master.agent_runs = lambda limit=50: (AgentRunSummary(
        "loop", tuple(r.run_id for r in loop), tuple(r.name for r in loop),
        RunState.COMPLETED, 2000.0, 2100.0, {}),)
    page = clean(client.get("/agents")).decode()
    numbers = re.findall(r'<span class="stage-n">(\d+)</span>', page)
    assert numbers == [str(n) for n in range(7, STAGES_SHOWN + 7)]
    assert f"all {STAGES_SHOWN + 6} on its page" in page
    assert clean(client.get("/agents/loop")).decode().count('<span class="stage-n">') == \
        STAGES_SHOWN + 6   # its page draws them all


def test_empty_views_say_how_to_fill_them(console):
    client, master, _ = console
    master.all_runs, master.uploads, master.scripts, master.workspace = (), {}, {}, {}
    master.agent_runs = lambda limit=50: ()
    assert b"No agent run yet" in clean(client.get("/agents"))
    files = clean(client.get("/files"))
    assert b"No file uploaded yet" in files and b"The script library is empty" in files
    assert b"no run yet" in files and b"disabled" in files
    assert b"No file of this run" in clean(client.get("/runs/r1/files"))


# -- files --------------------------------------------------------------------------------------

def test_the_files_page_lists_uploads_scripts_and_a_run_picker(console):
    client, _, _ = console
    page = clean(client.get("/files")).decode()
    evil_name = EVIL + ".html"
    assert f'href="/files/uploads/{quote(evil_name, safe="")}"' in page
    assert 'href="/files/scripts/greet.py"' in page
    assert "2.5 MiB" in page or "2.0 MiB" in page
    digest = FilesMaster._info(FileArea.SCRIPTS, "greet.py", b"print('hello')\n").digest
    assert f'title="{digest}">{digest[:12]}<' in page
    assert 'href="/runs/r2"' in page and "a client" in page   # stored by a run / a client
    assert '<option value="r3">r3 · synth' in page
    assert 'href="/files" aria-current="page"' in page
    picked = client.get("/files/run?run=r1")
    assert picked.status_code == 303 and picked.location == "/runs/r1/files"
    assert client.get("/files/run?run=").location == "/files"


def test_a_stored_file_downloads_as_an_attachment_chunk_by_chunk(console):
    client, master, app = console
    answer = client.get(f"/files/uploads/{quote(EVIL + '.html', safe='')}")
    assert answer.status_code == 200 and answer.data == master.uploads[EVIL + ".html"]
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="_img_src_x_onerror_alert_1__.html"')
    assert f"filename*=UTF-8''{quote(EVIL + '.html', safe='')}" in disposition
    master.asked.clear()
    big = client.get("/files/uploads/big.bin")
    assert big.data == BIG
    assert [m.offset for m in master.asked if isinstance(m, GetFile)] == [0, CHUNK, 2 * CHUNK]
    assert client.get("/files/scripts/greet.py").data == b"print('hello')\n"
    missing = client.get("/files/uploads/nope.csv")
    assert missing.status_code == 404 and b"not in the uploaded files" in missing.data
    assert client.get("/files/elsewhere/greet.py").status_code == 404
    slots = app.extensions["titan_downloads"]
    assert slots.counter == MAX_DOWNLOADS   # every download gave its slot back


def test_downloads_are_bounded(console):
    client, _, app = console
    assert client.get("/files/scripts/greet.py").status_code == 200
    slots = app.extensions["titan_downloads"]
    for _ in range(MAX_DOWNLOADS):
        slots.acquire()
    try:
        busy = client.get("/files/scripts/greet.py")
        assert busy.status_code == 503 and b"downloads are running" in busy.data
    finally:
        for _ in range(MAX_DOWNLOADS):
            slots.release()


def test_attachment_names_are_plain_ascii_with_the_exact_name_beside():
    assert attachment("dir/report.csv") == \
        "attachment; filename=\"report.csv\"; filename*=UTF-8''report.csv"
    assert attachment('a"b\r\n.txt').startswith('attachment; filename="a_b__.txt";')
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in attachment("résumé.pdf")
    assert attachment("..").startswith('attachment; filename="download"')


# -- a run's workspace --------------------------------------------------------------------------

def test_a_runs_workspace_lists_every_workers_files_and_notes_what_is_missing(console):
    client, _, _ = console
    page = clean(client.get("/runs/r1/files")).decode()
    assert 'href="/runs/r1/files/w1/out.txt"' in page
    assert f'href="/runs/r1/files/w2/{quote(PAGE)}"' in page
    assert "page #1?.html" in page   # shown as text, linked quoted
    assert "w3 did not answer in time" in page and "the listing of w2 reached its cap" in page
    assert 'href="/runs/r1"' in page
    run_page = client.get("/runs/r1").data.decode()
    assert 'href="/runs/r1/files"' in run_page
    assert f'href="/agents/{quote(AGENT, safe="")}"' in run_page
    assert client.get("/runs/nope/files").status_code == 404


def test_a_workspace_file_downloads_from_its_worker_and_traversal_gets_nothing(console):
    client, master, _ = console
    answer = client.get(f"/runs/r1/files/w2/{quote(PAGE)}")
    assert answer.status_code == 200 and answer.data == PAGE_BODY
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith(
        'attachment; filename="page__1_.html"')
    asked = [m for m in master.asked if isinstance(m, GetWorkspaceFile)]
    assert (asked[0].run_id, asked[0].worker, asked[0].path) == ("r1", "w2", PAGE)
    assert client.get("/runs/r1/files/w1/out.txt").data == b"one\n"
    for path in ("/runs/r1/files/w1/../../etc/passwd", "/runs/r1/files/w1/%2E%2E/x",
                 "/runs/r1/files/w2/out.txt"):
        assert client.get(path).status_code == 404, path


def test_the_workers_page_shows_each_workers_running_services(console):
    client, _, _ = console
    page = clean(client.get("/workers")).decode()
    services = page.split("Services</th>")[1]
    assert 'href="/runs/r3/jobs/svc"' in services and "ready" in services
