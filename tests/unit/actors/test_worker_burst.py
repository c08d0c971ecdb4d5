"""What a worker hands its burst workers: their command line and environment."""

from __future__ import annotations

import os
from pathlib import Path

import titan_actors
from titan_actors.actors.worker import WorkerOptions
from titan_actors.actors.worker_burst import burst_command, burst_environment
from titan_actors.config import SETTINGS, load_config
from titan_actors.runtime.worker_main import burst_env


def _flags(argv: list[str]) -> dict[str, str]:
    start = argv.index("worker") + 1
    out, key = {}, None
    for word in argv[start:]:
        if word.startswith("--"):
            key = word
            out[key] = ""
        else:
            out[key] = word
    return out


def test_a_burst_gets_the_parents_address_tags_slots_and_settings(tmp_path):
    options = WorkerOptions("w1", ("::1", 9191), tmp_path / "worker-w1", ("GENERAL", "GPU"), 3,
                            heartbeat_interval=0.1, drain_timeout=7.5, output_cap=2048,
                            workspace_retention=3600.0, archive_max_bytes=4096,
                            archive_max_entries=12)
    flags = _flags(burst_command(options, "w1-burst-2"))
    assert flags == {
        "--master": "[::1]:9191", "--name": "w1-burst-2", "--data-dir": str(tmp_path),
        "--tags": "GENERAL,GPU", "--slots": "3", "--ephemeral": "", "--burst-of": "w1",
        "--heartbeat-interval": "0.1", "--drain-timeout": "7.5", "--log-cap": "2048",
        "--retention-age": "3600.0", "--archive-max-size": "4096",
        "--archive-max-entries": "12"}
    # every value is read back exactly by its setting's parser
    for flag, setting in (("--heartbeat-interval", "heartbeat_interval"),
                          ("--drain-timeout", "drain_timeout"), ("--log-cap", "log_cap"),
                          ("--retention-age", "retention_age")):
        assert SETTINGS[setting].parse(flags[flag]) is not None


def test_settings_that_were_set_travel_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    key = Path("cluster.key")
    config = load_config({"key_file": str(key), "log_level": "debug"}, env={})
    env = dict(burst_env(config))
    assert env == {"TITAN_KEY_FILE": str(tmp_path / key), "TITAN_LOG_LEVEL": "debug"}
    assert burst_env(load_config({}, env={})) == ()
    options = WorkerOptions("w1", ("h", 1), tmp_path / "worker-w1", burst_env=tuple(env.items()))
    full = burst_environment(options)
    assert full["TITAN_KEY_FILE"] == str(tmp_path / key)
    package_root = str(Path(titan_actors.__file__).resolve().parent.parent)
    assert full["PYTHONPATH"].split(os.pathsep)[0] == package_root
