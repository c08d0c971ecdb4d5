"""What a job's process gets, on a real keyed cluster: its argv without a shell, an allowlisted
environment without any secret of the worker, and a token scoped to its run.

A ``titanctl master --key-file`` and a ``titanctl worker`` holding the worker key, both started
with canary secrets in their environment (``TITAN_KEY``, ``AWS_SECRET_ACCESS_KEY``, ...). A
pipeline submitted with ``titanctl submit`` (YAML, the users' way) runs:

* jobs whose arguments are shell metacharacters (``;``, ``$( )``, backticks, ``|``, ``&&``,
  ``>``, a newline, globs, ``~``, ``$VAR``): each echoes its argv, which arrives verbatim, and
  none of the files their "commands" would create exists afterwards, while a control job
  shows that a job can create a file there;
* a job that prints its whole environment: no canary, no key, no key file path; a TITAN_TOKEN
  whose claims name this run, job and attempt.

(The allowlist and its precedence: tests/unit/execution/test_command.py::
test_env_allowlist_secrets_and_precedence; through the launcher: tests/integration/
test_launcher.py::test_env_is_the_allowlist_plus_the_job_and_never_a_secret; a job using its
token: tests/integration/test_engine_env.py::
test_a_job_calls_the_master_with_its_token_and_never_sees_the_key.)
"""

from __future__ import annotations

import json
import secrets
import sys

import pytest

from support.processes import titanctl
from support.secure_master import KeyedMaster
from titan_actors.execution.command import ENV_ALLOWLIST
from titan_actors.wire.auth import JobToken
from titan_actors.wire.roles import Role

CANARY = f"canary{secrets.token_hex(8)}"
SECRETS = {"TITAN_KEY": CANARY, "MY_SECRET": CANARY, "AWS_SECRET_ACCESS_KEY": CANARY,
           "DATABASE_PASSWORD": CANARY, "GITHUB_TOKEN": CANARY, "LC_API_KEY": CANARY,
           "http_proxy": f"http://user:{CANARY}@proxy.invalid:3128", "PLAIN_VARIABLE": CANARY}
HOSTILE = ["; touch pwned-semicolon", "$(touch pwned-subst)", "`touch pwned-backtick`",
           "| touch pwned-pipe", "&& touch pwned-and", "> pwned-redirect",
           "x\ntouch pwned-newline", "'; touch pwned-quote; '", "${IFS}touch${IFS}pwned-ifs",
           "*", "~", "$HOME", "\\", '"', "a b\tc"]
ECHO = "import json, sys; print(json.dumps(sys.argv[1:]))"
SHELL_ECHO = 'for a in "$@"; do printf "%s\\0" "$a"; done\n'
ENV_DUMP = "import json, os; print(json.dumps(dict(os.environ)))"


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    master = KeyedMaster(root, env=SECRETS).start()
    try:
        master.worker("w1", master.key(Role.WORKER))
        (root / "echo.sh").write_text(SHELL_ECHO)
        absolute = [f"; touch {root}/pwned-absolute", f"$(touch {root}/pwned-absolute2)"]
        jobs = [
            {"id": "argv", "command": [sys.executable, "-c", ECHO], "args": HOSTILE + absolute},
            {"id": "split", "command": [sys.executable, "-c", ECHO],
             "args": "one 'two three' '; touch pwned-string' \"$(touch pwned-string2)\""},
            {"id": "bash-script", "file": "echo.sh", "args": HOSTILE},
            {"id": "env", "command": [sys.executable, "-c", ENV_DUMP]},
            {"id": "control", "command": ["bash", "-c", "touch control-made"]},
        ]
        pipeline = root / "hostile.yaml"
        pipeline.write_text(json.dumps({"name": "hostile", "version": "1.0", "jobs": jobs}))
        submitted = titanctl("submit", str(pipeline), "--wait", "--json", "--master",
                             master.address, "--key-file", str(master.key(Role.CLIENT)),
                             timeout=60)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        run_id = json.loads(submitted.stdout)["run"]["run_id"]
        with master.client(Role.ADMIN) as admin:
            logs = {job["id"]: admin.logs(f"{run_id}/{job['id']}").data for job in jobs}
        yield master, run_id, logs
    finally:
        master.stop()


def test_arguments_arrive_verbatim_and_no_shell_runs_them(ran):
    master, _, logs = ran
    absolute = [f"; touch {master.root}/pwned-absolute", f"$(touch {master.root}/pwned-absolute2)"]
    assert json.loads(logs["argv"]) == HOSTILE + absolute
    assert json.loads(logs["split"]) == ["one", "two three", "; touch pwned-string",
                                         "$(touch pwned-string2)"]
    assert logs["bash-script"].split(b"\0")[:-1] == [a.encode() for a in HOSTILE]
    assert [p.name for p in master.root.rglob("control-made")] == ["control-made"]
    assert sorted(p.name for p in master.root.rglob("pwned*")) == []


def test_no_secret_of_the_worker_reaches_a_job_and_its_token_names_its_attempt(ran):
    master, run_id, logs = ran
    env = json.loads(logs["env"])
    text = json.dumps(env)
    assert CANARY not in text
    assert master.raw_key().hex() not in text
    assert master.keyring(Role.WORKER).key_for(Role.WORKER).hex() not in text
    assert "TITAN_KEY_FILE" not in env and ".key" not in text  # nor a key file's path
    passed = {name for name in env if not name.startswith("TITAN_")}
    allowed = {p for p in ENV_ALLOWLIST if not p.endswith("*")}
    assert passed <= allowed | {n for n in passed if n.startswith("LC_")}, passed - allowed
    claims = JobToken.parse(env["TITAN_TOKEN"]).claims
    assert (claims.run_id, claims.job_id, claims.attempt) == (run_id, "env", 1)
    assert env["TITAN_RUN_ID"] == run_id and env["TITAN_JOB_ID"] == "env"
