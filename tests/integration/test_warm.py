"""The warm executor against a plain spawn: each script runs both ways through a real launcher,
and what the job shows (output, exit status, environment, descriptors, signals) must be the same.

The launcher is started with ``--warm`` (modules preloaded, forks Python jobs asked ``warm``);
the same launcher spawns the same job when it is not asked, so the two differ only in how the
job started. Nothing sleeps to wait: exits come from the launcher's reports.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import psutil
import pytest

from support import wait_until
from titan_actors.config import WARM_PRELOAD
from titan_actors.execution.command import passed_env
from titan_actors.execution.launcher_client import Launcher
from titan_actors.execution.output import OutputCapture, Stream, finish

PY = sys.executable
# what a worker gives its jobs of its own environment (the launcher has the same), and one more
ENV = {**passed_env(), "TITAN_X": "1"}
_PROBE = "import sys; print('titan_sdk' in sys.modules)\n"


@pytest.fixture(scope="module")
def launcher():
    launcher = Launcher.start(warm_preload=WARM_PRELOAD)
    yield launcher
    launcher.close(grace=1, timeout=5)


_count = [0]


def _run(launcher: Launcher, tmp_path, source: str, *, warm: bool, args=(), env=None,
         stdin_script: bool = True, kill_after: bytes | None = None, timeout: float = 20):
    """Run ``source`` as a script job; return (exit code, stdout, stderr, pid)."""
    _count[0] += 1
    script = tmp_path / "job.py"
    if stdin_script:
        script.write_text(textwrap.dedent(source))
    batches: list[tuple[Stream, bytes]] = []
    seen = [False]

    def on_batch(stream: Stream, data: bytes) -> None:
        batches.append((stream, data))
        if kill_after is not None and not seen[0] and kill_after in b"".join(
                d for s, d in batches if s is Stream.STDOUT):
            seen[0] = True
            launcher.kill(key, grace=5, sig=signal.SIGTERM)

    key = f"job-{_count[0]}-{'warm' if warm else 'spawn'}"
    proc = launcher.launch(key, [PY, "-u", str(script), *args], ENV if env is None else env,
                           str(tmp_path), warm=warm)
    capture = OutputCapture(proc.stdout_fd, proc.stderr_fd, on_batch).start()
    result = finish(proc, capture, timeout=timeout, drain_timeout=5)
    assert result is not None, f"{key} still running after {timeout} s"
    out = b"".join(d for s, d in batches if s is Stream.STDOUT)
    err = b"".join(d for s, d in batches if s is Stream.STDERR)
    return result.code, out, err, proc.pid


def _both(launcher, tmp_path, source, **kwargs):
    spawned = _run(launcher, tmp_path, source, warm=False, **kwargs)
    warmed = _run(launcher, tmp_path, source, warm=True, **kwargs)
    probe = {k: v for k, v in kwargs.items() if k in ("env", "args")}
    assert _run(launcher, tmp_path, _PROBE, warm=True, **probe)[1] == b"True\n", \
        "this job would not have been forked: the comparison would be of two spawns"
    return spawned, warmed


@pytest.mark.parametrize("source, code", [
    ("print('hello'); import sys; print('oops', file=sys.stderr)", 0),
    ("import sys; sys.exit(3)", 3),
    ("import sys; sys.exit(300)", 300 & 0xFF),
    ("import sys; sys.exit('a message')", 1),
    ("import sys; sys.exit(None)", 0),
    ("raise SystemExit(True)", 1),
    ("def f():\n    raise ValueError('boom')\nf()", 1),
    ("x = (", 1),
    ("raise KeyboardInterrupt", -signal.SIGINT),
    ("import os; os._exit(7)", 7),
    ("import signal, os; os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
])
def test_exit_codes_and_messages_match_a_spawned_interpreter(launcher, tmp_path, source, code):
    (s_code, s_out, s_err, _), (w_code, w_out, w_err, _) = _both(launcher, tmp_path, source)
    assert s_code == w_code == code
    assert (s_out, s_err) == (w_out, w_err)


def test_argv_cwd_env_path_and_a_fresh_main(launcher, tmp_path):
    source = """
        import json, os, sys
        print(json.dumps({
            "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
            "path0": sys.path[0], "extra": sys.path[1], "name": __name__,
            "file": __file__, "package": __package__, "spec": repr(__spec__),
            "globals": sorted(k for k in globals() if not k.startswith("__")),
            "stdout": [sys.stdout.encoding, sys.stdout.errors, sys.stdout.write_through],
            "stderr": sys.stderr.errors, "stdin": os.read(0, 10).decode(),
        }))
    """
    env = {**ENV, "PYTHONPATH": str(tmp_path / "lib")}
    (s_code, s_out, _, _), (w_code, w_out, _, _) = _both(
        launcher, tmp_path, source, args=("a b", "--flag"), env=env)
    assert s_code == w_code == 0
    spawned, warmed = (__import__("json").loads(o) for o in (s_out, w_out))
    for name in ("TITAN_ATTEMPT_MARKER",):  # one per attempt: different by design
        assert spawned["env"].pop(name) != warmed["env"].pop(name)
    assert spawned == warmed
    assert warmed["argv"] == [str(tmp_path / "job.py"), "a b", "--flag"]
    assert warmed["extra"] == str(tmp_path / "lib") and warmed["globals"] == ["json", "os", "sys"]
    assert warmed["stdin"] == ""


def test_future_flags_of_the_launcher_are_not_inherited(launcher, tmp_path):
    # the launcher's modules use "from __future__ import annotations"; a job must not
    source = "def f(x: not_defined_anywhere): pass\n"
    (s_code, _, s_err, _), (w_code, _, w_err, _) = _both(launcher, tmp_path, source)
    assert s_code == w_code == 1 and b"NameError" in w_err and s_err == w_err


def test_only_the_standard_descriptors_are_open_and_signals_are_default(launcher, tmp_path):
    source = """
        import os, signal
        print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))
        print([signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD,
                                             signal.SIGPIPE)])
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        print(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())
    """
    (s_code, s_out, _, _), (w_code, w_out, _, _) = _both(launcher, tmp_path, source)
    assert s_code == w_code == 0
    assert s_out == w_out
    assert w_out.splitlines()[0] == b"[0, 1, 2, 3]"  # 3: the listdir's own descriptor


def test_threads_are_joined_and_atexit_runs_in_order(launcher, tmp_path):
    source = """
        import atexit, sys, threading
        atexit.register(lambda: print('atexit'))
        def late():
            print('thread done')
        t = threading.Timer(0.05, late)
        t.start()
        print('main done')
    """
    (s_code, s_out, _, _), (w_code, w_out, _, _) = _both(launcher, tmp_path, source)
    assert s_code == w_code == 0
    assert s_out == w_out == b"main done\nthread done\natexit\n"


def test_output_interleaves_unbuffered_like_python_u(launcher, tmp_path):
    source = """
        import sys
        for n in range(3):
            print('out', n)
            print('err', n, file=sys.stderr)
        sys.stdout.write('no newline')
    """
    (_, s_out, s_err, _), (_, w_out, w_err, _) = _both(launcher, tmp_path, source)
    assert (s_out, s_err) == (w_out, w_err)
    assert w_out.endswith(b"no newline")


def test_a_missing_script_fails_like_python(launcher, tmp_path):
    script = tmp_path / "job.py"
    if script.exists():
        script.unlink()
    results = [_run(launcher, tmp_path, "", warm=w, stdin_script=False) for w in (False, True)]
    (s_code, _, s_err, _), (w_code, _, w_err, _) = results
    assert s_code == w_code == 2
    assert s_err == w_err and b"can't open file" in w_err


def test_a_killed_warm_job_takes_its_children_with_it(launcher, tmp_path):
    source = """
        import signal, subprocess
        child = subprocess.Popen(['sleep', '60'])
        print(child.pid, flush=True)
        signal.pause()  # until killed
    """
    code, out, _, _ = _run(launcher, tmp_path, source, warm=True, kill_after=b"\n")
    assert code == -signal.SIGTERM
    child = int(out.split()[0])
    wait_until(lambda: not psutil.pid_exists(child)
               or psutil.Process(child).status() == psutil.STATUS_ZOMBIE,
               timeout=10, what="the job's child to be killed with it")


def test_warm_jobs_are_forked_and_reaped_by_the_launcher(launcher, tmp_path):
    # the worker is gevent-patched, where fork + waitpid hangs: the launcher forks and reaps
    source = "import os; print(os.getppid())"
    parents = set()
    for _ in range(20):
        code, out, _, _ = _run(launcher, tmp_path, source, warm=True)
        assert code == 0
        parents.add(int(out))
    assert parents == {launcher.pid}
    assert [c for c in psutil.Process(launcher.pid).children()
            if c.status() != psutil.STATUS_ZOMBIE] == []


def test_random_state_differs_between_warm_jobs(launcher, tmp_path):
    source = "import random, uuid; print(random.random(), uuid.uuid4())"
    outs = {_run(launcher, tmp_path, source, warm=True)[1] for _ in range(3)}
    assert len(outs) == 3


def test_warm_jobs_see_the_preloaded_modules_and_others_are_spawned(launcher, tmp_path):
    source = "import sys; print('titan_sdk' in sys.modules, 'json' in sys.modules)"
    assert _run(launcher, tmp_path, source, warm=True)[1] == b"True True\n"
    assert _run(launcher, tmp_path, source, warm=False)[1] == b"False False\n"
    # "-c" is no script, and "-u" must come first: those are spawned even when asked warm
    seen = []
    for n, argv in enumerate(([PY, "-c", source], [PY, "-B", "-u", str(tmp_path / "job.py")])):
        proc = launcher.launch(f"plain-{n}", argv, ENV, str(tmp_path), warm=True)
        batches = []
        capture = OutputCapture(proc.stdout_fd, proc.stderr_fd,
                                lambda _s, d, out=batches: out.append(d)).start()
        assert finish(proc, capture, timeout=20).code == 0
        seen.append(b"".join(batches))
    assert seen == [b"False False\n"] * 2


# -- found by a review: the races, finalisation, cleanup and environment of warm jobs --


def test_interpreter_finalisation_runs_in_a_warm_job(launcher, tmp_path):
    # python flushes/closes what the script left open at exit (module globals are cleared),
    # runs __del__ and logging.shutdown (its atexit hook); warm.py ends with os._exit after
    # clearing the launcher's atexit hooks, logging's included
    source = f"""
        import logging, logging.handlers, sys
        f = open({str(tmp_path / 'out.txt')!r}, 'w')
        f.write('data')
        class A:
            def __del__(self):
                print('del ran')
        a = A()
        log = logging.getLogger('x')
        memory = logging.handlers.MemoryHandler(100, target=logging.StreamHandler(sys.stdout))
        log.addHandler(memory)
        log.warning('buffered record')
    """
    contents = []
    for warm in (False, True):
        code, out, _, _ = _run(launcher, tmp_path, source, warm=warm)
        contents.append((code, out, (tmp_path / "out.txt").read_text()))
    assert contents[0] == (0, b"buffered record\ndel ran\n", "data")
    assert contents[1] == contents[0]


def test_the_jobs_time_zone_applies_to_a_warm_job(launcher, tmp_path):
    source = "import time; print(time.localtime(0).tm_hour, time.tzname)"
    s, w = _both(launcher, tmp_path, source, env={**ENV, "TZ": "Asia/Tokyo"})
    assert s[:3] == w[:3] and w[1].startswith(b"9 ")


@pytest.mark.parametrize("extra, source", [
    ({"PYTHONHASHSEED": "0"}, "print(hash('titan'))"),
    ({"PYTHONWARNINGS": "error"}, "import warnings; warnings.warn('w')"),
    ({"LC_ALL": "C"}, "import sys; print(sys.stdout.encoding)"),
], ids=["PYTHONHASHSEED", "PYTHONWARNINGS", "LC_ALL"])
def test_a_job_that_configures_its_interpreter_otherwise_is_spawned(launcher, tmp_path, extra,
                                                                    source):
    env = {**ENV, **extra}
    assert _run(launcher, tmp_path, _PROBE, warm=True, env=env)[1] == b"False\n"
    s, w = (_run(launcher, tmp_path, source, warm=warm, env=env) for warm in (False, True))
    assert s[:3] == w[:3]


def test_a_file_that_would_shadow_a_preloaded_module_makes_the_job_spawn(launcher, tmp_path):
    (tmp_path / "csv.py").write_text("MINE = True\n")
    source = "import csv; print(getattr(csv, 'MINE', False))"
    assert _run(launcher, tmp_path, source, warm=True)[1] == b"True\n"
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "titan_sdk").mkdir()
    (lib / "titan_sdk" / "__init__.py").write_text("MINE = 'bundled'\n")
    (tmp_path / "csv.py").unlink()
    source = "import titan_sdk; print(getattr(titan_sdk, 'MINE', 'worker'))"
    env = {**ENV, "PYTHONPATH": "lib"}  # relative: to the job's cwd
    assert _run(launcher, tmp_path, source, warm=True, env=env)[1] == b"bundled\n"


def test_a_warm_job_killed_right_after_its_start_dies(launcher, tmp_path):
    # SpawnSucceeded leaves before the forked child has called setsid: killpg(pid) finds no
    # group (ESRCH, ignored) and the kill is lost; or the signal lands on the launcher's no_op
    # handler still installed in the child
    (tmp_path / "job.py").write_text("import signal; signal.pause()\n")  # until killed
    procs = []
    for n in range(30):
        key = f"fast-kill-{n}"
        procs.append(launcher.launch(key, [PY, "-u", str(tmp_path / "job.py")], ENV,
                                     str(tmp_path), warm=True))
        launcher.kill(key, grace=0, sig=signal.SIGKILL)
    codes = [p.wait(20) for p in procs]
    assert codes == [-signal.SIGKILL] * 30


def test_a_daemon_forked_by_a_warm_job_is_cleaned_up_like_a_spawned_ones(launcher, tmp_path):
    # the marker is looked for in /proc/PID/environ, which for a forked (never exec'd) process
    # is the launcher's: a pure-Python double fork escapes the cleanup
    source = """
        import os, time
        told_r, told_w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                print(os.getpid(), flush=True)
                os.write(told_w, b"x")  # its pid is out: the job may end now
                signal.pause()  # until the cleanup kills it
            os._exit(0)
        os.wait()
        os.read(told_r, 1)
    """
    for warm in (False, True):
        daemon = int(_run(launcher, tmp_path, source, warm=warm)[1].split()[0])
        try:
            wait_until(lambda pid=daemon: not psutil.pid_exists(pid)
                       or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                       timeout=10, what=f"the daemon of a {'warm' if warm else 'spawned'} job "
                                        "to be cleaned up")
        finally:
            if psutil.pid_exists(daemon):
                os.kill(daemon, signal.SIGKILL)


def test_a_signal_to_a_just_forked_job_does_not_reach_the_launcher(tmp_path):
    # until the child calls signal.set_wakeup_fd(-1), its Python handlers are the launcher's
    # and its wakeup fd is the launcher's pipe: a SIGTERM to the child's pid there reads, in
    # the launcher, as a SIGTERM to the launcher, which kills every job and exits
    own = Launcher.start(warm_preload=WARM_PRELOAD)
    try:
        (tmp_path / "job.py").write_text("import signal; signal.pause()\n")  # until killed
        for n in range(100):
            proc = own.launch(f"term-{n}", [PY, "-u", str(tmp_path / "job.py")], ENV,
                              str(tmp_path), warm=True, new_session=False)
            own.kill(f"term-{n}", grace=0.2, sig=signal.SIGTERM)
            assert proc.wait(10) in (-signal.SIGTERM, -signal.SIGKILL)
    finally:
        own.close(grace=1, timeout=5)


# -- found by a second review: shadowing, finalisation, the interpreter's own path --


@pytest.mark.parametrize("name", ["selectors", "socket", "dataclasses", "typing"])
def test_a_file_shadowing_a_module_the_launcher_imported_before_preloading_spawns(
        launcher, tmp_path, name):
    # Zygote.prepare counts as shadowable only the modules its own imports added: what the
    # launcher imported before (selectors, socket, dataclasses, typing...) is in sys.modules of
    # every warm job too, so a job's own selectors.py is never imported there
    (tmp_path / f"{name}.py").write_text("MINE = True\n")
    source = f"import {name}; print(getattr({name}, 'MINE', False))"
    s, w = (_run(launcher, tmp_path, source, warm=warm) for warm in (False, True))
    assert s[:3] == w[:3] == (0, b"True\n", b"")


def test_a_symlinked_scripts_real_folder_is_checked_for_shadowing(launcher, tmp_path):
    # python puts the script's real folder on sys.path; suits() looks at the link's folder
    code, jobs = tmp_path / "code", tmp_path / "jobs"
    code.mkdir()
    jobs.mkdir()
    (code / "csv.py").write_text("MINE = True\n")
    (code / "job.py").write_text("import csv; print(getattr(csv, 'MINE', False))\n")
    (jobs / "job.py").symlink_to(code / "job.py")
    outs = []
    for warm in (False, True):
        proc = launcher.launch(f"symlinked-{warm}", [PY, "-u", str(jobs / "job.py")], ENV,
                               str(tmp_path), warm=warm)
        batches = []
        capture = OutputCapture(proc.stdout_fd, proc.stderr_fd,
                                lambda _s, d, out=batches: out.append(d)).start()
        outs.append((finish(proc, capture, timeout=20).code, b"".join(batches)))
    assert outs[0] == outs[1] == (0, b"True\n")


def test_files_left_open_by_an_imported_module_are_flushed(launcher, tmp_path):
    # only __main__ is cleared before os._exit: python's finalisation also clears the other
    # modules (their open files are flushed) and exit() flushes C stdio
    (tmp_path / "helper.py").write_text(
        f"f = open({str(tmp_path / 'out.txt')!r}, 'w')\nf.write('data')\n")
    results = []
    for warm in (False, True):
        (tmp_path / "out.txt").write_text("")
        code, out, _, _ = _run(launcher, tmp_path,
                               "import ctypes, helper\nctypes.CDLL(None).printf(b'from C\\n')\n",
                               warm=warm)
        results.append((code, out, (tmp_path / "out.txt").read_text()))
    assert results[0] == (0, b"from C\n", "data")
    assert results[1] == results[0]


def test_a_closed_stdout_exits_0_like_python(launcher, tmp_path):
    s, w = _both(launcher, tmp_path, "import sys; sys.stdout.close()")
    assert s[0] == w[0] == 0


def test_pythondontwritebytecode_of_the_job_applies(launcher, tmp_path):
    env = {**ENV, "PYTHONDONTWRITEBYTECODE": "1"}
    s, w = _both(launcher, tmp_path, "import sys; print(sys.dont_write_bytecode)", env=env)
    assert s[:2] == w[:2] == (0, b"True\n")


def test_the_interpreters_own_path_survives_a_pythonpath_that_names_it(tmp_path, monkeypatch):
    # site-packages named on the worker's PYTHONPATH too (a plain install of titan_actors
    # puts it there): a warm job still imports what is installed but not preloaded
    site_packages = os.path.dirname(os.path.dirname(psutil.__file__))
    monkeypatch.setenv("PYTHONPATH", site_packages)
    own = Launcher.start(warm_preload=("json",))
    try:
        env = {**passed_env(), "PYTHONPATH": site_packages}
        source = "import sys, psutil; print('titan_sdk' in sys.modules, 'json' in sys.modules)"
        for warm in (False, True):
            code, out, err, _ = _run(own, tmp_path, source, warm=warm, env=env)
            assert (code, err) == (0, b"")
            assert out == (b"False True\n" if warm else b"False False\n")
    finally:
        own.close(grace=1, timeout=5)


def test_titan_sdk_constants_are_the_jobs_own(launcher, tmp_path):
    env = {**ENV, "TITAN_HOST": "10.1.2.3", "TITAN_PORT": "4321"}
    source = ("import titan_sdk, titan_sdk.titan_sdk as t\n"
              "print(titan_sdk.TITAN_HOST, titan_sdk.TITAN_PORT, t.TITAN_HOST, t.TITAN_PORT)")
    s, w = _both(launcher, tmp_path, source, env=env)
    assert s[:3] == w[:3] == (0, b"10.1.2.3 4321 10.1.2.3 4321\n", b"")
