"""Model test: random appends, rewrites, reopens and torn writes; replay always equals the model."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from titan_actors.aof import AppendOnlyFile, FsyncPolicy, replay
from titan_actors.aof import record as rec

T = 5.0
KEYS = st.sampled_from(["a", "b", "c", "d"])

OPS = st.one_of(
    st.tuples(st.just("put"), KEYS, st.text(max_size=12)),
    st.tuples(st.just("del"), KEYS),
    st.tuples(st.just("rewrite")),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("torn"), st.integers(min_value=1, max_value=40)),
)


def encode(op) -> bytes:
    return ("S" + op[1] + "=" + op[2] if op[0] == "put" else "D" + op[1]).encode()


def apply(state: dict[str, str], record: bytes) -> None:
    text = record.decode()
    if text[0] == "S":
        key, value = text[1:].split("=", 1)
        state[key] = value
    else:
        state.pop(text[1:], None)


def no_fsync(fd: int) -> None:
    """Durability is not what this test checks; skipping fsync keeps it fast."""


@given(ops=st.lists(OPS, max_size=40), policy=st.sampled_from(list(FsyncPolicy)))
@settings(max_examples=100, deadline=None)
def test_replay_equals_the_model(ops, policy):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.aof"
        state: dict[str, str] = {}
        expected: list[bytes] = []  # exactly the records the file must hold
        aof = AppendOnlyFile.open(path, policy, fsync=no_fsync)
        barriers = []
        for op in ops:
            kind = op[0]
            if kind in ("put", "del"):
                record = encode(op)
                barriers.append(aof.append(record))
                expected.append(record)
                apply(state, record)
            elif kind == "rewrite":
                snapshot = [f"S{k}={v}".encode() for k, v in sorted(state.items())]
                aof.rewrite(snapshot)
                expected = snapshot
            else:
                for b in barriers:
                    b.wait(T)
                aof.close()
                if kind == "torn":  # a crash in the middle of writing one more record
                    with open(path, "ab") as f:
                        f.write(rec.encode_record(b"Sz=torn" + b"x" * 40)[:op[1]])
                aof = AppendOnlyFile.open(path, policy, fsync=no_fsync)
                assert list(aof.replayed.records) == expected
        for b in barriers:
            b.wait(T)
        aof.close()
        result = replay(path)
        assert list(result.records) == expected and result.damage is None
        rebuilt: dict[str, str] = {}
        for r in result.records:
            apply(rebuilt, r)
        assert rebuilt == state
