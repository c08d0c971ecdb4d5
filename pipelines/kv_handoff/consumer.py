"""Consumer: read the names in the set kv:<run id>:items and each kv:<run id>:item:<name> the
producer stored, print them and their total, and store the total as kv:<run id>:total.

It runs after the producer (its parent), so everything is there: it never polls.
"""

import os
import sys

from titan_sdk import TitanClient


def checked(reply, what):
    if isinstance(reply, str) and reply.startswith(("ERROR:", "CONNECTION_ERROR:")):
        sys.exit(f"consumer: {what}: {reply}")
    return reply


ns = f"kv:{os.environ.get('TITAN_RUN_ID', 'by-hand')}"
with TitanClient() as client:
    names = sorted(checked(client.store_smembers(f"{ns}:items"), "reading the set"))
    if not names:
        sys.exit(f"consumer: the set {ns}:items is empty; did the producer run in this run?")
    counts = {name: checked(client.store_get(f"{ns}:item:{name}"), name) for name in names}
    missing = [name for name, count in counts.items() if count == "NULL"]
    if missing:
        sys.exit(f"consumer: {ns}:items names {missing} but their keys are missing")
    total = sum(int(count) for count in counts.values())
    checked(client.store_put(f"{ns}:total", str(total)), "storing the total")
    producer = client.store_get(f"{ns}:producer")
print(f"consumer: got {', '.join(f'{n}={c}' for n, c in counts.items())} from the producer "
      f"({producer}), total {total}")
