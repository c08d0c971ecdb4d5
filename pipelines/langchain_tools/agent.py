"""A LangChain agent that drives a Titan cluster through the tools of titan_tools.py; no LLM key
needed.

    python pipelines/langchain_tools/agent.py [--session ID] [--llm module:function]

``TITAN_HOST`` / ``TITAN_PORT`` name the master, as for the SDK. The loop is LangChain's: the
model answers an AIMessage; each tool call in it runs through ``tool.invoke(call)``, whose
ToolMessage goes back to the model; an answer without tool calls is the final one.

The model is pluggable: ``--llm`` (default: ``TITAN_EXAMPLE_LLM``) names a function
``(messages, tools) -> AIMessage``, such as one returning
``ChatOpenAI(model=...).bind_tools(tools).invoke(messages)``. Without one, a scripted stand-in
answers: it puts the task's text in the store, runs a one-job DAG that counts its words into
another key, reads the job's output and the count, and answers with the count.
"""

import argparse
import importlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool
from titan_tools import make_tools

from titan_sdk import TitanClient

TEXT = ("Titan runs DAGs of jobs across a few machines; agents plan the next stage from the "
        "data, fan out workers and hand results over through the store.")
WORD_COUNT = """\
import sys
from titan_sdk import TitanClient
source, target = sys.argv[1:3]
client = TitanClient()
text = client.store_get(source)
if text == "NULL" or text.startswith(("ERROR:", "CONNECTION_ERROR:")):
    sys.exit(f"wordcount: nothing to count under {source}: {text}")
print(f"wordcount: {len(text.split())} words under {source}")
client.store_put(target, str(len(text.split())))
"""
Model = Callable[[Sequence[BaseMessage], Sequence[BaseTool]], AIMessage]


def scripted_model(messages: Sequence[BaseMessage], tools: Sequence[BaseTool]) -> AIMessage:
    """The stand-in for a chat model: the same plan every time, each step reading the task and
    the tools' answers so far; it gives up, saying why, when a tool failed."""
    task = messages[0].content
    session = re.match(r"Session (\S+):", task).group(1)
    text = task.split("\n\n", 1)[1]
    answers = [m for m in messages if isinstance(m, ToolMessage)]
    if answers and answers[-1].status == "error":
        return AIMessage(content=f"Gave up: {answers[-1].name} failed: {answers[-1].content}")
    job_id = f"wordcount-{session}"
    plan = [
        ("store_put", {"key": f"{session}:text", "value": text}),
        ("submit_dag", {"dag_name": "wordcount", "agent_run_id": session, "jobs": [
            {"job_id": job_id, "script_content": WORD_COUNT,
             "args": f"{session}:text {session}:count"}]}),
        ("job_logs", {"job_id": job_id}),
        ("store_get", {"key": f"{session}:count"}),
    ]
    step = len(answers)
    if step < len(plan):
        name, args = plan[step]
        call = {"name": name, "args": args, "id": f"call-{step}"}
        return AIMessage(content="", tool_calls=[call])
    status = json.loads(answers[1].content)["jobs"][job_id]
    count = json.loads(answers[3].content)["value"]
    return AIMessage(content=f"The text has {count} words (job {job_id}: {status}).")


def load_model(spec: str) -> Model:
    """The function ``module:function`` names, or the scripted stand-in for ``""``."""
    if not spec:
        return scripted_model
    module, _, name = spec.partition(":")
    if not module or not name:
        sys.exit(f"--llm {spec!r}: give module:function (such as mypkg.agent:model)")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        sys.exit(f"--llm {spec!r} cannot be loaded: {error}")


def run_agent(task: str, tools: Sequence[BaseTool], model: Model,
              max_steps: int = 10) -> list[BaseMessage]:
    """Run the tool loop until the model answers without tool calls; return the messages."""
    by_name = {t.name: t for t in tools}
    messages: list[BaseMessage] = [HumanMessage(task)]
    for _ in range(max_steps):
        reply = model(messages, tools)
        messages.append(reply)
        if not reply.tool_calls:
            return messages
        for call in reply.tool_calls:
            if call["name"] not in by_name:
                messages.append(ToolMessage(f"no tool {call['name']!r}; there are "
                                            f"{sorted(by_name)}", tool_call_id=call["id"],
                                            name=call["name"], status="error"))
                continue
            messages.append(by_name[call["name"]].invoke(call))
    sys.exit(f"agent: no final answer after {max_steps} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default=f"lc-{uuid.uuid4().hex[:8]}",
                        help="names the store keys and the agent run id")
    parser.add_argument("--llm", default=os.environ.get("TITAN_EXAMPLE_LLM", ""))
    opts = parser.parse_args()
    task = (f"Session {opts.session}: count the words of the text below with a Titan job, "
            f"keeping data in the store under '{opts.session}:'.\n\n{TEXT}")
    with TitanClient() as client:
        messages = run_agent(task, make_tools(client), load_model(opts.llm))
    failed = False
    for message in messages[1:]:
        if isinstance(message, ToolMessage):
            failed = failed or message.status == "error"
            print(f"  <- {message.name}: {message.content[:200]}")
        elif message.tool_calls:
            for call in message.tool_calls:
                print(f"  -> {call['name']}({', '.join(sorted(call['args']))})")
    print(messages[-1].content)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
