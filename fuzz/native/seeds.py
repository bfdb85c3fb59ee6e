"""Writes the seed corpus of the native fuzz target (fuzz/native/corpus/seeds): a few inputs per
operation of harness.py, and pairs of operations that meet (a made-up template, then questions for
it; a template, then a changed dependency, then the question again; a drain after stores).

An input is one byte choosing the limits, then operations: an opcode byte and the choices that
operation reads (harness.Reader). The choices here come from a seeded RNG, so the corpus is the
same on every run: `.venv/bin/python -m fuzz.native.seeds` rewrites it.
"""

from __future__ import annotations

import random
from pathlib import Path

from fuzz.native import harness as h

OUT = Path(__file__).resolve().parent / "corpus" / "seeds"

SEQUENCES = [
    *[[op] for op in range(10)],
    [h.STORE_MADE, h.QUERY],
    [h.STORE_MADE, h.QUERY, h.QUERY],
    [h.STORE_REAL, h.QUERY, h.DEP, h.QUERY],
    [h.STORE_REAL, h.REAL_DEP, h.QUERY],
    [h.STORE_MADE, h.SERIAL, h.QUERY, h.HARVEST],
    [h.STORE_REAL, h.STORE_MADE, h.DRAIN],
    [h.DRAIN, h.DRAIN, h.HARVEST],
    [h.STORE_REAL, h.STORE_REAL, h.STORE_REAL, h.STORE_REAL, h.QUERY],
    [h.QUERY, h.CLEAR, h.QUERY],
]


def seed(rng: random.Random, limits: int, ops: list[int]) -> bytes:
    out = bytes((limits,))
    for op in ops:
        out += bytes((op,)) + rng.randbytes(rng.randrange(24, 80))
    return out


def main() -> None:
    rng = random.Random(15)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    n = 0
    for ops in SEQUENCES:
        for limits in (0, 1):
            for _ in range(2):
                (OUT / f"{n:03d}-{'-'.join(map(str, ops))}").write_bytes(seed(rng, limits, ops))
                n += 1
    print(f"{n} seeds in {OUT}")


if __name__ == "__main__":
    main()
