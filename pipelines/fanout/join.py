"""Fan-in: add up the shard results found here, and check the total when all are here."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--shards", type=int, required=True)
parser.add_argument("--limit", type=int, required=True)
opts = parser.parse_args()
found = {n: int(Path(f"shard-{n}.txt").read_text())
         for n in range(opts.shards) if Path(f"shard-{n}.txt").exists()}
total = sum(found.values())
print(f"join: all {opts.shards} shards completed; {len(found)} left their result on this worker")
if len(found) == opts.shards:
    n = opts.limit - 1
    expected = n * (n + 1) * (2 * n + 1) // 6
    status = "matches" if total == expected else f"DOES NOT MATCH {expected}"
    print(f"join: the squares of 0..{n} add up to {total}, which {status} n(n+1)(2n+1)/6")
    if total != expected:
        raise SystemExit(1)
else:
    print(f"join: partial sum {total}; the other shards ran on other workers")
