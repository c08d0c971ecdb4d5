"""Diamond, right: read a's seed, square it, write c.txt."""

from pathlib import Path

seed = int(Path("a.txt").read_text())
Path("c.txt").write_text(f"{seed * seed}\n")
print(f"c: read {seed} from a.txt, wrote {seed * seed} to c.txt")
