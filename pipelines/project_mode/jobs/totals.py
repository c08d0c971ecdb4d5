"""Sum the sales per region and hand the result to the next job through the store."""

import json
import os
import sys

from lib.sales import totals_by_region  # the project's own package: its root is on PYTHONPATH

from titan_sdk import TitanClient

totals = totals_by_region(sys.argv[1])
print("totals:", totals)
TitanClient().store_put(f"project_mode:{os.environ['TITAN_RUN_ID']}:totals", json.dumps(totals))
