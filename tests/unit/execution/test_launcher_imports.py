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


def test_the_default_warm_preload_imports_cleanly_without_gevent_or_threads():
    code = ("import sys\n"
            "from titan_actors.config import WARM_PRELOAD\n"
            "from titan_actors.execution.warm import Zygote\n"
            "zygote = Zygote.prepare(WARM_PRELOAD)\n"
            "assert zygote is not None, 'a preloaded module started a thread'\n"
            "assert not zygote.failed, zygote.failed\n"
            "assert 'gevent' not in sys.modules\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr


def test_a_preloaded_module_that_starts_a_thread_turns_the_warm_executor_off(tmp_path):
    (tmp_path / "threaded.py").write_text(
        "import threading\nthreading.Thread(target=threading.Event().wait, daemon=True)"
        ".start()\n")
    code = ("import sys\n"
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "from titan_actors.execution.warm import Zygote\n"
            "assert Zygote.prepare(['json', 'threaded']) is None\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr


def test_failed_preloads_are_named_and_skipped():
    code = ("from titan_actors.execution.warm import Zygote\n"
            "zygote = Zygote.prepare(['json', 'no_such_module_here'])\n"
            "assert zygote.preloaded == ('json',), zygote.preloaded\n"
            "assert zygote.failed[0].startswith('no_such_module_here: '), zygote.failed\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
