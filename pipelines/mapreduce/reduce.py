"""Reduce: add up the partial counts the map jobs left in the working directory."""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--parts", type=int, required=True)
parser.add_argument("--top", type=int, default=10)
opts = parser.parse_args()
missing = [n for n in range(opts.parts) if not Path(f"counts-{n}.json").exists()]
if missing:
    sys.exit(f"reduce: no partial counts from map-{', map-'.join(map(str, missing))} in "
             f"{Path.cwd()}; those maps ran on another worker (the working directory is per "
             "worker: run one worker, or pin the jobs with `worker:`)")
total: Counter[str] = Counter()
for n in range(opts.parts):
    total.update(json.loads(Path(f"counts-{n}.json").read_text()))
print(f"reduce: {sum(total.values())} words, {len(total)} distinct, from {opts.parts} parts")
for word, count in total.most_common(opts.top):
    print(f"  {count:3d}  {word}")
