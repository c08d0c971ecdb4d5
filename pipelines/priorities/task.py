"""Priorities: say which job this is, its priority and when it started."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--name", required=True)
parser.add_argument("--priority", type=int, required=True)
parser.add_argument("--note", default="")
opts = parser.parse_args()
now = time.time()
stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
note = f" ({opts.note})" if opts.note else ""
print(f"{opts.name}: priority {opts.priority}, started at {stamp}{note}")
