"""A run's submission rebuilt from its jobs' specs: what a re-run submits again.

The scheduler keeps each job's spec as accepted, so the submission is recovered from them, in
submission order, except what the submission itself did not hold:

* the gates ``hitl-gate-<id>`` that ``hitl_message`` put after a job (submitting the spec again
  makes them again), and the children of that job name the job again instead of its gate;
* jobs added at run time by a job of the run (``added_by``): running the jobs again adds them
  again. A job added from outside that hangs below one of them is left out too: its parent
  would otherwise resolve to the old run's job.

Archive and library jobs keep the file digest pinned when the run was accepted: a re-run runs
the same bytes, even if a newer file of that name was uploaded since.
"""

from __future__ import annotations

from dataclasses import replace

from .gates import GATE_PREFIX
from .model import JobKind, JobSpec, RunSpec
from .state import Job, Run

__all__ = ["submitted_spec"]


def submitted_spec(run: Run) -> RunSpec:
    """The spec to submit ``run`` again: its name, agent run id and source, and its jobs as
    described in the module docstring."""
    injected = {job_id for job_id, job in run.jobs.items() if _is_hitl_gate(job, run)}
    left_out = set(injected)
    jobs: list[JobSpec] = []
    for job_id, job in run.jobs.items():  # submission order
        if job_id in left_out:
            continue
        # (run, id) of each parent, in the spec's order; a parent in another run stays as named
        parents = tuple(p.removeprefix(GATE_PREFIX) if r == run.run_id and p in injected else p
                        for r, p in job.parents)
        below_left_out = any(r == run.run_id and name in left_out and name not in injected
                             for (r, _), name in zip(job.parents, parents, strict=True))
        if job.added_by or below_left_out:
            left_out.add(job_id)
            continue
        jobs.append(replace(job.spec, parents=parents) if parents != job.spec.parents
                    else job.spec)
    return RunSpec(run.name, tuple(jobs), agent_run_id=run.agent_run_id, source=run.source)


def _is_hitl_gate(job: Job, run: Run) -> bool:
    """A gate that ``hitl_message`` on its only parent, a job of the same run, put there."""
    spec = job.spec
    if spec.kind is not JobKind.GATE or not spec.id.startswith(GATE_PREFIX):
        return False
    parent = run.jobs.get(spec.id.removeprefix(GATE_PREFIX))
    return (parent is not None and bool(parent.spec.hitl_message)
            and spec.parents == (parent.spec.id,))
