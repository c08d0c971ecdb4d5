"""The vendored front-end files match VENDORED.md, and the console loads nothing from a CDN."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[3] / "web" / "titan_web"
VENDOR = WEB / "static" / "vendor"
MANIFEST = VENDOR / "VENDORED.md"

# | `file` | `package` | version | licence | `path in package` | `sha256` |
ROW = re.compile(r"^\|\s*`(?P<file>[^`]+)`\s*\|\s*`(?P<package>[^`]+)`\s*"
                 r"\|\s*(?P<version>[^|]+?)\s*\|\s*(?P<licence>[^|]+?)\s*"
                 r"\|[^|]*\|\s*`(?P<sha256>[0-9a-f]{64})`\s*\|\s*$")

# A script, stylesheet, import or url() that points off the server (scheme or protocol-relative).
REMOTE = r"""["']?(?:https?:)?//"""
REMOTE_REFERENCES = [
    re.compile(r"<script\b[^>]*\bsrc\s*=\s*" + REMOTE, re.IGNORECASE),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*" + REMOTE, re.IGNORECASE),
    re.compile(r"@import\s+(?:url\(\s*)?" + REMOTE, re.IGNORECASE),
    re.compile(r"\burl\(\s*" + REMOTE, re.IGNORECASE),
    re.compile(r"""\bimport\s*(?:\(\s*|[^'"();]*\bfrom\s*)["'](?:https?:)?//"""),
]
CHECKED_SUFFIXES = {".html", ".htm", ".jinja", ".jinja2", ".j2", ".css", ".js", ".mjs", ".svg"}


def manifest_rows() -> list[dict[str, str]]:
    rows = [m.groupdict() for line in MANIFEST.read_text().splitlines()
            if (m := ROW.match(line.strip()))]
    assert rows, f"no file rows in {MANIFEST}"
    return rows


def test_every_vendored_file_matches_its_sha256():
    rows = manifest_rows()
    mismatched = []
    for row in rows:
        path = VENDOR / row["file"]
        assert path.is_file(), f"{row['file']} is listed in VENDORED.md but missing"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != row["sha256"]:
            mismatched.append(f"{row['file']}: {digest} != {row['sha256']}")
    assert not mismatched, "vendored files differ from VENDORED.md (scripts/vendor_js.sh):\n" + \
        "\n".join(mismatched)


def test_every_vendored_file_is_listed_with_a_licence():
    rows = manifest_rows()
    listed = {row["file"] for row in rows}
    on_disk = {path.name for path in VENDOR.iterdir() if path.is_file()} - {"VENDORED.md"}
    assert on_disk == listed, f"unlisted: {on_disk - listed}, missing: {listed - on_disk}"
    for row in rows:
        assert row["licence"] in {"MIT", "0BSD", "BSD-3-Clause", "Apache-2.0", "ISC"}, row
        assert re.fullmatch(r"\d+\.\d+\.\d+", row["version"]), row
        licence_text = VENDOR / "licenses" / f"{row['package']}.txt"
        assert licence_text.is_file() and licence_text.stat().st_size > 100, licence_text


def test_pinned_versions_fit_together():
    versions = {row["package"]: row["version"] for row in manifest_rows()}
    assert versions["htmx.org"].startswith("2."), "htmx-ext-sse 2.x needs htmx 2.x"
    assert versions["htmx-ext-sse"].startswith("2."), versions
    assert versions["cytoscape"].startswith("3."), "the cytoscape extensions need cytoscape 3.x"
    assert "lodash" in versions, "cytoscape-edgehandles' browser build needs the global _"


def test_no_cdn_references_in_templates_or_static_files():
    files = [path for path in WEB.rglob("*")
             if path.is_file() and path.suffix.lower() in CHECKED_SUFFIXES
             and VENDOR not in path.parents
             and (WEB / "templates" in path.parents or WEB / "static" in path.parents)]
    templates = [path for path in files if WEB / "templates" in path.parents]
    if not templates:
        pytest.skip("no templates under web/titan_web/templates yet")
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        for pattern in REMOTE_REFERENCES:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(WEB)}:{line}: {match.group(0)}")
    assert not found, "remote script/style URLs (vendor them instead):\n" + "\n".join(found)


def test_the_remote_reference_patterns_catch_cdn_links():
    remote = [
        '<script src="https://unpkg.com/htmx.org@2.0.4"></script>',
        "<script defer src='//cdn.jsdelivr.net/npm/cytoscape'></script>",
        '<link rel="stylesheet" href="https://cdn.example.com/x.css">',
        '@import url("https://fonts.googleapis.com/css2?family=Inter");',
        "background: url(https://example.com/bg.png);",
        'import dagre from "https://esm.sh/dagre";',
    ]
    local = [
        '<script src="/static/vendor/htmx.min.js"></script>',
        '<link rel="stylesheet" href="{{ url_for(\'static\', path=\'app.css\') }}">',
        '<a href="https://github.com/example/titan">docs</a>',
        "background: url(/static/bg.png);",
    ]
    for text in remote:
        assert any(p.search(text) for p in REMOTE_REFERENCES), text
    for text in local:
        assert not any(p.search(text) for p in REMOTE_REFERENCES), text
