"""Importing the library patches nothing, and the gevent-free parts import no gevent."""

from __future__ import annotations

import subprocess
import sys

import pytest

GEVENT_FREE = ["titan_actors.wire.codec", "titan_actors.wire.frame", "titan_actors.wire.registry",
               "titan_actors.wire.messages", "titan_actors.wire.auth", "titan_actors.wire.seal",
               "titan_actors.wire.connection", "titan_actors.wire.greeting",
               "titan_actors.wire.blocking", "titan_actors.config", "titan_actors.aof.replay",
               "titan_actors.aof.record", "titan_sdk"]


@pytest.mark.parametrize("module", GEVENT_FREE)
def test_gevent_free_modules_do_not_import_gevent(module):
    code = f"import sys, {module}; sys.exit(3 if 'gevent' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_importing_everything_monkey_patches_nothing():
    code = ("import titan_actors.cli.app, titan_actors.wire.server, titan_actors.actors.base, "
            "titan_actors.aof, titan_web, titan_sdk\n"
            "from gevent import monkey\n"
            "import sys\n"
            "sys.exit(4 if monkey.is_module_patched('socket') else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
