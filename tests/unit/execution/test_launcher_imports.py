"""The launcher process stays free of gevent (and psutil): it must never be patched."""

from __future__ import annotations

import subprocess
import sys


def test_the_launcher_imports_neither_gevent_nor_psutil():
    code = ("import sys, titan_actors.execution.launcher\n"
            "sys.exit(3 if {'gevent', 'psutil'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_the_launcher_refuses_a_bad_command_line():
    run = subprocess.run([sys.executable, "-m", "titan_actors.execution.launcher", "x"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "usage" in run.stderr
