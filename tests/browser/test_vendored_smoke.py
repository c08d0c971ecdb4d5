"""The vendored front-end libraries load together, offline, from plain <script> tags.

A tiny page served from a loopback http.server loads them from the real
web/titan_web/static/vendor/ folder, lays out a 3-node graph with dagre and enables edgehandles.
Any request that leaves the loopback server is aborted and fails the test.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

VENDOR = Path(__file__).resolve().parents[2] / "web" / "titan_web" / "static" / "vendor"

SCRIPTS = [
    "htmx.min.js",
    "htmx-ext-sse.js",
    "cytoscape.min.js",
    "dagre.min.js",
    "cytoscape-dagre.js",
    "lodash.min.js",
    "cytoscape-edgehandles.js",
]

PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>vendored libraries</title>
<style>
  body { font-family: sans-serif; margin: 16px; }
  #cy { width: 900px; height: 600px; border: 1px solid #888; }
</style>
{scripts}
</head>
<body hx-ext="sse">
<h1>Vendored libraries smoke test</h1>
<div id="cy"></div>
<script>
  window.smoke = { ready: false, error: null };
  try {
    const cy = cytoscape({
      container: document.getElementById("cy"),
      elements: [
        { data: { id: "extract", label: "extract" } },
        { data: { id: "train", label: "train" } },
        { data: { id: "report", label: "report" } },
        { data: { id: "e1", source: "extract", target: "train" } },
        { data: { id: "e2", source: "train", target: "report" } },
      ],
      style: [
        { selector: "node", style: { label: "data(label)", "background-color": "#3a7" } },
        { selector: "edge",
           style: { "curve-style": "bezier", "target-arrow-shape": "triangle" } },
      ],
    });
    // Every node starts at the same place: the layout must move them apart.
    cy.nodes().positions({ x: 0, y: 0 });
    cy.one("layoutstop", () => { window.smoke.ready = true; });
    window.smoke.eh = cy.edgehandles({ snap: true });
    window.smoke.eh.enableDrawMode();
    cy.layout({ name: "dagre", rankDir: "TB" }).run();
    window.cy = cy;
  } catch (error) {
    window.smoke.error = String(error && error.stack || error);
  }
</script>
</body>
</html>
"""


class Handler(http.server.SimpleHTTPRequestHandler):
    """/ is the smoke page; /static/vendor/<file> comes from the real vendor folder."""

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path in ("/", "/index.html"):
            scripts = "\n".join(f'<script src="/static/vendor/{name}"></script>'
                                for name in SCRIPTS)
            body = PAGE.replace("{scripts}", scripts).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/static/vendor/"):
            self.path = self.path[len("/static/vendor"):]
            return super().do_GET()
        self.send_error(404)

    def log_message(self, format, *args):  # quiet
        pass


@pytest.fixture
def vendor_server():
    handler = functools.partial(Handler, directory=str(VENDOR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="vendor-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_vendored_libraries_work_together_offline(page, vendor_server, console_errors,
                                                  screenshot):
    origin = urlsplit(vendor_server).netloc
    outside: list[str] = []

    def only_loopback(route):
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    failed: list[str] = []

    def on_response(response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", on_response)

    page.goto(vendor_server + "/")
    page.wait_for_function("window.smoke && (window.smoke.ready || window.smoke.error)")
    assert page.evaluate("window.smoke.error") is None

    result = page.evaluate("""() => {
        const cy = window.cy;
        const positions = {};
        cy.nodes().forEach(n => { positions[n.id()] = n.position(); });
        return {
            htmxVersion: htmx.version,
            sseExtension: typeof htmx.createEventSource,
            cytoscapeVersion: cytoscape.version,
            dagreVersion: typeof dagre !== "undefined" ? dagre.version : null,
            nodes: cy.nodes().length,
            edges: cy.edges().length,
            positions: positions,
            dagreScratch: cy.nodes().map(n => !!(n.scratch().dagre)),
            edgehandles: typeof cy.edgehandles,
            drawMode: typeof window.smoke.eh.enableDrawMode,
        };
    }""")
    screenshot("graph")

    assert result["htmxVersion"].startswith("2."), result
    assert result["sseExtension"] == "function", "htmx-ext-sse did not register (sse init)"
    assert result["cytoscapeVersion"].startswith("3."), result
    assert result["dagreVersion"] == "0.8.5", result
    assert result["nodes"] == 3 and result["edges"] == 2, result
    # dagre ran: every node has its dagre scratch data and the nodes moved apart, in rank order.
    assert all(result["dagreScratch"]), result
    positions = result["positions"]
    assert len({(round(p["x"]), round(p["y"])) for p in positions.values()}) == 3, positions
    assert positions["extract"]["y"] < positions["train"]["y"] < positions["report"]["y"], positions
    assert result["edgehandles"] == "function", "cytoscape-edgehandles did not register"
    assert result["drawMode"] == "function", result

    assert outside == [], f"requests left the loopback server: {outside}"
    assert failed == [], f"failed requests: {failed}"
    assert console_errors == [], console_errors
