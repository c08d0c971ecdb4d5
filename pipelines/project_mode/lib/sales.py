"""Reading and summing the example's sales figures."""

import csv


def totals_by_region(path):
    """Return {region: total} for the CSV at ``path`` (columns region, amount)."""
    totals = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            totals[row["region"]] = totals.get(row["region"], 0) + int(row["amount"])
    return dict(sorted(totals.items()))
