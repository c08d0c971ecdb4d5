"""Diamond, top: write the seed to a.txt for b and c."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=1)
seed = parser.parse_args().seed
Path("a.txt").write_text(f"{seed}\n")
print(f"a: wrote seed {seed} to a.txt in {Path.cwd()}")
