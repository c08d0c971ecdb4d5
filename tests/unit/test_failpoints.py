"""Failpoints: the TITAN_FAILPOINTS format, counting, and each action (kill in a child)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from titan_actors import failpoints
from titan_actors.errors import UsageError


@pytest.fixture(autouse=True)
def _disarm():
    yield
    failpoints.load({})


def test_unset_arms_nothing_and_hits_are_free():
    assert failpoints.load({}) == {}
    failpoints.hit("aof.before_fsync")
    assert not failpoints.armed("aof.before_fsync")


def test_raise_on_the_nth_hit_only():
    failpoints.load({"TITAN_FAILPOINTS": "master.finish.before_ack=raise@3"})
    failpoints.hit("master.finish.before_ack")
    failpoints.hit("master.finish.before_ack")
    with pytest.raises(failpoints.FailpointError, match="hit 3"):
        failpoints.hit("master.finish.before_ack")
    failpoints.hit("master.finish.before_ack")  # the 4th passes


def test_onwards_and_every_time():
    failpoints.load({"TITAN_FAILPOINTS": "aof.before_fsync=raise@2+; store.write.before_ack=raise"})
    failpoints.hit("aof.before_fsync")
    for _ in range(3):
        with pytest.raises(OSError):
            failpoints.hit("aof.before_fsync")
    with pytest.raises(OSError):
        failpoints.hit("store.write.before_ack")


def test_probability_is_repeatable_with_a_seed():
    def pattern(seed: str) -> list[bool]:
        failpoints.load({"TITAN_FAILPOINTS": "aof.before_fsync=raise%0.3",
                         "TITAN_FAILPOINTS_SEED": seed})
        out = []
        for _ in range(200):
            try:
                failpoints.hit("aof.before_fsync")
                out.append(False)
            except failpoints.FailpointError:
                out.append(True)
        return out
    first = pattern("7")
    assert first == pattern("7")
    assert 30 < sum(first) < 90


def test_off_disarms_an_earlier_entry():
    assert failpoints.load({"TITAN_FAILPOINTS": "aof.before_fsync=kill;aof.before_fsync=off"}) == {}


@pytest.mark.parametrize("text, words", [
    ("aof.befor_fsync=kill", ["unknown failpoint 'aof.befor_fsync'", "aof.before_fsync"]),
    ("aof.before_fsync=explode", ["bad action 'explode'", "sleep:SECONDS"]),
    ("aof.before_fsync", ["bad action ''"]),
    ("aof.before_fsync=kill@0", ["bad action 'kill@0'"]),
])
def test_bad_settings_say_what_is_wrong(text, words):
    with pytest.raises(UsageError) as caught:
        failpoints.load({"TITAN_FAILPOINTS": text})
    for word in words:
        assert word in str(caught.value)


def test_kill_kills_the_process_and_says_where():
    code = ("from titan_actors import failpoints\n"
            "failpoints.hit('master.dispatch.before_send')\n"
            "print('survived', flush=True)\n"
            "failpoints.hit('master.dispatch.before_send')\n"
            "print('survived twice', flush=True)\n")
    env = {"TITAN_FAILPOINTS": "master.dispatch.before_send=kill@2", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == -9
    assert done.stdout == "survived\n"
    assert "failpoint master.dispatch.before_send: kill (hit 2" in done.stderr


def test_a_server_refuses_a_bad_setting_at_start(tmp_path):
    env = {"TITAN_FAILPOINTS": "nope=kill", "PATH": "/usr/bin:/bin",
           "TITAN_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "titan_actors.cli", "master", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "unknown failpoint 'nope'" in done.stderr
