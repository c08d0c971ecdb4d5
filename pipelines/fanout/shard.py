"""Fan-out, one shard: add up the squares in its slice, write shard-<n>.txt."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--shard", type=int, required=True)
parser.add_argument("--shards", type=int, required=True)
parser.add_argument("--limit", type=int, required=True)
opts = parser.parse_args()
step = -(-opts.limit // opts.shards)
start, stop = opts.shard * step, min(opts.limit, (opts.shard + 1) * step)
total = sum(n * n for n in range(start, stop))
Path(f"shard-{opts.shard}.txt").write_text(f"{total}\n")
print(f"shard-{opts.shard}: squares of {start}..{stop - 1} add up to {total}")
