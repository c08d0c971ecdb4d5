"""Resource limits of jobs (``limits:``): read from YAML and the SDK with clear errors, applied
to the real process by a real cluster, and named in the failure reason of a job they ended."""

from __future__ import annotations

import signal
import sys

import pytest

from support.local_cluster import module_cluster, write_pipeline
from titan_actors.errors import ConfigError
from titan_actors.job_limits import explain_exit, parse_limit, to_rlimits
from titan_actors.pipeline import parse_pipeline


def test_limits_read_sizes_counts_and_seconds():
    assert parse_limit("memory", "512MiB") == 512 << 20
    assert parse_limit("cpu", 60) == 60
    assert parse_limit("open_files", 256) == 256
    assert parse_limit("file_size", "1G") == 1 << 30
    import resource
    assert to_rlimits({"memory": 1 << 30, "cpu": 5}) == {resource.RLIMIT_AS: 1 << 30,
                                                         resource.RLIMIT_CPU: 5}


@pytest.mark.parametrize("name, value, words", [
    ("memry", 1, "unknown limit 'memry'; known: memory, cpu, open_files, file_size"),
    ("memory", "1k", "expected at least 16MiB"),
    ("cpu", 0, "whole seconds of CPU time, at least 1"),
    ("cpu", "10s", "whole seconds"),
    ("open_files", True, "a count"),
])
def test_bad_limits_say_what_would_be_right(name, value, words):
    with pytest.raises(ConfigError, match=words):
        parse_limit(name, value)


def test_a_pipeline_names_the_line_of_a_bad_limit():
    text = ("name: p\nversion: '1'\njobs:\n  - id: a\n    command: [true]\n"
            "    limits:\n      memory: 512MiB\n      cpu: lots\n")
    with pytest.raises(Exception) as caught:
        parse_pipeline(text, "p.yaml")
    assert "p.yaml:8:" in str(caught.value) and "limit cpu" in str(caught.value)
    good = parse_pipeline(text.replace("lots", "30"), "p.yaml")
    assert good.jobs[0].limits == {"memory": 512 << 20, "cpu": 30}


def test_exits_are_explained_by_the_limit_that_ends_them():
    assert "cpu limit of 2 s" in explain_exit({"cpu": 2}, -signal.SIGXCPU)
    assert "file_size limit" in explain_exit({"file_size": 4096}, -signal.SIGXFSZ)
    assert "file_size limit" in explain_exit({"file_size": 4096}, 128 + signal.SIGXFSZ)
    assert "memory limit of 64MiB" in explain_exit({"memory": 64 << 20}, 1)
    assert explain_exit({"memory": 64 << 20}, 0) == ""
    assert explain_exit({}, 1) == ""


@pytest.fixture
def cluster(tmp_path):
    yield from module_cluster(tmp_path / "cluster", workers=1, slots=4)


def test_a_real_cluster_applies_each_limit(cluster, tmp_path):
    py = sys.executable
    jobs = [
        {"id": "hog", "command": [py, "-c", "b = bytearray(400 << 20)"],
         "limits": {"memory": "128MiB"}, "retries": 0},
        {"id": "spin", "command": ["bash", "-c", "while :; do :; done"],
         "limits": {"cpu": 1}, "retries": 0},
        {"id": "files", "command": [py, "-c", "[open('/dev/null') for _ in range(100)]"],
         "limits": {"open_files": 32}, "retries": 0},
        {"id": "big", "command": ["bash", "-c", "head -c 100000 /dev/zero > out.bin"],
         "limits": {"file_size": "16k"}, "retries": 0},
        {"id": "within", "command": [py, "-c", "b = bytearray(10 << 20); print('ok')"],
         "limits": {"memory": "256MiB", "cpu": 30, "open_files": 64}, "retries": 0},
    ]
    run_id = cluster.submit(write_pipeline(tmp_path / "limits.yaml", "limits", jobs))
    status = cluster.wait_run(run_id, timeout=60)
    jobs_by_id = {j["job_id"]: j for j in status["jobs"]}
    assert jobs_by_id["within"]["state"] == "completed"
    for job_id in ("hog", "spin", "files", "big"):
        assert jobs_by_id[job_id]["state"] == "dead", jobs_by_id[job_id]
    assert "memory limit of 128MiB" in jobs_by_id["hog"]["reason"]
    assert b"MemoryError" in cluster.client.logs(f"{run_id}/hog").data
    assert "cpu limit of 1 s was spent" in jobs_by_id["spin"]["reason"]
    assert b"Too many open files" in cluster.client.logs(f"{run_id}/files").data
    assert "file_size limit of 16KiB" in jobs_by_id["big"]["reason"]
