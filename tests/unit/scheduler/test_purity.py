"""The scheduler is pure: no I/O, no gevent, no clock, no global randomness."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import titan_actors.scheduler as scheduler

FORBIDDEN = {"gevent", "socket", "time", "os", "io", "threading", "asyncio", "subprocess",
             "select", "pathlib", "logging"}


def test_scheduler_modules_import_nothing_impure():
    for path in Path(scheduler.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_the_scheduler_imports_no_gevent():
    code = "import sys, titan_actors.scheduler; sys.exit(3 if 'gevent' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
