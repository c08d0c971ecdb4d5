"""A writer -> critic loop: each round is a run of two jobs; the critic starts the next round.

One script, two roles (a job carries only its own script, so the critic submits this same file
for the next round)::

    loop.py write --round N ...     drafts (LLM) from the brief and the last critique; stores
                                    the draft as wc:<agent run id>:draft:N
    loop.py critique --round N ...  scores the draft: the share of the --must terms it mentions.
                                    Accepted (every term there) or out of rounds: stores the
                                    outcome as wc:<agent run id>:final and prints it. Otherwise
                                    submits round N+1 as a new run of the same agent run.

Both take ``--brief TEXT --must TERM [--must TERM ...] --max-rounds K`` (passed on from round to
round) and ``--llm module:function`` (default: ``TITAN_EXAMPLE_LLM``), a function that takes a
prompt and returns text; without one, a deterministic stand-in writes, adding one missing term
per round, so with the default stand-in the loop takes one round more than there are terms.
"""

import argparse
import importlib
import json
import os
import shlex
import sys
from collections.abc import Callable

from titan_sdk import TitanClient, TitanJob


def deterministic_llm(prompt: str) -> str:
    """The stand-in writer: the previous draft (or the brief) plus a sentence on the first term
    the critic said was missing."""
    fields = dict(line.split(": ", 1) for line in prompt.splitlines() if ": " in line)
    draft = fields.get("Previous draft") or fields["Write a short paragraph"].rstrip(".") + "."
    missing = [term for term in fields.get("The critic says it lacks", "").split(", ") if term]
    return f"{draft} It also covers {missing[0]}." if missing else draft


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
    """The agent run of this job's run; a run submitted without one (`titanctl submit`) starts
    one named after itself."""
    run_id = os.environ.get("TITAN_RUN_ID")
    if not run_id:
        sys.exit("outside Titan (no TITAN_RUN_ID), give --agent ID, the same to both roles")
    from titan_actors.client import MasterClient  # the SDK does not show a run's agent run id

    with MasterClient.from_environment(identity="writer-critic") as master:
        return master.run(run_id).run.agent_run_id or f"agent-{run_id}"


def write(opts, client: TitanClient, ns: str) -> None:
    lines = [f"Write a short paragraph: {opts.brief}", f"It must mention: {', '.join(opts.must)}"]
    if opts.round > 1:
        previous = must(client.store_get(f"{ns}:draft:{opts.round - 1}"), "write")
        critique = must(client.store_get(f"{ns}:critique:{opts.round - 1}"), "write")
        if "NULL" in (previous, critique):
            sys.exit(f"write: round {opts.round - 1} left no draft or critique under {ns}")
        lines += [f"Previous draft: {previous}",
                  f"The critic says it lacks: {', '.join(json.loads(critique)['missing'])}"]
    draft = load_llm(opts.llm)("\n".join(lines)).strip()
    must(client.store_put(f"{ns}:draft:{opts.round}", draft), "write: storing the draft")
    print(f"writer round {opts.round}: {draft}")


def critique(opts, client: TitanClient, ns: str) -> None:
    draft = must(client.store_get(f"{ns}:draft:{opts.round}"), "critique")
    if draft == "NULL":
        sys.exit(f"critique: no draft under {ns}:draft:{opts.round}")
    missing = [term for term in opts.must if term.lower() not in draft.lower()]
    score = round(1 - len(missing) / len(opts.must), 2)
    verdict = {"round": opts.round, "score": score, "missing": missing, "accepted": not missing}
    must(client.store_put(f"{ns}:critique:{opts.round}", json.dumps(verdict)), "critique")
    print(f"critic round {opts.round}: score {score}, lacks {missing or 'nothing'}")
    if not missing or opts.round >= opts.max_rounds:
        final = {**verdict, "rounds": opts.round, "draft": draft}
        must(client.store_put(f"{ns}:final", json.dumps(final)), "critique: storing the outcome")
        print(f"final after {opts.round} rounds: "
              f"{'accepted' if not missing else 'not accepted, out of rounds'}: {draft}")
        return
    next_round(opts, client, ns)


def next_round(opts, client: TitanClient, ns: str) -> None:
    """Submit round N+1 (its writer waits for this critic to end), once: a retried attempt of
    this job finds the marker and does not fork the loop."""
    n = opts.round + 1
    marker = f"{ns}:submitted:{n}"
    if must(client.store_get(marker), "critique: reading the marker") != "NULL":
        print(f"critic round {opts.round}: round {n} was already submitted")
        return
    common = ["--round", str(n), "--agent", opts.agent, "--brief", opts.brief,
              "--max-rounds", str(opts.max_rounds), "--llm", opts.llm,
              *(arg for term in opts.must for arg in ("--must", term))]
    me = [os.environ["TITAN_JOB_ID"]] if "TITAN_JOB_ID" in os.environ else []
    writer = TitanJob(f"writer-{n}", __file__, args=shlex.join(["write", *common]), parents=me)
    critic = TitanJob(f"critic-{n}", __file__, args=shlex.join(["critique", *common]),
                      parents=[writer.id])
    reply = client.submit_dag(f"writer_critic-round-{n}", [writer, critic],
                              agent_run_id=opts.agent)
    if reply != "DAG_ACCEPTED":
        sys.exit(f"critique: round {n} was refused: {reply}")
    must(client.store_put(marker, "yes"), "critique: storing the marker")
    print(f"critic round {opts.round}: submitted round {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["write", "critique"])
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--brief", required=True)
    parser.add_argument("--must", action="append", required=True)
    parser.add_argument("--max-rounds", type=int, default=5)
    parser.add_argument("--agent", default="", help="the agent run id (default: this run's)")
    parser.add_argument("--llm", default=os.environ.get("TITAN_EXAMPLE_LLM", ""))
    opts = parser.parse_args()
    opts.agent = opts.agent or own_agent_run_id()
    with TitanClient() as client:
        (write if opts.role == "write" else critique)(opts, client, f"wc:{opts.agent}")


if __name__ == "__main__":
    main()
