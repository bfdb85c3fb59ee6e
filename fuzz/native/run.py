"""Runs the native fuzz target (fuzz/native/README.md): builds it if asked, runs libFuzzer over the
committed corpus (regressions first, then seeds) plus a working corpus, samples the process's RSS
while it runs, and prints (and writes, with --report) what happened: inputs, seconds, findings,
sanitizer reports, RSS over time. Exit status 0 only when nothing was found and memory stayed flat.

    .venv/bin/python fuzz/native/run.py --build --seconds 30           # what `make test` runs
    .venv/bin/python fuzz/native/run.py --build --runs 1000000 --report fuzz/native/build/long.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = (HERE / "corpus" / "regressions", HERE / "corpus" / "seeds")
STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+).*?exec/s: (\d+) rss: (\d+)Mb")
# What a sanitizer or the harness prints when it finds something.
REPORTS = re.compile(r"ERROR: AddressSanitizer|runtime error:|ERROR: libFuzzer|Mismatch|the harness raised")


@dataclass
class Summary:
    inputs: int = 0
    seconds: float = 0.0
    exit_code: int = 0
    coverage: int = 0
    corpus_inputs: int = 0
    findings: list[str] = field(default_factory=list)  # artifacts libFuzzer wrote (crash-, oom-, ...)
    sanitizer_reports: int = 0
    peak_rss_mb: int = 0
    rss_mb: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS) sampled
    rss_growth_mb: int = 0  # RSS at the end minus RSS once warm (a quarter of the way)

    def ok(self, max_growth_mb: int) -> bool:
        # Growth is judged on runs of 5 minutes or more: before, ASan's quarantine (64 MiB) and the
        # working corpus are still filling.
        flat = self.seconds < 300 or self.rss_growth_mb <= max_growth_mb
        return self.exit_code == 0 and not self.findings and not self.sanitizer_reports and flat


def build(out: Path) -> Path:
    started = time.monotonic()
    subprocess.run([str(HERE / "build.sh"), str(out)], check=True, stdout=subprocess.DEVNULL)
    print(f"built {out / 'replay-fuzzer'} in {time.monotonic() - started:.1f} s", flush=True)
    return out / "replay-fuzzer"


def rss_of(pid: int) -> int:
    """Resident set size in MiB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def run(binary: Path, work: Path, args: argparse.Namespace) -> Summary:
    work.mkdir(parents=True, exist_ok=True)
    artifacts = work.parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    earlier = set(artifacts.iterdir())
    limit = [f"-runs={args.runs}"] if args.runs else [f"-max_total_time={args.seconds}"]
    command = [
        str(binary), *limit, f"-seed={args.seed}", "-max_len=1024", "-timeout=60", "-detect_leaks=0",
        f"-rss_limit_mb={args.rss_limit_mb}", "-malloc_limit_mb=512", "-print_final_stats=1",
        "-reload=0", f"-artifact_prefix={artifacts}/", str(work), *map(str, CORPUS),
    ]  # fmt: skip
    summary = Summary()
    started = time.monotonic()
    log = (work.parent / "fuzz.log").open("w")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=log, text=True, errors="replace")
    done = threading.Event()

    def sample() -> None:
        while not done.wait(args.sample_every):
            rss = rss_of(process.pid)
            if rss:
                summary.rss_mb.append((round(time.monotonic() - started, 1), rss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stderr is not None
    for line in process.stderr:
        log.write(line)
        if REPORTS.search(line):
            summary.sanitizer_reports += 1
            print(line.rstrip(), flush=True)
        status = STATUS.match(line)
        if status:
            summary.inputs, summary.coverage = int(status[1]), int(status[3])
            if status[2] in ("pulse", "DONE", "INITED"):
                print(line.rstrip(), flush=True)
        elif line.startswith("stat::number_of_executed_units:"):
            summary.inputs = int(line.split(":")[-1])
        elif line.startswith("stat::peak_rss_mb:"):
            summary.peak_rss_mb = int(line.split(":")[-1])
    summary.exit_code = process.wait()
    done.set()
    sampler.join()
    log.close()
    summary.seconds = round(time.monotonic() - started, 1)
    summary.corpus_inputs = len(list(work.iterdir()))
    summary.findings = sorted(str(p) for p in set(artifacts.iterdir()) - earlier)
    samples = [rss for _, rss in summary.rss_mb]
    summary.peak_rss_mb = max([summary.peak_rss_mb, *samples])
    if samples:
        summary.rss_growth_mb = samples[-1] - samples[len(samples) // 4]
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build", action="store_true", help="build the target first (fuzz/native/build.sh)")
    parser.add_argument("--dir", type=Path, default=HERE / "build", help="build and work directory")
    parser.add_argument("--seconds", type=int, default=30, help="how long to fuzz (unless --runs)")
    parser.add_argument("--runs", type=int, default=0, help="how many inputs to run")
    parser.add_argument("--seed", type=int, default=15, help="libFuzzer's seed (a seeded run repeats)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument(
        "--max-growth-mb", type=int, default=64, help="RSS growth once warm that fails the run"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--report", type=Path, help="write the summary here as JSON")
    args = parser.parse_args()
    args.dir = args.dir.resolve()
    binary = build(args.dir) if args.build else args.dir / "replay-fuzzer"
    summary = run(binary, args.dir / "corpus", args)
    text = json.dumps(asdict(summary), indent=1)
    if args.report:
        args.report.write_text(text + "\n")
    print(text)
    ok = summary.ok(args.max_growth_mb)
    print("native fuzz run:", "clean" if ok else f"FAILED (log: {args.dir / 'fuzz.log'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
