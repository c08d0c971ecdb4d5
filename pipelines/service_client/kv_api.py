"""kv-api: a small HTTP key-value store (Python's standard library only), run as a service.

It listens on PORT (which the worker sets for a service; 8765 by hand), on HOST (default
127.0.0.1; set HOST: 0.0.0.0 in the job's env when its clients run on other machines).

    GET  /health        200 "ok"
    PUT  /kv/<key>      store the request body under <key>
    GET  /kv/<key>      the value, or 404
    GET  /kv            every key and value, as JSON
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
_values: dict[str, str] = {}
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int, body: str, kind: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path == "/health":
            self._answer(200, "ok")
        elif self.path == "/kv":
            with _lock:
                self._answer(200, json.dumps(_values, sort_keys=True), "application/json")
        elif self.path.startswith("/kv/"):
            with _lock:
                value = _values.get(self.path[4:])
            self._answer(200, value) if value is not None else self._answer(404, "no such key")
        else:
            self._answer(404, "GET /health, /kv or /kv/<key>")

    def do_PUT(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if not self.path.startswith("/kv/") or len(self.path) == 4:
            self._answer(404, "PUT /kv/<key>")
        elif length > MAX_BODY:
            self._answer(413, f"at most {MAX_BODY} bytes")
        else:
            value = self.rfile.read(length).decode()
            with _lock:
                _values[self.path[4:]] = value
            self._answer(200, "stored")

    def log_message(self, format: str, *args: object) -> None:  # to the job's output
        print(f"kv-api: {self.command} {self.path} -> {args[1] if len(args) > 1 else ''}",
              flush=True)


host = os.environ.get("HOST", "127.0.0.1")
port = int(os.environ.get("PORT", "8765"))
server = ThreadingHTTPServer((host, port), Handler)
print(f"kv-api: listening on {host}:{server.server_address[1]}", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
