"""The fuzz targets (fuzz/README.md) as part of the suite: every committed input (seeds, and the
regressions of what fuzzing found) replayed, then a short fuzzing run per target with a fixed seed.
Both run in child processes: the targets set up a server of their own (event loop, working
directory), and libFuzzer ends its process when it is done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import campaign
from fuzz.targets import TARGETS
from tests.support.process import ROOT

SHORT_RUN_SECONDS = 25


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.parametrize("target", TARGETS)
def test_committed_corpus_keeps_every_rule(target: str) -> None:
    done = subprocess.run([sys.executable, "-m", "fuzz.replay", target], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "inputs replayed" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_short_seeded_run_finds_nothing(target: str, tmp_path: Path) -> None:
    """`python -m fuzz.campaign --seconds 25 --seed 1`: the long run is `make fuzz` (fuzz/README.md)."""
    result = campaign.run_target(target, tmp_path, seed=1, runs=None, seconds=SHORT_RUN_SECONDS)
    print(result.row())
    assert result.ok, campaign.report([result], 1)
    assert result.inputs > 0
