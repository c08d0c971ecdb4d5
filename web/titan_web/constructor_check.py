"""The Constructor's server-side checks: a YAML pipeline read and judged as ``titanctl
validate`` does (``parse_pipeline``, then ``check_jobs``), plus that its library scripts exist.

YAML text from the browser never reads the console's disk: a job with ``file:`` (a path
relative to a YAML file, or an absolute one) is refused before the pipeline is parsed, since
parsing reads the file it names.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from ruamel.yaml.nodes import MappingNode, SequenceNode

from titan_actors.errors import PipelineError, SubmissionError
from titan_actors.pipeline import parse_pipeline
from titan_actors.pipeline_yaml import Problems, compose, entries
from titan_actors.scheduler import check_jobs
from titan_actors.scheduler.model import RunSpec

__all__ = ["SOURCE", "Problem", "Verdict", "check_yaml", "load_yaml"]

SOURCE = "pipeline.yaml"  # how messages name the text ("pipeline.yaml:12: ...")
_LINE = re.compile(re.escape(SOURCE) + r"(?::(\d+))?: (.*)")


@dataclass(frozen=True)
class Problem:
    """One problem: its text, the YAML line it is on (0: none), and the jobs it is about."""

    message: str
    line: int = 0
    jobs: tuple[str, ...] = ()

    def as_json(self, keys: tuple[str, ...] = ()) -> dict:
        return {"message": self.message, "line": self.line, "keys": list(keys)}


@dataclass
class Verdict:
    """The judgement of a pipeline text: its spec when it parsed, every problem found."""

    spec: RunSpec | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems


def load_yaml(text: str) -> RunSpec:
    """Parse the pipeline ``text`` (named ``pipeline.yaml`` in messages).

    Raises:
        PipelineError: listing every problem, one per line, as ``pipeline.yaml:LINE: ...``;
            among them each ``file:`` key (refused, see the module docstring).
    """
    _refuse_files(text)
    return parse_pipeline(text, SOURCE)


def check_yaml(text: str, library: Collection[str] | None = None) -> Verdict:
    """Judge the pipeline ``text``: every problem of its keys and values (with its line),
    of its graph (ids, parents outside it are left to the master, cycles), and each
    ``script:`` that is not in ``library`` (the library's names; None: not checked)."""
    try:
        spec = load_yaml(text)
    except PipelineError as error:
        return Verdict(None, [_from_line(line) for line in str(error).splitlines()])
    problems: list[Problem] = []
    try:
        check_jobs(spec.jobs, resolve=lambda parent: "(another run)")
    except SubmissionError as error:
        ids = [job.id for job in spec.jobs]
        problems.extend(Problem(message, 0, tuple(i for i in ids if _names(message, i)))
                        for message in error.problems or (str(error),))
    if library is not None:
        known = set(library)
        problems.extend(
            Problem(f"job '{job.id}': script {job.library!r} is not in the master's script "
                    "library; upload it (Upload a script…) or pick one of the library's",
                    0, (job.id,))
            for job in spec.jobs if job.library and job.library not in known)
    return Verdict(spec, problems)


def _from_line(text: str) -> Problem:
    match = _LINE.fullmatch(text)
    if match is None:
        return Problem(text)
    return Problem(match.group(2), int(match.group(1) or 0))


def _names(message: str, job_id: str) -> bool:
    """The message of check_jobs is about ``job_id`` (``job 'ID': ...`` or in a cycle)."""
    if message.startswith(f"job '{job_id}'"):
        return True
    if message.startswith("cycle: "):
        path = message.removeprefix("cycle: ").split(" (")[0]
        return job_id in path.split(" -> ")
    return False


def _refuse_files(text: str) -> None:
    root = compose(text, SOURCE)
    if not isinstance(root, MappingNode):
        return  # parse_pipeline says what is wrong
    ignored = Problems(SOURCE)  # parse_pipeline reports these again, in their place
    jobs = entries(root, ignored, "").get("jobs")
    if jobs is None or not isinstance(jobs.value, SequenceNode):
        return
    problems = Problems(SOURCE)
    for index, node in enumerate(jobs.value.value, 1):
        if isinstance(node, MappingNode):
            found = entries(node, ignored, "")
            if "file" in found:
                problems.add(found["file"].line, (
                    f"job #{index}: 'file' names a script on the disk next to a YAML file, "
                    "which the console does not read; upload the script to the library and "
                    "write 'script: NAME' (or paste the script into the job's form)"))
    problems.raise_if_any()
