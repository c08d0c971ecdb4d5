"""PLAN -> ITER -> SYNTH: a planner decides from its data how wide the next stage is.

One script, three roles. A job carries only its own script to the worker, so the planner submits
this same file for the later stages::

    agent.py plan                  NOTES (environment): one "topic: note" a line. Groups the
                                   notes by topic, then submits a new run of the same agent run:
                                   one `work` job per topic and a `synth` job after them all.
    agent.py work --ns NS --topic T --note N [--note N ...]
                                   summarises one topic's notes, stores the summary under
                                   NS:result:T and adds T to the set NS:topics.
    agent.py synth --ns NS --topic T [--topic T ...]
                                   reads the summaries, prints the report, stores it as NS:report.

NS is ``agent:<agent run id>``. The LLM is pluggable: ``--llm module:function`` (default: the
``TITAN_EXAMPLE_LLM`` environment variable), a function that takes a prompt and returns text,
importable on the workers; without one, a deterministic stand-in answers.
"""

import argparse
import importlib
import json
import os
import re
import shlex
import sys
import uuid
from collections import Counter
from collections.abc import Callable

from titan_sdk import TitanClient, TitanJob

# Common words, and the stand-in's own ("points", "keywords"), are never keywords.
STOP_WORDS = {"that", "this", "with", "from", "were", "have", "after", "into", "than", "when",
              "points", "keywords"}


def deterministic_llm(prompt: str) -> str:
    """The stand-in for an LLM: counts the prompt's "- " items and names their commonest words."""
    items = [line[2:] for line in prompt.splitlines() if line.startswith("- ")]
    words = Counter(word for item in items for word in re.findall(r"[a-z]{4,}", item.lower())
                    if word not in STOP_WORDS)
    top = sorted(words.items(), key=lambda pair: (-pair[1], pair[0]))[:3]
    return f"{len(items)} points; keywords: {', '.join(word for word, _ in top) or 'none'}"


def load_llm(spec: str) -> Callable[[str], str]:
    """The function ``module:function`` names, or the deterministic stand-in for ``""``."""
    if not spec:
        return deterministic_llm
    module, _, name = spec.partition(":")
    if not module or not name:
        sys.exit(f"--llm {spec!r}: give module:function (such as mypkg.llm:complete)")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        sys.exit(f"--llm {spec!r} cannot be loaded ({error}); it must be importable where the "
                 "job runs (the worker passes PYTHONPATH on)")


def must(reply, what: str):
    """``reply``, unless the SDK answered with an error string: then exit saying so."""
    if isinstance(reply, str) and reply.startswith(("ERROR:", "CONNECTION_ERROR:")):
        sys.exit(f"{what}: {reply}")
    return reply


def own_agent_run_id() -> str:
    """The agent run this job's run belongs to. A run submitted without one (`titanctl submit`)
    starts one named after itself; by hand, outside Titan, a fresh one."""
    run_id = os.environ.get("TITAN_RUN_ID")
    if not run_id:
        return f"agent-{uuid.uuid4().hex[:8]}"
    from titan_actors.client import MasterClient  # the SDK does not show a run's agent run id

    with MasterClient.from_environment(identity="agent-planner") as master:
        return master.run(run_id).run.agent_run_id or f"agent-{run_id}"


def read_notes(text: str) -> dict[str, list[str]]:
    """NOTES grouped by topic (topics as job-id-safe slugs, in sorted order)."""
    groups: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        topic, sep, note = line.partition(":")
        slug = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")
        if not sep or not slug or not note.strip():
            sys.exit(f"plan: NOTES line {number} {line!r} is not 'topic: note'")
        groups.setdefault(slug, []).append(note.strip())
    if not groups:
        sys.exit("plan: NOTES is empty; give one 'topic: note' a line (the pipeline's env)")
    return dict(sorted(groups.items()))


def plan(opts, client: TitanClient) -> None:
    groups = read_notes(os.environ.get("NOTES", ""))
    load_llm(opts.llm)  # a bad --llm fails here, not in every worker
    agent = own_agent_run_id()
    ns = f"agent:{agent}"
    print(f"plan: {sum(map(len, groups.values()))} notes in {len(groups)} topics -> "
          f"{len(groups)} workers and a synthesis, agent run {agent}")
    must(client.store_put(f"{ns}:plan", json.dumps(groups)), "plan: storing the plan")
    # The workers wait for this job to end (the parent resolves in this job's own run).
    me = [os.environ["TITAN_JOB_ID"]] if "TITAN_JOB_ID" in os.environ else []
    workers = []
    for topic, notes in groups.items():
        args = ["work", "--ns", ns, "--llm", opts.llm, "--topic", topic]
        args += [arg for note in notes for arg in ("--note", note)]
        workers.append(TitanJob(f"work-{topic}", __file__, args=shlex.join(args), parents=me))
    args = ["synth", "--ns", ns, "--llm", opts.llm]
    args += [arg for topic in groups for arg in ("--topic", topic)]
    synth_job = TitanJob("synth", __file__, args=shlex.join(args),
                         parents=[job.id for job in workers])
    reply = client.submit_dag("agent_planner-iter", [*workers, synth_job], agent_run_id=agent)
    if reply != "DAG_ACCEPTED":
        sys.exit(f"plan: the next stage was refused: {reply}")
    for job in workers:
        print(f"plan: submitted {job.id}")


def work(opts, client: TitanClient) -> None:
    [topic] = opts.topic
    prompt = (f"Summarise these customer notes about {topic} in one line:\n"
              + "".join(f"- {note}\n" for note in opts.note))
    summary = load_llm(opts.llm)(prompt).strip()
    must(client.store_put(f"{opts.ns}:result:{topic}", summary), "work: storing the summary")
    must(client.store_sadd(f"{opts.ns}:topics", topic), "work: registering the topic")
    print(f"work-{topic}: {summary}")


def synth(opts, client: TitanClient) -> None:
    results = {t: must(client.store_get(f"{opts.ns}:result:{t}"), "synth") for t in opts.topic}
    missing = [topic for topic, value in results.items() if value == "NULL"]
    if missing:
        sys.exit(f"synth: no result under {opts.ns}:result:<topic> for {', '.join(missing)}")
    overall = load_llm(opts.llm)("Sum these topic summaries up in one line:\n" + "".join(
        f"- {topic}: {summary}\n" for topic, summary in results.items())).strip()
    report = "\n".join([f"report {opts.ns} ({len(results)} topics)",
                        *(f"  {topic}: {summary}" for topic, summary in results.items()),
                        f"  overall: {overall}"])
    must(client.store_put(f"{opts.ns}:report", report), "synth: storing the report")
    print(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["plan", "work", "synth"])
    parser.add_argument("--ns", default="")
    parser.add_argument("--topic", action="append", default=[])
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--llm", default=os.environ.get("TITAN_EXAMPLE_LLM", ""))
    opts = parser.parse_args()
    if opts.role != "plan" and not (opts.ns and opts.topic):
        parser.error(f"{opts.role} needs --ns and --topic")
    if opts.role == "work" and len(opts.topic) != 1:
        parser.error("work takes one --topic")
    with TitanClient() as client:
        {"plan": plan, "work": work, "synth": synth}[opts.role](opts, client)


if __name__ == "__main__":
    main()
