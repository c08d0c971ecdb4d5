"""Diamond, bottom: read what b and c wrote and add them up."""

import sys
from pathlib import Path

missing = [name for name in ("b.txt", "c.txt") if not Path(name).exists()]
if missing:
    sys.exit(f"d: {', '.join(missing)} not in {Path.cwd()}: b and c ran on another worker "
             "(the working directory is per worker; pin the jobs with `worker:`)")
b = int(Path("b.txt").read_text())
c = int(Path("c.txt").read_text())
print(f"d: b.txt says {b}, c.txt says {c}, together {b + c}")
