"""Fan-out, split: print which numbers each shard will take."""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--shards", type=int, required=True)
parser.add_argument("--limit", type=int, required=True)
opts = parser.parse_args()
step = -(-opts.limit // opts.shards)
print(f"split: the squares of 0..{opts.limit - 1} go to {opts.shards} shards")
for shard in range(opts.shards):
    start, stop = shard * step, min(opts.limit, (shard + 1) * step)
    print(f"split: shard-{shard} takes {start}..{stop - 1}")
