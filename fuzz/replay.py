"""Run inputs through the fuzz targets once, without atheris: `python -m fuzz.replay [TARGET...]`
replays each target's committed corpus (fuzz/corpus/TARGET/: seeds and regressions);
`python -m fuzz.replay TARGET FILE...` replays the given files (a finding from fuzz.campaign).

Deterministic and quick: how the test suite checks that every input that ever broke a rule still
keeps it, and how a finding is reproduced with its traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from fuzz.targets import TARGETS

CORPUS = Path(__file__).resolve().parent / "corpus"


def replay(target: str, files: Sequence[Path]) -> list[str]:
    """The failures, one text each (file name and traceback)."""
    module = importlib.import_module(f"fuzz.targets.{target}")
    module.prepare()
    failures = []
    for path in files:
        try:
            module.one_input(path.read_bytes())
        except Exception:
            failures.append(f"{target} {path}:\n{traceback.format_exc()}")
    return failures


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] in TARGETS and len(argv) > 1:
        runs = {argv[0]: [Path(a) for a in argv[1:]]}
    else:
        runs = {t: sorted((CORPUS / t).iterdir()) for t in (argv or TARGETS)}
    failures = []
    for target, files in runs.items():
        failures += replay(target, files)
        print(f"{target}: {len(files)} inputs replayed")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{sum(map(len, runs.values())) - len(failures)} inputs kept every rule, {len(failures)} broke one")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
