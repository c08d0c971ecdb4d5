"""Map: count the words of one part of the text, write counts-<part>.json.

The text travels inside the script, because a job carries its script to whichever worker
runs it (the Gettysburg Address, public domain).
"""

import argparse
import json
import re
from collections import Counter
from pathlib import Path

TEXT = """
Four score and seven years ago our fathers brought forth on this continent, a new nation,
conceived in Liberty, and dedicated to the proposition that all men are created equal.
Now we are engaged in a great civil war, testing whether that nation, or any nation so
conceived and so dedicated, can long endure. We are met on a great battle-field of that war.
We have come to dedicate a portion of that field, as a final resting place for those who here
gave their lives that that nation might live. It is altogether fitting and proper that we
should do this. But, in a larger sense, we can not dedicate -- we can not consecrate -- we can
not hallow -- this ground. The brave men, living and dead, who struggled here, have
consecrated it, far above our poor power to add or detract. The world will little note, nor
long remember what we say here, but it can never forget what they did here. It is for us the
living, rather, to be dedicated here to the unfinished work which they who fought here have
thus far so nobly advanced. It is rather for us to be here dedicated to the great task
remaining before us -- that from these honored dead we take increased devotion to that cause
for which they gave the last full measure of devotion -- that we here highly resolve that
these dead shall not have died in vain -- that this nation, under God, shall have a new birth
of freedom -- and that government of the people, by the people, for the people, shall not
perish from the earth.
"""

parser = argparse.ArgumentParser()
parser.add_argument("--part", type=int, required=True)
parser.add_argument("--parts", type=int, required=True)
opts = parser.parse_args()
lines = [line for line in TEXT.strip().splitlines() if line]
mine = lines[opts.part::opts.parts]
counts = Counter(re.findall(r"[a-z]+(?:-[a-z]+)*", " ".join(mine).lower()))
out = Path(f"counts-{opts.part}.json")
out.write_text(json.dumps(counts, sort_keys=True))
print(f"map-{opts.part}: {len(mine)} lines, {sum(counts.values())} words, "
      f"{len(counts)} distinct -> {out}")
