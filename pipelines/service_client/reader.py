"""Reader: read every count back from kv-api, print the total, then stop the service through
the SDK so that the run can end (a service runs until it is stopped)."""

import json
import os
import sys
import urllib.request

address = os.environ.get("TITAN_SERVICE_KV_API")
if not address:
    sys.exit("reader: TITAN_SERVICE_KV_API is not set: run me as a child of the kv-api service "
             "(by hand: TITAN_SERVICE_KV_API=127.0.0.1:8765)")
with urllib.request.urlopen(f"http://{address}/kv", timeout=10) as reply:
    counts = {word: int(count) for word, count in json.load(reply).items()}
top = max(sorted(counts), key=counts.get)
print(f"reader: {len(counts)} words, {sum(counts.values())} in all; most frequent: "
      f"{top!r} ({counts[top]})")
if "TITAN_JOB_ID" not in os.environ:
    print("reader: run by hand, so the service is yours to stop (Ctrl-C)")
    sys.exit(0)
from titan_sdk import TitanClient  # noqa: E402 - only inside a job

with TitanClient() as client:
    reply = client.stop_service("kv-api")  # a bare id: the service of this job's own run
print(f"reader: {reply}")
if not reply.startswith("STOPPED:"):
    sys.exit(1)  # a service left running would keep the run from ending
