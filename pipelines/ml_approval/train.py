"""Train: fit y = a*x + b on every training row by gradient descent (a fixed number of epochs,
so every run gives the same model) and write model.json. Runs only once the gate after
evaluate was approved."""

import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=300)
parser.add_argument("--rate", type=float, default=0.02)
opts = parser.parse_args()
with open("train.json") as f:
    rows = json.load(f)
a = b = 0.0
n = len(rows)
for _ in range(opts.epochs):
    grad_a = sum(2 * (a * x + b - y) * x for x, y in rows) / n
    grad_b = sum(2 * (a * x + b - y) for x, y in rows) / n
    a, b = a - opts.rate * grad_a, b - opts.rate * grad_b
loss = sum((a * x + b - y) ** 2 for x, y in rows) / n
with open("model.json", "w") as out:
    json.dump({"a": a, "b": b, "train_mse": loss, "epochs": opts.epochs}, out)
print(f"train: y = {a:.3f}x {b:+.3f} after {opts.epochs} epochs on {n} rows; training MSE "
      f"{loss:.4f}")
