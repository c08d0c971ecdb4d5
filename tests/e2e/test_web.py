"""Layer 4: the web console against a real ``titanctl up`` cluster (master, a worker, and the
console process ``up`` starts on a free port).

* In process: the Flask app over the cluster's master (its event hub following the real event
  stream): pages show real runs with a job id and a log holding ``<script>`` escaped, the graph
  JSON, the live ``/events`` stream and a job's log stream.
* Over HTTP (urllib) against the console process: the pages, ``/metrics``, ``/readyz``, and a
  gate approved with the page's CSRF token; a POST without it is refused.
* ``titanctl down`` at the end of the module leaves no process (console included).
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

from support import wait_until
from support.local_cluster import module_cluster
from support.processes import TITANCTL, titanctl
from titan_actors.client import MasterClient
from titan_actors.scheduler.model import JobKind, JobSpec, JobState, RunSpec
from titan_web.app import ConsoleOptions, console_of, create_app

EVIL_ID = "<script>alert(1)<!--"     # job ids may hold anything but whitespace and '/'
EVIL_LOG = "<script>alert('log')</script>"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from module_cluster(tmp_path_factory.mktemp("web"), workers=1, slots=2, web=True)


@pytest.fixture(scope="module")
def evil_run(cluster) -> str:
    spec = RunSpec("evil", (JobSpec("first", command=("echo", "one")),
                            JobSpec(EVIL_ID, command=("echo", EVIL_LOG), parents=("first",))))
    run_id = cluster.client.submit(spec).run_id
    cluster.client.follow_run(run_id, 30)
    return run_id


@pytest.fixture
def app(cluster, tmp_path):
    host, port = cluster.state["master"]["host"], cluster.port
    options = ConsoleOptions(web_dir=tmp_path, master=(host, port), session_secret=b"t" * 32,
                             long_poll=1.0, data_root=tmp_path)
    made = create_app(options, lambda: MasterClient(host, port, timeout=10, identity="test-web"))
    console_of(made).hub.start()
    yield made
    console_of(made).hub.stop(timeout=2)
    console_of(made).pool.close()


def test_pages_show_real_runs_with_user_text_escaped(app, evil_run):
    client = app.test_client()
    job_url = f"/runs/{evil_run}/jobs/{quote(EVIL_ID, safe='')}"
    for path in ("/", f"/runs/{evil_run}", job_url, "/workers", "/approvals"):
        page = client.get(path)
        assert page.status_code == 200, (path, page.data[:300])
        assert b"<script>alert" not in page.data, path
    assert b"&lt;script&gt;alert(1)&lt;!--" in client.get(f"/runs/{evil_run}").data
    job_page = client.get(job_url).data
    assert b"&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in job_page
    graph = client.get(f"/api/runs/{evil_run}/graph").get_json()
    assert {n["id"]: n["state"] for n in graph["nodes"]} == {"first": "completed",
                                                            EVIL_ID: "completed"}
    assert graph["edges"] == [{"source": "first", "target": EVIL_ID}]
    assert client.get(job_url + "/log.txt").data == (EVIL_LOG + "\n").encode()


def test_the_event_stream_pushes_status_and_run_changes(app, cluster):
    client = app.test_client()
    stream = client.get("/events", buffered=False)
    try:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        chunks = iter(stream.response)
        assert next(chunks).startswith(b"retry: 2000\nevent: hello")
        wait_until(lambda: console_of(app).hub.live, 10, what="the hub to follow the master")
        run_id = cluster.client.submit(RunSpec("pushed", (JobSpec("x", command=("true",)),))
                                       ).run_id
        seen = b""
        while f'event: runs\ndata: ["{run_id}"'.encode() not in seen:
            seen += next(chunks)  # each read waits at most 15 s (a keepalive comes then)
        while b"event: status" not in seen:
            seen += next(chunks)
        assert b"Workers <b>1</b>" in seen
    finally:
        stream.close()
    assert console_of(app).hub.subscribers == 0


def test_a_jobs_log_streams_and_ends(app, evil_run):
    client = app.test_client()
    stream = client.get(f"/runs/{evil_run}/jobs/{quote(EVIL_ID, safe='')}/log/stream",
                        buffered=False)
    body = b"".join(stream.response).decode()
    stream.close()
    chunk = re.search(r"id: (\d+)\nevent: chunk\ndata: (.*)\n", body)
    assert chunk and json.loads(chunk.group(2)) == {"text": EVIL_LOG + "\n"}
    assert int(chunk.group(1)) == len(EVIL_LOG) + 1 and "event: end" in body


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def test_the_console_process_serves_its_pages_over_http(cluster, evil_run):
    url = cluster.web_url
    assert url.startswith("http://127.0.0.1:")
    opener = _opener()
    wait_until(lambda: _status(opener, url + "readyz") == 200, 10, what="/readyz")
    for path in ("", "workers", "approvals", f"runs/{evil_run}", "agents"):
        with opener.open(url + path, timeout=10) as answer:
            assert answer.status == 200 and b"Titan console" in answer.read(), path
    with opener.open(url + "metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert "titan_master_up 1" in text.splitlines()
    assert 'titan_workers{connected="true"} 1' in text.splitlines()


def test_a_gate_is_approved_through_the_console_with_its_csrf_token(cluster):
    spec = RunSpec("gated", (JobSpec("build", command=("true",)),
                             JobSpec("ship-it", kind=JobKind.GATE, parents=("build",),
                                     message="Ship <it>?"),
                             JobSpec("after", command=("true",), parents=("ship-it",))))
    run_id = cluster.client.submit(spec).run_id
    gate = f"{run_id}/ship-it"
    cluster.wait_for(lambda: cluster.client.job(gate).job.state is JobState.WAITING,
                     what="the gate to wait")
    url, opener = cluster.web_url, _opener()
    with opener.open(url + "approvals", timeout=10) as answer:
        page = answer.read().decode()
    assert "Ship &lt;it&gt;?" in page
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)
    decide = {"gate": gate, "decision": "approve", "comment": "looks good"}

    refused = _post(opener, url + "approvals/decide", decide, origin=url.rstrip("/"))
    assert refused == 403  # no token
    refused = _post(opener, url + "approvals/decide", {**decide, "csrf_token": token},
                    origin="http://evil.example")
    assert refused == 403  # another origin
    assert cluster.client.job(gate).job.state is JobState.WAITING

    done = _post(opener, url + "approvals/decide", {**decide, "csrf_token": token},
                 origin=url.rstrip("/"))
    assert done == 200  # 303 back to /approvals, followed
    info = cluster.client.job(gate).job
    assert info.state is JobState.APPROVED and info.comment == "looks good"
    assert cluster.client.follow_run(run_id, 30).state.value == "completed"


def _status(opener, url: str) -> int:
    try:
        with opener.open(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def _post(opener, url: str, data: dict, origin: str) -> int:
    request = urllib.request.Request(url, data=urlencode(data).encode(), method="POST",
                                     headers={"Origin": origin})
    return _status(opener, request)


def _passwd(root: Path, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([TITANCTL, "passwd", "--stdin", "--data-dir", str(root)], input=text,
                          capture_output=True, text=True, timeout=60)


def test_passwd_and_the_bind_rule(tmp_path):
    made = _passwd(tmp_path, "s3cret pass\n")
    assert made.returncode == 0, made.stderr
    assert Path(tmp_path, "web", "passwd").read_text().startswith("scrypt$")
    short = _passwd(tmp_path, "short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    exposed = titanctl("web", "--host", "0.0.0.0", "--web-port", "0", "--data-dir",
                       str(tmp_path))
    assert exposed.returncode == 2 and "refusing to bind 0.0.0.0" in exposed.stderr


def test_a_worker_launched_from_the_console_registers_and_down_stops_it(cluster):
    url, opener = cluster.web_url, _opener()
    with opener.open(url + "workers", timeout=10) as answer:
        page = answer.read().decode()
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)
    launched = _post(opener, url + "workers/launch",
                     {"name": "from-web", "tags": "WEB,GENERAL", "slots": "1",
                      "lifetime": "permanent", "csrf_token": token}, origin=url.rstrip("/"))
    assert launched == 200
    registered = cluster.wait_for(
        lambda: [w for w in cluster.client.workers() if w.name == "from-web" and w.connected],
        what="the launched worker to register")
    assert set(registered[0].tags) == {"WEB", "GENERAL"} and registered[0].slots == 1
    recorded = json.loads((cluster.root / "web" / "launched.json").read_text())
    assert [entry["name"] for entry in recorded] == ["from-web"]
    cluster.remember()  # the module's `titanctl down` must stop it: checked at the end
