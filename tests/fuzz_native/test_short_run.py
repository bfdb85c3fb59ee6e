"""The C replay's fuzz target (fuzz/native/README.md) runs clean for 30 s from its committed corpus:
every earlier finding's input (corpus/regressions), the seeds, then mutations, with the extension
built with ASan and UBSan and every result checked against the pure-Python twin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_seeded_run_finds_nothing(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [sys.executable, str(ROOT / "fuzz/native/run.py"), "--build", "--dir", str(tmp_path),
               "--seconds", "30", "--report", str(report)]  # fmt: skip
    env = {**os.environ, "KDNS_PYTHON": sys.executable}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    summary = json.loads(report.read_text())
    assert summary["findings"] == [] and summary["sanitizer_reports"] == 0
    assert summary["inputs"] > 1000, summary  # the corpus ran, and mutations after it
