"""Run the fuzz targets one after another and report inputs, time, findings and memory.

    python -m fuzz.campaign --seconds 25              # the short run `make test` does (seed 1)
    python -m fuzz.campaign --runs 1000000            # the long run (`make fuzz`)
    python -m fuzz.campaign --targets packet --runs 200000 --seed 7 --workdir /tmp/f

Each target runs in its own process (fuzz.run, libFuzzer through atheris) with a fixed seed, the
committed corpus fuzz/corpus/TARGET/ as its seed corpus (read only) and a scratch corpus in
--workdir, where new inputs and the input of any finding (`crash-…`, `timeout-…`, `oom-…`) are
written. An input that runs over 10 s or makes the process pass 2 GiB is a finding too. The report
gives, per target: inputs run, seconds, findings, peak RSS (the process's high-water mark), and the
RSS libFuzzer printed first and last, which shows whether memory stays flat over the run.
Exit status 1 when any target had a finding.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"
# The largest input libFuzzer makes per target: a UDP query kdns reads whole (_hotpath.MAX_QUERY),
# a Corefile of several blocks, and a zone file of a few dozen records (longer seeds are cut there:
# the grammar fits in that, and large inputs only slow each run down — 4 ms for a 5 KB zone).
MAX_LEN = {"packet": 4096, "corefile": 8192, "zonefile": 2048}
TIMEOUT_S = 10
RSS_LIMIT_MB = 2048
_STATUS = re.compile(r"^#(\d+)\s+\S+.*?rss: (\d+)Mb", re.MULTILINE)
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)


@dataclass
class Result:
    target: str
    inputs: int
    seconds: float
    findings: list[Path]
    peak_rss_mb: float
    first_rss_mb: int  # libFuzzer's first status line (after the seed corpus ran)
    last_rss_mb: int
    returncode: int
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.findings

    def row(self) -> str:
        found = ", ".join(p.name for p in self.findings) or "0"
        return (f"| {self.target} | {self.inputs:,} | {self.seconds:.0f} | {found} "
                f"| {self.peak_rss_mb:.0f} MiB | {self.first_rss_mb} → {self.last_rss_mb} MiB |")  # fmt: skip


def command(target: str, workdir: Path, seed: int, runs: int | None, seconds: int | None) -> list[str]:
    """The fuzz.run command line for one target."""
    scratch = workdir / target / "corpus"
    scratch.mkdir(parents=True, exist_ok=True)
    limits = [f"-runs={runs}"] if runs else []
    limits += [f"-max_total_time={seconds}"] if seconds else []
    return [
        sys.executable, "-m", "fuzz.run", target,
        f"-seed={seed}", *limits,
        f"-max_len={MAX_LEN[target]}", f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-artifact_prefix={workdir / target}/", "-print_final_stats=1",
        str(scratch), str(CORPUS / target),
    ]  # fmt: skip


def run_target(target: str, workdir: Path, seed: int, runs: int | None, seconds: int | None) -> Result:
    log = workdir / f"{target}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command(target, workdir, seed, runs, seconds), stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=ROOT)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    statuses = [(int(n), int(rss)) for n, rss in _STATUS.findall(text)]
    done = _DONE.search(text)
    inputs = int(done.group(1)) if done else (statuses[-1][0] if statuses else 0)
    findings = sorted(p for p in (workdir / target).iterdir() if p.name.split("-")[0] in
                      ("crash", "timeout", "oom", "leak", "slow"))  # fmt: skip
    return Result(
        target,
        inputs,
        elapsed,
        findings,
        usage.ru_maxrss / 1024,  # Linux: KiB
        statuses[0][1] if statuses else 0,
        statuses[-1][1] if statuses else 0,
        proc.returncode,
        log,
    )


def report(results: Sequence[Result], seed: int) -> str:
    lines = [
        f"seed {seed}",
        "| target | inputs | seconds | findings | peak RSS | RSS first → last |",
        "|---|---|---|---|---|---|",
        *(r.row() for r in results),
    ]
    for r in results:
        if not r.ok:
            lines.append(f"\n{r.target}: exit {r.returncode}, log {r.log}:\n" + _tail(r.log))
    return "\n".join(lines)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated (default: all)")
    parser.add_argument("--runs", type=int, help="inputs per target")
    parser.add_argument("--seconds", type=int, help="seconds per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    args = parser.parse_args(argv)
    if not args.runs and not args.seconds:
        parser.error("give --runs, --seconds or both")
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; targets: {', '.join(TARGETS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdns-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        results.append(run_target(target, workdir, args.seed, args.runs, args.seconds))
        print(results[-1].row(), flush=True)
    text = report(results, args.seed)
    (workdir / "summary.md").write_text(text + "\n")
    print(f"\n{text}\n\nlogs, corpora and findings: {workdir}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
