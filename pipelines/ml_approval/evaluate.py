"""Evaluate: fit a quick baseline (least squares on the first 20 training rows) and measure it
on the holdout rows; write baseline.json. A person reads these numbers at the gate that
follows this job (hitl_message) before the full training runs."""

import json


def fit(rows):
    """Least squares for y = a*x + b, in closed form."""
    n = len(rows)
    mean_x = sum(x for x, _ in rows) / n
    mean_y = sum(y for _, y in rows) / n
    var = sum((x - mean_x) ** 2 for x, _ in rows)
    a = sum((x - mean_x) * (y - mean_y) for x, y in rows) / var
    return a, mean_y - a * mean_x


def mse(model, rows):
    a, b = model
    return sum((a * x + b - y) ** 2 for x, y in rows) / len(rows)


with open("train.json") as f:
    train = json.load(f)
with open("holdout.json") as f:
    holdout = json.load(f)
a, b = fit(train[:20])
error = mse((a, b), holdout)
with open("baseline.json", "w") as out:
    json.dump({"a": a, "b": b, "holdout_mse": error}, out)
print(f"evaluate: baseline y = {a:.3f}x {b:+.3f} on 20 rows; holdout MSE {error:.4f}")
print(f"evaluate: waiting for approval to train on all {len(train)} rows "
      "(titanctl approve hitl-gate-evaluate)")
