"""Writer: count the words of --text and PUT each count into kv-api, found through the
variable TITAN_SERVICE_KV_API ("host:port", set by the master for a child of the service)."""

import argparse
import os
import sys
import urllib.request
from collections import Counter

address = os.environ.get("TITAN_SERVICE_KV_API")
if not address:
    sys.exit("writer: TITAN_SERVICE_KV_API is not set: run me as a child of the kv-api service "
             "(by hand: TITAN_SERVICE_KV_API=127.0.0.1:8765)")
parser = argparse.ArgumentParser()
parser.add_argument("--text", required=True)
opts = parser.parse_args()
counts = Counter(opts.text.split())
for word, count in sorted(counts.items()):
    request = urllib.request.Request(f"http://{address}/kv/{word}", data=str(count).encode(),
                                     method="PUT")
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()
print(f"writer: put {len(counts)} word counts into kv-api at {address}")
