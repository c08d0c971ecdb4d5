"""Producer: put each --item NAME=COUNT in the store as kv:<run id>:item:<NAME>, add NAME to the
set kv:<run id>:items, and note where it ran under kv:<run id>:producer."""

import argparse
import os
import socket
import sys

from titan_sdk import TitanClient


def checked(reply, what):
    if isinstance(reply, str) and reply.startswith(("ERROR:", "CONNECTION_ERROR:")):
        sys.exit(f"producer: {what}: {reply}")
    return reply


parser = argparse.ArgumentParser()
parser.add_argument("--item", action="append", required=True, help="NAME=COUNT")
opts = parser.parse_args()
ns = f"kv:{os.environ.get('TITAN_RUN_ID', 'by-hand')}"
items = [item.partition("=") for item in opts.item]
bad = [item for item, (name, _, count) in zip(opts.item, items, strict=True)
       if not name or not count.isdigit()]
if bad:  # checked before anything is stored
    sys.exit(f"producer: --item {', '.join(bad)}: give NAME=COUNT (apples=3)")
with TitanClient() as client:
    for name, _, count in items:
        checked(client.store_put(f"{ns}:item:{name}", count), f"storing {name}")
        checked(client.store_sadd(f"{ns}:items", name), f"adding {name} to the set")
    checked(client.store_put(f"{ns}:producer", f"{socket.gethostname()} pid {os.getpid()}"),
            "saying where it ran")
print(f"producer: put {len(opts.item)} items under {ns}:item:<name> "
      f"({', '.join(opts.item)}) and their names in the set {ns}:items")
