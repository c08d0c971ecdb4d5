"""Print a report from the totals the previous job stored."""

import json
import os

from titan_sdk import TitanClient

totals = json.loads(TitanClient().store_get(f"project_mode:{os.environ['TITAN_RUN_ID']}:totals"))
best = max(totals, key=totals.get)
print(f"{len(totals)} regions, {sum(totals.values())} in all; best: {best} ({totals[best]})")
