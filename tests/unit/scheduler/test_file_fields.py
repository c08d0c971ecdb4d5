"""Validation of the job fields that name stored files: archives and library scripts."""

from __future__ import annotations

import pytest

from titan_actors.scheduler.dag import field_problems
from titan_actors.scheduler.model import JobSpec


def test_archive_and_library_jobs_that_are_well_formed():
    assert field_problems(JobSpec("a", archive="p.zip", script_name="jobs/main.py")) == []
    assert field_problems(JobSpec("b", library="nightly.py")) == []


@pytest.mark.parametrize("spec, problem", [
    (JobSpec("a", archive="p.zip"), "archive job needs the entry to run inside 'p.zip'"),
    (JobSpec("a", archive="p.zip", script_name="../x.py"), "must be a relative path"),
    (JobSpec("a", archive="p.zip", script_name="/abs.py"), "must be a relative path"),
    (JobSpec("a", archive="p.zip", script_name="m.py", command=("ls",)),
     "has no script content, library script or command"),
    (JobSpec("a", archive="dir/p.zip", script_name="m.py"), "name of an uploaded file"),
    (JobSpec("a", file_digest="ab" * 32, command=("ls",)),
     "without an archive or a library script"),
    (JobSpec("a", library="x.py", file_digest="not-hex"), "must be a SHA-256"),
    (JobSpec("a", library="lib/x.py"), "must be a script name without '/'"),
    (JobSpec("a", library="x.py", command=("ls",)),
     "a library script and its own script or command"),
])
def test_malformed_file_fields_are_named(spec, problem):
    found = field_problems(spec)
    assert any(problem in line and line.startswith("job 'a': ") for line in found), found
