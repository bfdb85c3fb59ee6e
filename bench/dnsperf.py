"""Run dnsperf (pinned to a CPU) and read its summary; with `-v`, per-query latencies for p50/p99.

dnsperf prints only the average and standard deviation of latency. With `-v` it prints one line per
answered query, `> RCODE name type seconds`, which is where the percentiles come from; lost queries
have no line and are reported apart (they are not folded into the percentiles).
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import cpu_seconds

_FIELDS = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "avg_latency": r"Average Latency \(s\):\s+([\d.]+)",
    "runtime": r"Run time \(s\):\s+([\d.]+)",
}
_VERBOSE_LINE = re.compile(r"^> (\S+) \S+ \S+ ([\d.]+)$", re.MULTILINE)


@dataclass
class PerfResult:
    sent: int
    completed: int
    lost: int
    qps: float
    avg_latency: float
    runtime: float
    rcodes: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, sorted; only with verbose
    server_cpu: float | None = None  # CPU-seconds the server used during the run, when its PID was given

    @property
    def per_cpu_second(self) -> float | None:
        """Answers per server CPU-second: qps as it would be on a core of its own."""
        return self.completed / self.server_cpu if self.server_cpu else None

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of answered queries' latency, in seconds."""
        return percentile(self.latencies, p)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of values sorted ascending; None when there are none."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def command(
    port: int,
    queries: Path,
    *,
    seconds: float,
    cpu: str | None,
    clients: int = 4,
    outstanding: int = 200,
    max_qps: int | None = None,
    verbose: bool = False,
    once: bool = False,
) -> list[str]:
    """dnsperf's argv (pinned with taskset when `cpu` is given): UDP, no EDNS, 2 s timeout."""
    argv = [
        "dnsperf",
        "-s",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        str(queries),
        "-c",
        str(clients),
        "-q",
        str(outstanding),
        "-t",
        "2",
        "-O",
        "suppress=timeouts,unexpected,congestion",
    ]
    argv += ["-n", "1"] if once else ["-l", f"{seconds:g}"]
    if max_qps:
        argv += ["-Q", str(max_qps)]
    if verbose:
        argv.append("-v")
    pin = ["taskset", "-c", cpu] if cpu is not None else []
    return [*pin, *argv]


# dnsperf 2.10 can hang at the end of a run on a starved machine: queries that time out before
# they are sent make its count of outstanding queries negative, and it waits for zero forever
# (fixed in 2.11, DNS-OARC/dnsperf#215). Seen here under load average 5, after `-l 20` and after
# `-n 1`; runs are stopped this long after their due end.
HANG_GRACE = 60.0
ONCE_LIMIT = 240.0  # a single pass (-n 1) over 200k questions takes 40 s even at 5k qps


class Hung(RuntimeError):
    """dnsperf did not finish (see HANG_GRACE); it has been killed."""


def run(
    port: int,
    queries: Path,
    *,
    seconds: float,
    cpu: str | None,
    clients: int = 4,
    outstanding: int = 200,
    max_qps: int | None = None,
    verbose: bool = False,
    once: bool = False,
    extra: Sequence[str] = (),
    server_pid: int | None = None,
) -> PerfResult:
    """dnsperf against 127.0.0.1:port; `once` runs through the file a single time (a cache warm-up)."""
    argv = command(
        port,
        queries,
        seconds=seconds,
        cpu=cpu,
        clients=clients,
        outstanding=outstanding,
        max_qps=max_qps,
        verbose=verbose,
        once=once,
    )
    before = cpu_seconds(server_pid) if server_pid else 0.0
    limit = (ONCE_LIMIT if once else seconds) + HANG_GRACE
    proc = subprocess.Popen([*argv, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired as exc:
        proc.send_signal(signal.SIGINT)  # ends some hangs (its summary then counts the hang: unused)
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise Hung(f"dnsperf still running after {limit:g} s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, out, err)
    result = parse(out)
    if server_pid:
        result.server_cpu = cpu_seconds(server_pid) - before
    return result


@dataclass
class Probe:
    """A low-rate dnsperf with `-v` beside a max-load run; `result` is set when its block ends."""

    proc: subprocess.Popen[bytes]
    out: Path
    result: PerfResult | None = None


@contextmanager
def probing(port: int, queries: Path, *, cpu: str | None, qps: int, out: Path) -> Iterator[Probe]:
    """Per-query latencies while another dnsperf saturates the server: a second dnsperf at `qps`
    with `-v`, stopped (SIGINT: it still prints its summary) when the block ends. Its queries wait
    in the same socket queue as the load's, so their percentiles are the load's; `-v` on the load
    itself would cut dnsperf's own rate by a quarter or more at 150k qps, and with it the figure."""
    argv = command(
        port, queries, seconds=3600, cpu=cpu, clients=1, outstanding=100, max_qps=qps, verbose=True
    )
    with open(out, "wb") as sink:
        probe = Probe(subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT), out)
    try:
        yield probe
    finally:
        probe.proc.send_signal(signal.SIGINT)
        try:
            probe.proc.wait(30)
            probe.result = parse(out.read_text(errors="replace"))
        except subprocess.TimeoutExpired:  # hung (see HANG_GRACE): no summary, the lines it printed
            probe.proc.kill()
            probe.proc.wait()
            latencies = latencies_of(out.read_text(errors="replace"))
            probe.result = PerfResult(0, len(latencies), 0, 0.0, 0.0, 0.0, {}, latencies)


def parse(output: str) -> PerfResult:
    values: dict[str, float] = {}
    for key, pattern in _FIELDS.items():
        m = re.search(pattern, output)
        if m is None:
            raise ValueError(f"dnsperf output has no {key!r}:\n{output[-2000:]}")
        values[key] = float(m.group(1))
    rcodes = {}
    m = re.search(r"Response codes:\s+(.*)", output)
    if m:
        rcodes = {code: int(n) for code, n in re.findall(r"([A-Z]+) (\d+)", m.group(1))}
    latencies = latencies_of(output)
    return PerfResult(
        int(values["sent"]),
        int(values["completed"]),
        int(values["lost"]),
        values["qps"],
        values["avg_latency"],
        values["runtime"],
        rcodes,
        latencies,
    )


def latencies_of(output: str) -> list[float]:
    """The per-query seconds `-v` printed, sorted."""
    return sorted(float(s) for _, s in _VERBOSE_LINE.findall(output))
