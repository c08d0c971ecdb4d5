"""Report: compare the trained model with the baseline on the holdout rows."""

import json

with open("holdout.json") as f:
    holdout = json.load(f)
with open("baseline.json") as f:
    baseline = json.load(f)
with open("model.json") as f:
    model = json.load(f)
error = sum((model["a"] * x + model["b"] - y) ** 2 for x, y in holdout) / len(holdout)
print(f"report: trained y = {model['a']:.2f}x {model['b']:+.2f} (the truth: y = 3.00x -2.00)")
print(f"report: holdout MSE {error:.4f}, the baseline's {baseline['holdout_mse']:.4f}")
