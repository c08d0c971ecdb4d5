"""Prepare: make a deterministic data set, y = 3x - 2 plus a little noise, and split it into
train.json (80 %) and holdout.json (20 %) in the working directory."""

import argparse
import json
import random

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=200)
parser.add_argument("--seed", type=int, default=7)
opts = parser.parse_args()
rng = random.Random(opts.seed)  # seeded: every run makes the same data
rows = []
for _ in range(opts.rows):
    x = rng.uniform(-5.0, 5.0)
    rows.append([round(x, 4), round(3.0 * x - 2.0 + rng.gauss(0.0, 0.5), 4)])
cut = opts.rows * 4 // 5
with open("train.json", "w") as out:
    json.dump(rows[:cut], out)
with open("holdout.json", "w") as out:
    json.dump(rows[cut:], out)
print(f"prepare: {cut} training rows in train.json, {opts.rows - cut} holdout rows in "
      f"holdout.json (seed {opts.seed})")
