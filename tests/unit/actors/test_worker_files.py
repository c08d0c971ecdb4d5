"""The worker's archive helpers: the project folder's name, and the archive cache's retention."""

from __future__ import annotations

import os

from titan_actors.actors.worker_files import project_folder_name, prune_archives

DIGEST = "ab" * 32


def test_the_project_folder_is_the_archive_name_without_its_suffix(tmp_path):
    assert project_folder_name("demo.zip", DIGEST, tmp_path) == "demo"
    assert project_folder_name("demo.tar.gz", DIGEST, tmp_path) == "demo"
    assert project_folder_name(".zip", DIGEST, tmp_path) == ".zip"
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / ".titan-archive").write_text(DIGEST)
    assert project_folder_name("demo.zip", DIGEST, tmp_path) == "demo"  # the same version
    other = "cd" * 32
    assert project_folder_name("demo.zip", other, tmp_path) == f"demo-{other[:12]}"
    (tmp_path / "taken").mkdir()  # a folder a job made, not an unpacked archive
    assert project_folder_name("taken.zip", DIGEST, tmp_path) == f"taken-{DIGEST[:12]}"


def test_cached_archives_unused_past_retention_are_removed(tmp_path):
    cache = tmp_path / "archives"
    cache.mkdir()
    (cache / "old").write_bytes(b"1")
    (cache / "new").write_bytes(b"2")
    os.utime(cache / "old", (1000.0, 1000.0))
    os.utime(cache / "new", (5000.0, 5000.0))
    assert prune_archives(tmp_path, older_than=3000.0, now=5500.0) == ["old"]
    assert [p.name for p in cache.iterdir()] == ["new"]
    assert prune_archives(tmp_path / "nowhere", 1.0, 0.0) == []


def test_a_marker_a_job_replaced_by_a_fifo_or_a_link_is_not_trusted_and_never_blocks(tmp_path):
    """The run directory is writable by its jobs: a FIFO as the marker would block the worker's
    read forever, a link could point anywhere; both read as "not this version"."""
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / ".titan-archive")
    (tmp_path / "linked").mkdir()
    (tmp_path / "real").write_text(DIGEST)
    os.symlink(tmp_path / "real", tmp_path / "linked" / ".titan-archive")
    assert project_folder_name("fifo.zip", DIGEST, tmp_path) == f"fifo-{DIGEST[:12]}"
    assert project_folder_name("linked.zip", DIGEST, tmp_path) == f"linked-{DIGEST[:12]}"
