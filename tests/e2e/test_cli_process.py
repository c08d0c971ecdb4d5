"""Layer 4: the real ``titanctl`` executable, in its own process, as a user runs it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support import closed_port
from support.processes import stop_and_check, titanctl, wait_for_file

ECHO_SERVER = str(Path(__file__).resolve().parents[1] / "support" / "echo_server.py")


def test_help_and_version():
    result = titanctl("--help")
    assert result.returncode == 0, result.stderr
    for command in ("key", "aof", "config", "ping"):
        assert command in result.stdout
    version = titanctl("--version")
    assert version.returncode == 0 and version.stdout.startswith("titanctl ")


def test_key_generate_writes_an_owner_only_key_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "cluster.key"
    first = titanctl("key", "generate", str(path))
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    again = titanctl("key", "generate", str(path))
    assert again.returncode != 0
    assert "--force" in again.stderr + again.stdout
    assert titanctl("key", "generate", str(path), "--force").returncode == 0


def test_config_show_follows_flag_env_file_default(tmp_path):
    config_file = tmp_path / "titan.yaml"
    config_file.write_text("port: 7000\nask_timeout: 5s\n")
    result = titanctl("config", "show", "--config", str(config_file), "--port", "7100",
                      env={"TITAN_ASK_TIMEOUT": "9s", "TITAN_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
    assert rows["port"][1:3] == ["7100", "flag"]
    assert rows["ask_timeout"][2] == "env"
    assert rows["data_dir"][2] == "env"
    assert rows["max_frame_size"][2] == "default"


def test_config_show_names_a_wrong_key_with_file_and_line(tmp_path):
    config_file = tmp_path / "titan.yaml"
    config_file.write_text("port: 7000\naof_fsinc: always\n")
    result = titanctl("config", "show", "--config", str(config_file))
    assert result.returncode == 2
    assert f"{config_file}:2" in result.stderr and "aof_fsync" in result.stderr


@pytest.fixture
def echo_server(tmp_path):
    """Start the echo server process; yields a function (key_file=None) -> port."""
    started: list[subprocess.Popen] = []

    def start(key_file: Path | None = None) -> int:
        ready = tmp_path / f"ready-{len(started)}"
        args = [sys.executable, ECHO_SERVER, str(ready)] + ([str(key_file)] if key_file else [])
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        started.append(process)
        return int(wait_for_file(ready, process))
    yield start
    for process in started:
        stop_and_check(process)


def test_ping_reaches_a_server_process(echo_server):
    port = echo_server()
    result = titanctl("ping", "--master", f"127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    assert "echo-server" in result.stdout and "answered in" in result.stdout


def test_ping_with_keys_and_clear_errors(echo_server, tmp_path):
    key = tmp_path / "k"
    titanctl("key", "generate", str(key))
    port = echo_server(key)
    ok = titanctl("ping", "--master", f"127.0.0.1:{port}", "--key-file", str(key))
    assert ok.returncode == 0, ok.stderr
    no_key = titanctl("ping", "--master", f"127.0.0.1:{port}")
    assert no_key.returncode == 2 and "requires the cluster key" in no_key.stderr
    other = tmp_path / "other"
    titanctl("key", "generate", str(other))
    wrong = titanctl("ping", "--port", str(port), "--key-file", str(other))
    assert wrong.returncode == 2 and "keys differ" in wrong.stderr
    port = closed_port()
    nobody = titanctl("ping", "--master", f"127.0.0.1:{port}")
    assert nobody.returncode == 3 and f"could not connect to 127.0.0.1:{port}" in nobody.stderr
    loose = tmp_path / "loose"
    loose.write_text(key.read_text())
    os.chmod(loose, 0o644)
    refused = titanctl("ping", "--port", str(port), "--key-file", str(loose))
    assert refused.returncode != 0 and "chmod 600" in refused.stderr


def test_a_derived_worker_key_pings_as_a_worker_but_cannot_be_a_client(echo_server, tmp_path):
    cluster, worker = tmp_path / "cluster.key", tmp_path / "worker.key"
    titanctl("key", "generate", str(cluster))
    derived = titanctl("key", "derive", str(cluster), str(worker), "--role", "worker")
    assert derived.returncode == 0, derived.stderr
    assert stat.S_IMODE(worker.stat().st_mode) == 0o600
    port = echo_server(cluster)
    # titanctl ping claims the client role: a worker key cannot prove it
    as_client = titanctl("ping", "--port", str(port), "--key-file", str(worker))
    assert as_client.returncode == 2 and "cannot act as client" in as_client.stderr
    bad_role = titanctl("key", "derive", str(cluster), str(tmp_path / "x"), "--role", "job")
    assert bad_role.returncode == 2 and "per-attempt tokens" in bad_role.stderr


def _write_aof(path: Path, payloads: list[bytes]) -> None:
    from titan_actors.aof import AppendOnlyFile
    aof = AppendOnlyFile.open(path, "always")
    for payload in payloads:
        aof.append(payload).wait(5)
    aof.close()


def test_aof_check_reports_fixes_a_torn_tail_and_refuses_corruption(tmp_path):
    path = tmp_path / "master.aof"
    _write_aof(path, [f"record {n}".encode() for n in range(5)])
    clean = titanctl("aof", "check", str(path))
    assert clean.returncode == 0, clean.stderr
    assert "5 good" in clean.stdout and "OK" in clean.stdout
    size = path.stat().st_size
    with open(path, "r+b") as f:  # a torn write: the last record lost its last 3 bytes
        f.truncate(size - 3)
    torn = titanctl("aof", "check", str(path))
    assert torn.returncode == 1 and "torn tail" in torn.stdout and "4 good" in torn.stdout
    fixed = titanctl("aof", "check", str(path), "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    backups = list(tmp_path.glob("master.aof.bak-*"))
    assert len(backups) == 1 and backups[0].stat().st_size == size - 3
    assert titanctl("aof", "check", str(path)).returncode == 0
    data = bytearray(path.read_bytes())
    data[30] ^= 0xFF  # inside the first record: damage before the end
    path.write_bytes(bytes(data))
    corrupt = titanctl("aof", "check", str(path), "--fix")
    assert corrupt.returncode == 1
    assert "CORRUPT at byte offset" in corrupt.stdout and "backup" in corrupt.stdout
    missing = titanctl("aof", "check", str(tmp_path / "nope.aof"))
    assert missing.returncode != 0 and "nope.aof" in missing.stdout + missing.stderr
    assert "Traceback" not in missing.stderr
