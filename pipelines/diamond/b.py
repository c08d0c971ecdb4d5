"""Diamond, left: read a's seed, double it, write b.txt."""

from pathlib import Path

seed = int(Path("a.txt").read_text())
Path("b.txt").write_text(f"{seed * 2}\n")
print(f"b: read {seed} from a.txt, wrote {seed * 2} to b.txt")
