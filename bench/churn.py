"""kdns in a living cluster (issue #12), next to knotd on the same data, in one run: `bench/churn.sh`
(or `python -m bench.churn`; --help for the options).

kdns follows the test API server (tests/support/apiserver.py, preloaded with the generated objects,
in a child process with a writer: bench/churn_api.py) and knotd serves the same records from a
zone file. kdns and knotd share the server CPU (taskset), dnsperf, the API server and this script
the other. Per kdns checkout (--kdns-root, repeatable: old and new code side by side):

1. first pass: a fresh kdns (synced, nothing asked) and one pass over the whole question file at
   max load (dnsperf -n 1): every first ask of a question;
2. static warm: max load for --seconds, every question asked before;
3. latency at 2k qps (dnsperf -Q 2000 -v), idle;
4. ClusterIP churn: --rate EndpointSlice updates/s on ClusterIP Services (a pod rescheduled: no
   answer the question file asks changes) through the API's watch streams, max load meanwhile;
5. latency at 2k qps during ClusterIP churn;
6. headless churn: the same on headless Services (their answers change), max load meanwhile;
   then every name the churn changed must answer the API's final state within --settle seconds;
7. RSS (VmRSS) of that kdns after the load; in-process cost of a cold ask (bench/cold_ask.py);
   RSS of a kdns synced from an API server holding the --rss-preset data after a pass and a run.

Max-load runs use bench/run.py's dnsperf flags (-c 4 -q 200, UDP, no EDNS); their p50/p99 come
from a second dnsperf at --probe-qps with -v whose queries wait in the same queue (-v on the load
itself would slow dnsperf). kdns CPU is the server's user+system seconds during each run.
knotd takes the first pass, static warm and 2k-qps runs once, before the kdns rounds; the issue's
targets are ratios to its static warm qps. Numbers from a shared 2-core machine are noisy: the
ratios, measured minutes apart on the same core, are the figures to trust most.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype

from bench import dnsperf, gen
from bench.churn_api import Question, Written, api_main, final_answers, read_slices
from bench.compare import compare, read_questions, sample
from bench.run import COREFILES, ensure_tools, fmt_ms, fmt_qps, loadavg, machine_facts, met, running
from bench.servers import (
    ROOT,
    Proc,
    answers,
    ask,
    cpu_list,
    cpu_seconds,
    cpus_busy,
    rss_mib,
    start_kdns,
    start_knotd,
    wait_for,
)
from tests.support.ports import free_port

MIB_PER_MB = 1_000_000 / 2**20
RSS_TARGET_MB = 120


# --- the kdns under test ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    """A kdns checkout to run: its root (on PYTHONPATH), the interpreter, and a label for tables."""

    root: Path
    python: str
    label: str


def checkout(root: Path, python: str | None, taken: set[str]) -> Checkout:
    """`root`'s own .venv when it has one (else this interpreter); its C extension built in place
    when missing (a fresh `git worktree add` has none); labelled by `git describe`."""
    root = root.resolve()
    if not (root / "kdns" / "__main__.py").exists():
        sys.exit(f"--kdns-root {root}: no kdns package there")
    venv = root / ".venv" / "bin" / "python"
    py = python or (str(venv) if venv.exists() else sys.executable)
    source, built = root / "kdns/server/_hotpath.c", list((root / "kdns/server").glob("_hotpath*.so"))
    if source.exists() and (not built or built[0].stat().st_mtime < source.stat().st_mtime):
        build_extension(root, py)
    r = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    label = base = r.stdout.strip() or root.name
    n = 1
    while label in taken:
        n += 1
        label = f"{base}#{n}"
    taken.add(label)
    return Checkout(root, py, label)


def build_extension(root: Path, python: str) -> None:
    """Build `root`'s C extension for `python`, in place, by `root`'s own setup.py. In a copy of
    setup.py and the C sources alone: the interpreter's setuptools may be older than the one
    pyproject.toml asks for (pip builds with that one in isolation; `setup.py` here reads it too)."""
    print(f"building kdns's C extension in {root}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kdns-build-") as tmp:
        shutil.copy(root / "setup.py", tmp)
        (Path(tmp) / "kdns/server").mkdir(parents=True)
        for c in (root / "kdns/server").glob("*.[ch]"):
            shutil.copy(c, Path(tmp) / "kdns/server")
        r = subprocess.run(
            [python, "setup.py", "-q", "build_ext", "--inplace"], cwd=tmp, capture_output=True, text=True
        )
        if r.returncode != 0:
            sys.exit(f"building the C extension of {root} failed:\n{r.stdout}{r.stderr}")
        for so in (Path(tmp) / "kdns/server").glob("_hotpath*.so"):
            shutil.copy(so, root / "kdns/server")


# --- figures ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One dnsperf run against one server."""

    run: str
    server: str
    qps: float
    sent: int
    completed: int
    lost: int
    avg_latency: float  # seconds, dnsperf's own average
    p50: float | None  # seconds: the probe's at max load, dnsperf -v's at a fixed rate
    p99: float | None
    seconds: float  # dnsperf's run time
    server_cpu: float | None  # CPU-seconds the server used during the run
    load: str  # load average when the run ended
    others: float | None = None  # share of the server CPU(s) busy with anything but the server
    note: str = ""

    @property
    def per_cpu(self) -> float | None:
        """Answers per server CPU-second: what one core of its own would answer, other load aside."""
        return self.completed / self.server_cpu if self.server_cpu else None

    fixed_rate: bool = False  # dnsperf -Q: qps is the rate asked for, not a capacity
    churn: dict[str, float] | None = None  # events, written/s, max writer lag, API server CPU-seconds


@dataclass
class Check:
    """Names checked against an expected state: how many, how many still wrong, when right."""

    names: int
    wrong: int
    seconds: float | None  # from the end of the churn to all right (None: never within --settle)
    wrong_at_first: int = 0  # wrong in the first round of asking (kdns still behind the API)
    examples: list[str] = field(default_factory=list)


@dataclass
class KdnsRound:
    label: str
    root: str
    sync_seconds: float = 0.0
    runs: list[Run] = field(default_factory=list)
    agreement: dict[str, str] = field(default_factory=dict)  # when → "agreed/asked"
    headless_right: Check | None = None
    rss_mib: tuple[float, float] = (0.0, 0.0)  # (VmRSS, VmHWM) after the load
    log: dict[str, Any] = field(default_factory=dict)
    cold_ask: dict[str, Any] = field(default_factory=dict)
    rss_full: dict[str, float] = field(default_factory=dict)

    def run(self, name: str) -> Run | None:
        return next((r for r in self.runs if r.run == name), None)


RUN_NAMES = {  # in the order they run
    "first": "first pass (dnsperf -n 1)",
    "static": "static warm",
    "lat": "2k qps, idle",
    "clusterip": "ClusterIP churn",
    "lat-churn": "2k qps, ClusterIP churn",
    "headless": "headless churn",
}


# --- the API child ----------------------------------------------------------------------------------


class ApiChild:
    """bench/churn_api.py's API server and writer in a child process (inherits this CPU pin)."""

    def __init__(self, manifests: Path, seed: int) -> None:
        self.port = free_port()
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=api_main, args=(child, self.port, [str(manifests)], seed), daemon=True)
        t0 = time.monotonic()
        self.proc.start()
        if not self.conn.poll(900) or self.conn.recv() != "ready":
            raise RuntimeError("the test API server did not start")
        print(f"API server ready on :{self.port} ({time.monotonic() - t0:.1f}s)", flush=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def stop(self) -> None:
        self.conn.send("stop")
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()


@contextmanager
def churning(api: ApiChild, kind: str, rate: float, lead: float) -> Iterator[list[Written]]:
    """The writer at `rate` events/s on `kind` slices from `lead` seconds before the body until its
    end; the list gets the writer's report."""
    api.conn.send(("churn", kind, rate))
    time.sleep(lead)
    report: list[Written] = []
    try:
        yield report
    finally:
        api.conn.send("halt")
        report.append(api.conn.recv())


# --- measuring --------------------------------------------------------------------------------------


class Bench:
    """What every run shares: the data, the knotd to compare with, the options."""

    def __init__(self, args: argparse.Namespace, work: Path, files: gen.Written, knot: Proc, knot_port: int):
        self.args, self.work, self.files, self.knot, self.knot_port = args, work, files, knot, knot_port
        self.server_cpus = cpu_list(args.server_cpu)

    def max_load(
        self, run: str, server: str, port: int, pid: int, *, once: bool = False, api: ApiChild | None = None
    ) -> Run:
        a = self.args
        slug = f"{server}-{run}".replace(" ", "-").replace("/", "")
        api_cpu0 = cpu_seconds(api.pid) if api else 0.0
        with dnsperf.probing(
            port, self.files.queries, cpu=a.client_cpu, qps=a.probe_qps, out=self.work / f"probe-{slug}.txt"
        ) as probe:
            perf, others, note = self._dnsperf(
                f"{run}, {server}",
                port=port,
                queries=self.files.queries,
                seconds=a.seconds,
                cpu=a.client_cpu,
                clients=a.clients,
                outstanding=a.outstanding,
                once=once,
                server_pid=pid,
            )
        assert probe.result is not None
        out = _run(run, server, perf, probe.result)
        out.others, out.note = others, note
        if api:
            out.churn = {"api_cpu": cpu_seconds(api.pid) - api_cpu0}
        _print(out)
        return out

    def latency(self, run: str, server: str, port: int, pid: int) -> Run:
        a = self.args
        perf, others, note = self._dnsperf(
            f"{run}, {server}",
            port=port,
            queries=self.files.queries,
            seconds=a.latency_seconds,
            cpu=a.client_cpu,
            clients=a.clients,
            outstanding=a.outstanding,
            max_qps=a.latency_qps,
            verbose=True,
            server_pid=pid,
        )
        out = _run(run, server, perf, perf)
        out.fixed_rate, out.others, out.note = True, others, note
        _print(out)
        return out

    def _dnsperf(self, what: str, **kw: Any) -> tuple[dnsperf.PerfResult, float | None, str]:
        """dnsperf (see `run_once_more_if_hung`), and the share of the server CPU(s) that went to
        anything but the server meanwhile."""
        busy: list[float] = []

        def before() -> None:
            busy[:] = [cpus_busy(self.server_cpus), time.monotonic()]

        perf, note = run_once_more_if_hung(what, before, **kw)
        others = None
        if perf.server_cpu is not None:
            wall = (time.monotonic() - busy[1]) * len(self.server_cpus)
            others = max(0.0, cpus_busy(self.server_cpus) - busy[0] - perf.server_cpu) / wall
        return perf, others, note


def run_once_more_if_hung(
    what: str, before: Callable[[], None] = lambda: None, **kw: Any
) -> tuple[dnsperf.PerfResult, str]:
    """dnsperf.run(**kw), repeated once if dnsperf hung (dnsperf.HANG_GRACE), with a note saying
    so; `before` runs before each attempt."""
    before()
    try:
        return dnsperf.run(**kw), ""
    except dnsperf.Hung as exc:
        print(f"{what}: {exc}; running it again", flush=True)
    before()
    return dnsperf.run(**kw), "dnsperf hung; these are a second attempt's figures"


def _run(run: str, server: str, perf: dnsperf.PerfResult, timed: dnsperf.PerfResult) -> Run:
    return Run(
        run,
        server,
        perf.qps,
        perf.sent,
        perf.completed,
        perf.lost,
        perf.avg_latency,
        timed.percentile(50),
        timed.percentile(99),
        perf.runtime,
        perf.server_cpu,
        loadavg(),
    )


def _print(r: Run) -> None:
    cpu = f"{r.server_cpu:.1f}" if r.server_cpu is not None else "–"
    print(
        f"{r.run:>26} {r.server:>12}: {r.qps:>9,.0f} qps, lost {r.lost:>6,}, p50 {fmt_ms(r.p50)} ms, "
        f"p99 {fmt_ms(r.p99)} ms, CPU {cpu} s in {r.seconds:.1f} s, others {_pct(r.others)} (load {r.load})",
        flush=True,
    )


def with_churn(r: Run, w: Written) -> Run:
    r.churn = {**(r.churn or {}), "events": w.events, "rate": w.rate, "max_lag": w.max_lag}
    r.churn.update({f"{k} requests": v for k, v in w.requests.items()})
    return r


def knotd_runs(b: Bench) -> list[Run]:
    """knotd's reference: a pass over the file, max load, and 2k qps (its data never changes)."""
    k, port = b.knot, b.knot_port
    return [
        b.max_load(RUN_NAMES["first"], "knotd", port, k.pid, once=True),
        b.max_load(RUN_NAMES["static"], "knotd", port, k.pid),
        b.latency(RUN_NAMES["lat"], "knotd", port, k.pid),
    ]


def kdns_round(b: Bench, co: Checkout, probe: tuple[str, str, set[str]]) -> KdnsRound:
    """Steps 1–6 of the module doc for one checkout, against a fresh API server."""
    a = b.args
    out = KdnsRound(co.label, str(co.root))
    api = ApiChild(b.files.manifests, a.seed)
    try:
        port = free_port()
        corefile = COREFILES["minimal"].format(port=port, source=f"endpoint {api.url}", upstream=0)
        name = f"kdns-{_slug(co.label)}"
        kd = start_kdns(b.work, corefile, a.server_cpu, name=name, root=co.root, python=co.python)
        with running(kd):
            out.sync_seconds = wait_for(kd, answers(port, *probe), 600)
            print(f"{co.label}: synced from the API in {out.sync_seconds:.1f}s", flush=True)
            out.runs.append(b.max_load(RUN_NAMES["first"], co.label, port, kd.pid, once=True))
            out.runs.append(b.max_load(RUN_NAMES["static"], co.label, port, kd.pid))
            out.agreement["static"] = _agreement(port, b)
            out.runs.append(b.latency(RUN_NAMES["lat"], co.label, port, kd.pid))
            with churning(api, "clusterip", a.rate, a.lead) as w:
                r = b.max_load(RUN_NAMES["clusterip"], co.label, port, kd.pid, api=api)
            out.runs.append(with_churn(r, w[0]))
            with churning(api, "clusterip", a.rate, a.lead) as w:
                r = b.latency(RUN_NAMES["lat-churn"], co.label, port, kd.pid)
            out.runs.append(with_churn(r, w[0]))
            out.agreement["after ClusterIP churn"] = _agreement(port, b)
            with churning(api, "headless", a.rate, a.lead) as w:
                r = b.max_load(RUN_NAMES["headless"], co.label, port, kd.pid, api=api)
            out.runs.append(with_churn(r, w[0]))
            expected = final_answers(read_slices(b.files.manifests), w[0].touched, gen.ZONE)
            out.headless_right = settle(port, expected, a.settle)
            print(f"{co.label}: after headless churn, {_check_text(out.headless_right)}", flush=True)
            out.rss_mib = rss_mib(kd.pid)
            kd.check_alive()
        out.log = log_summary(kd.log)
    finally:
        api.stop()
    return out


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in label)


def _agreement(port: int, b: Bench) -> str:
    """Sampled answers equal to knotd's (bench/compare.py): the data kdns serves is the zone's."""
    agreed = compare(port, b.knot_port, sample(read_questions(str(b.files.queries)), b.args.sample))
    for m in agreed.mismatches[:5]:
        print(f"  MISMATCH {m.question}:\n    kdns:  {m.left}\n    knotd: {m.right}", flush=True)
    return f"{agreed.asked - len(agreed.mismatches)}/{agreed.asked}"


def settle(port: int, expected: dict[Question, set[str]], timeout: float) -> Check:
    """Ask every expected name until all answer their final addresses or `timeout` passes. Names
    still wrong are asked once more over TCP with EDNS: other query bytes than dnsperf's, so an
    answer replayed from bytes cached before the change cannot be what comes back."""
    t0 = time.monotonic()
    pending = dict(expected)
    wrong: dict[Question, str] = {}
    at_first: int | None = None
    while True:
        for q, want in list(pending.items()):
            got = _addresses(port, q)
            if got == want:
                del pending[q]
                wrong.pop(q, None)
            else:
                wrong[q] = f"{q[0]} {q[1]}: {sorted(got)} (API: {sorted(want)})"
        elapsed = time.monotonic() - t0
        at_first = len(pending) if at_first is None else at_first
        if not pending:
            return Check(len(expected), 0, elapsed, at_first)
        if elapsed > timeout:
            examples = [
                f"{wrong[q]}; over TCP with EDNS: {sorted(_addresses(port, q, True))}" for q in pending
            ]
            return Check(len(expected), len(pending), None, at_first, examples[:5])
        time.sleep(0.2)


def _addresses(port: int, q: Question, tcp_edns: bool = False) -> set[str]:
    """The addresses kdns answers to `q` (UDP without EDNS, as dnsperf asks, unless `tcp_edns`)."""
    try:
        if tcp_edns:
            query = dns.message.make_query(q[0], q[1], use_edns=0)
            reply = dns.query.tcp(query, "127.0.0.1", port=port, timeout=1.0)
        else:
            reply = ask(port, *q, timeout=1.0)
    except Exception as exc:  # a timeout is a wrong answer too, shown in the examples
        return {f"no reply: {type(exc).__name__}"}
    rdtype = dns.rdatatype.from_text(q[1])
    return {rd.to_text() for rrset in reply.answer if rrset.rdtype == rdtype for rd in rrset}


def _check_text(c: Check) -> str:
    if c.wrong == 0:
        return (
            f"all {c.names} changed names right {c.seconds:.1f}s after the churn stopped "
            f"({c.wrong_at_first} still wrong in the first round of asking)"
        )
    return f"{c.wrong} of {c.names} changed names still wrong: " + "; ".join(c.examples)


def log_summary(log: Path) -> dict[str, Any]:
    """Errors and warnings kdns logged (CoreDNS's `[LEVEL] …` lines) and tracebacks."""
    lines = log.read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if ln.startswith(("[ERROR]", "[WARNING]", "Traceback"))]
    return {
        "errors": sum(ln.startswith("[ERROR]") for ln in lines),
        "warnings": sum(ln.startswith("[WARNING]") for ln in lines),
        "tracebacks": sum(ln.startswith("Traceback") for ln in lines),
        "first": list(dict.fromkeys(bad))[:5],
    }


def cold_ask(b: Bench, co: Checkout) -> dict[str, Any]:
    """bench/cold_ask.py with `co`'s kdns on the server CPU, kdns built from manifests of the data:
    CPU per first ask of each distinct question (and per second ask), percentiles in µs."""
    port = free_port()
    corefile = b.work / f"cold-{_slug(co.label)}.Corefile"
    corefile.write_text(
        COREFILES["minimal"].format(port=port, source=f"manifests {b.files.manifests}", upstream=0)
    )
    out = b.work / f"cold-{_slug(co.label)}.json"
    argv = [
        co.python,
        "-P",
        str(ROOT / "bench" / "cold_ask.py"),
        "--corefile",
        str(corefile),
        "--queries",
        str(b.files.queries),
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(co.root)}
    r = subprocess.run(["taskset", "-c", b.args.server_cpu, *argv], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{co.label}: cold ask failed:\n{r.stderr[-3000:]}", flush=True)
        return {"error": (r.stderr.strip().splitlines() or ["exit status " + str(r.returncode)])[-1]}
    raw = json.loads(out.read_text())
    summary = summarise_cold(raw)
    print(
        f"{co.label}: cold ask p50 {summary['cold_p50_us']:.1f} µs, p99 {summary['cold_p99_us']:.1f} µs CPU "
        f"over {summary['questions']:,} questions (warm p50 {summary['warm_p50_us']:.1f} µs)",
        flush=True,
    )
    return summary


def summarise_cold(raw: dict[str, Any]) -> dict[str, Any]:
    """Percentiles (µs) of bench/cold_ask.py's per-question nanoseconds."""
    out: dict[str, Any] = {"questions": raw["questions"], "start_seconds": raw["start_seconds"]}
    for label in ("cold", "warm"):
        cpu = sorted(raw[label]["cpu_ns"])
        for p in (50, 99):
            value = dnsperf.percentile(cpu, p)
            out[f"{label}_p{p}_us"] = (value or 0) / 1000
        out[f"{label}_total_s"] = sum(cpu) / 1e9
        out[f"{label}_rcodes"] = raw[label]["rcodes"]
    return out


def rss_full(b: Bench, checkouts: list[Checkout]) -> dict[str, dict[str, float]]:
    """Each checkout's kdns synced from one API server holding the --rss-preset data, after one pass
    over its question file and a max-load run: VmRSS (the issue's memory figure)."""
    a = b.args
    cluster = gen.cluster_for(a.rss_preset, a.seed)
    files = gen.write(cluster, b.work / f"data-{a.rss_preset}", gen.PRESETS[a.rss_preset].queries, a.seed)
    probe = _probe(cluster)
    api = ApiChild(files.manifests, a.seed)
    out: dict[str, dict[str, float]] = {}
    try:
        for co in checkouts:
            port = free_port()
            corefile = COREFILES["minimal"].format(port=port, source=f"endpoint {api.url}", upstream=0)
            name = f"kdns-{_slug(co.label)}-{a.rss_preset}"
            kd = start_kdns(b.work, corefile, a.server_cpu, name=name, root=co.root, python=co.python)
            with running(kd):
                synced = wait_for(kd, answers(port, *probe), 900)
                rss_synced = rss_mib(kd.pid)[0]
                for once in (True, False):
                    run_once_more_if_hung(
                        f"{co.label}, {a.rss_preset} data",
                        port=port,
                        queries=files.queries,
                        seconds=a.seconds,
                        cpu=a.client_cpu,
                        clients=a.clients,
                        outstanding=a.outstanding,
                        once=once,
                    )
                rss, hwm = rss_mib(kd.pid)
            logged = log_summary(kd.log)
            if logged["errors"] or logged["warnings"] or logged["tracebacks"]:
                print(f"{co.label}, {a.rss_preset} data, kdns logged: {logged['first']}", flush=True)
            out[co.label] = {
                "warnings": logged["warnings"] + logged["errors"] + logged["tracebacks"],
                "sync_seconds": synced,
                "rss_synced_mib": rss_synced,
                "rss_mib": rss,
                "hwm_mib": hwm,
            }
            print(
                f"{co.label}: {a.rss_preset} data, RSS {rss:.0f} MiB after load (peak {hwm:.0f})", flush=True
            )
    finally:
        api.stop()
    return out


def _probe(cluster: gen.Cluster) -> tuple[str, str, set[str]]:
    """The last ClusterIP Service's A: answered right once the whole list is in (as bench/run.py)."""
    svc = next(s for s in reversed(cluster.services) if s.cluster_ips)
    return svc.fqdn, "A", {ip for ip in svc.cluster_ips if ":" not in ip}


# --- targets and tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """knotd's qps of this run that the targets are ratios to."""

    static: float  # max load, static warm
    first: float  # one pass over the file (-n 1): dnsperf's start and end are in it as in kdns's
    static_per_cpu: float | None = None  # the same as answers per server CPU-second
    first_per_cpu: float | None = None


def targets(k: KdnsRound, knot: Reference) -> list[tuple[str, str, bool]]:
    """Issue #12's done-when, per kdns: (target, measured, met), for the figures it has. The first
    pass is held against knotd's own pass over the file (the same dnsperf ramp and tail); the
    ratio to its static qps is shown beside."""

    def qps(name: str) -> float | None:
        r = k.run(RUN_NAMES[name])
        return r.qps if r else None

    static, first, cip, hl = qps("static"), qps("first"), qps("clusterip"), qps("headless")
    cip_run = k.run(RUN_NAMES["clusterip"])
    rows: list[tuple[str, str, bool]] = []
    if cip is not None and static and cip_run is not None:
        rows += [
            ("ClusterIP churn ≥ 90% of own static qps", f"{cip / static:.0%}", cip >= 0.9 * static),
            ("ClusterIP churn ≥ 0.65 × knotd static", f"{cip / knot.static:.2f}×", cip >= 0.65 * knot.static),
            ("ClusterIP churn: 0 lost", f"{cip_run.lost:,}", cip_run.lost == 0),
        ]
    if hl is not None:
        rows.append(
            ("headless churn ≥ 0.5 × knotd static", f"{hl / knot.static:.2f}×", hl >= 0.5 * knot.static)
        )
    if k.headless_right is not None:
        c = k.headless_right
        right = f"{c.names - c.wrong}/{c.names}"
        rows.append(("headless: every changed answer right once churn stops", right, c.wrong == 0))
    if first is not None:
        measured = f"{first / knot.first:.2f}× (× static: {first / knot.static:.2f})"
        rows.append(("first pass ≥ 0.65 × knotd's pass", measured, first >= 0.65 * knot.first))
    for name, when in (("lat", "idle"), ("lat-churn", "during ClusterIP churn")):
        r = k.run(RUN_NAMES[name])
        if r is not None:
            ok = r.p99 is not None and r.p99 <= 0.0005 and r.lost == 0
            rows.append((f"p99 ≤ 0.5 ms at 2k qps, {when}, 0 lost", f"{fmt_ms(r.p99)} ms", ok))
    if k.rss_full:
        mb = k.rss_full["rss_mib"] / MIB_PER_MB
        target = f"RSS synced from the API (--rss-preset data), after load ≤ {RSS_TARGET_MB} MB"
        rows.append((target, f"{mb:.0f} MB", mb <= RSS_TARGET_MB))
    return rows


def runs_table(runs: list[Run], knot: Reference) -> str:
    lines = [
        "| run | server | qps | × knotd static | lost | p50 ms | p99 ms | server CPU s (% of run) "
        "| answers per CPU-s | others on its CPU | churn |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        cpu = f"{r.server_cpu:.1f} ({r.server_cpu / r.seconds:.0%})" if r.server_cpu and r.seconds else "–"
        per_cpu = "–" if r.fixed_rate else fmt_qps(r.per_cpu)  # at a fixed rate the server idles
        churn = "–"
        if r.churn and "rate" in r.churn:
            churn = f"{r.churn['events']:.0f} events, {r.churn['rate']:.1f}/s"
            if "api_cpu" in r.churn:
                churn += f", API server {r.churn['api_cpu']:.1f} CPU s"
            made = r.churn.get("watches requests", 0) + r.churn.get("other requests", 0)
            if made:
                churn += f"; kdns re-watched/listed {made:.0f}×"
        lost = f"{r.lost:,}" + (f" ({r.lost / r.sent:.1%})" if r.sent and r.lost else "")
        versus = "–" if r.fixed_rate else f"{r.qps / knot.static:.2f}"
        lines.append(
            f"| {r.run} | {r.server} | {fmt_qps(r.qps)} | {versus} | {lost} "
            f"| {fmt_ms(r.p50)} | {fmt_ms(r.p99)} | {cpu} | {per_cpu} | {_pct(r.others)} | {churn} |"
        )
    return "\n".join(lines)


def figures_table(rounds: list[KdnsRound], knot: Reference) -> str:
    head = "| figure | " + " | ".join(k.label for k in rounds) + " |"
    lines = [head, "|---|" + "---|" * len(rounds)]

    def row(name: str, cells: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    by_target: dict[str, list[str]] = {}
    for i, k in enumerate(rounds):
        for name, measured, ok in targets(k, knot):
            by_target.setdefault(name, ["–"] * len(rounds))[i] = f"{measured} ({met(ok)})"
    for name, cells in by_target.items():
        row(f"target: {name}", cells)
    row("ClusterIP churn qps ÷ own static qps", [_ratio(k, "clusterip", "static") for k in rounds])
    row("first pass qps ÷ own static qps", [_ratio(k, "first", "static") for k in rounds])
    per_cpu = "answers per server CPU-second (other load aside)"
    row(
        f"{per_cpu}: ClusterIP churn ÷ own static",
        [_per_cpu(k, "clusterip", _own_per_cpu(k, "static")) for k in rounds],
    )
    for name, versus in (("clusterip", "static"), ("headless", "static"), ("first", "first")):
        row(
            f"{per_cpu}: {RUN_NAMES[name].split(' (')[0]} ÷ knotd's {RUN_NAMES[versus].split(' (')[0]}",
            [
                _per_cpu(k, name, knot.static_per_cpu if versus == "static" else knot.first_per_cpu)
                for k in rounds
            ],
        )
    row(
        "headless: changed names all right after (s; wrong at the first ask)",
        [_settled(k.headless_right) for k in rounds],
    )
    row("synced from the API in (s)", [f"{k.sync_seconds:.1f}" for k in rounds])
    for when in ("static", "after ClusterIP churn"):
        row(f"sampled answers equal to knotd's ({when})", [k.agreement.get(when, "–") for k in rounds])
    row(
        "RSS after the load, this data (MiB; peak)",
        [f"{k.rss_mib[0]:.0f} ({k.rss_mib[1]:.0f})" for k in rounds],
    )
    row(
        "RSS synced, before load, --rss-preset data (MiB)",
        [f"{k.rss_full['rss_synced_mib']:.0f}" if k.rss_full else "–" for k in rounds],
    )
    row(
        "RSS after load, --rss-preset data (MiB; peak)",
        [f"{k.rss_full['rss_mib']:.0f} ({k.rss_full['hwm_mib']:.0f})" if k.rss_full else "–" for k in rounds],
    )
    row(
        "synced from the API, --rss-preset data (s; kdns log warnings)",
        [
            f"{k.rss_full['sync_seconds']:.1f} ({k.rss_full['warnings']:.0f})" if k.rss_full else "–"
            for k in rounds
        ],
    )
    row("cold ask, CPU per question p50 / p99 (µs)", [_cold(k, "cold") for k in rounds])
    row("warm ask (asked before), p50 / p99 (µs)", [_cold(k, "warm") for k in rounds])
    row(
        "kdns log: errors / warnings / tracebacks",
        [
            f"{k.log.get('errors', 0)} / {k.log.get('warnings', 0)} / {k.log.get('tracebacks', 0)}"
            for k in rounds
        ],
    )
    return "\n".join(lines)


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def _settled(c: Check | None) -> str:
    if c is None:
        return "–"
    return f"{c.seconds:.1f} ({c.wrong_at_first})" if c.seconds is not None else f"never ({c.wrong} wrong)"


def _per_cpu(k: KdnsRound, name: str, versus: float | None) -> str:
    """Answers per CPU-second of `k`'s run `name` ÷ `versus`."""
    r = k.run(RUN_NAMES[name])
    return f"{r.per_cpu / versus:.2f}" if r and r.per_cpu and versus else "–"


def _own_per_cpu(k: KdnsRound, name: str) -> float | None:
    r = k.run(RUN_NAMES[name])
    return r.per_cpu if r else None


def _ratio(k: KdnsRound, a: str, b: str) -> str:
    ra, rb = k.run(RUN_NAMES[a]), k.run(RUN_NAMES[b])
    return f"{ra.qps / rb.qps:.0%}" if ra and rb and rb.qps else "–"


def _cold(k: KdnsRound, label: str) -> str:
    c = k.cold_ask
    if not c:
        return "–"
    if "error" in c:
        return f"failed: {c['error']}"
    return f"{c[f'{label}_p50_us']:.1f} / {c[f'{label}_p99_us']:.1f}"


# --- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/churn.sh", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--preset", choices=sorted(gen.PRESETS), default="issue12", help="data (default: issue #12's)"
    )
    ap.add_argument(
        "--rss-preset", default="full", help="data of the RSS figure (full: 100k endpoints; none: skip)"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/kdns-churn"))
    ap.add_argument(
        "--kdns-root",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="kdns checkout to run (repeat for side by side; default: this one)",
    )
    ap.add_argument(
        "--kdns-python", help="interpreter for every kdns (default: DIR/.venv/bin/python or this one)"
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each max-load run")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--latency-qps", type=int, default=2000)
    ap.add_argument(
        "--rate", type=float, default=50.0, help="EndpointSlice updates per second while churning"
    )
    ap.add_argument("--lead", type=float, default=1.0, help="seconds of churn before dnsperf starts")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds changed names may take to be right")
    ap.add_argument(
        "--probe-qps", type=int, default=200, help="rate of the latency probe beside max-load runs"
    )
    ap.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    ap.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    ap.add_argument("--sample", type=int, default=500, help="questions whose answers must equal knotd's")
    ap.add_argument("--server-cpu", default="0", help="taskset CPU list for kdns and knotd")
    ap.add_argument("--client-cpu", default="1", help="CPU for dnsperf, the API server and this script")
    args = ap.parse_args(argv)
    if args.rss_preset != "none" and args.rss_preset not in gen.PRESETS:
        ap.error(f"--rss-preset: one of {', '.join(sorted(gen.PRESETS))}, none")

    ensure_tools()
    os.sched_setaffinity(0, {int(c) for c in args.client_cpu.split(",")})
    taken: set[str] = set()
    checkouts = [checkout(r, args.kdns_python, taken) for r in (args.kdns_root or [ROOT])]
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    facts["kdns under test"] = ", ".join(f"{c.label} ({c.root})" for c in checkouts)
    command = "bench/churn.sh " + " ".join(argv if argv is not None else sys.argv[1:])
    print("\n".join(f"{k}: {v}" for k, v in facts.items()), flush=True)

    t0 = time.monotonic()
    cluster = gen.cluster_for(args.preset, args.seed)
    preset = gen.PRESETS[args.preset]
    files = gen.write(cluster, work / f"data-{args.preset}", preset.queries, args.seed)
    print(
        f"data: {preset.services:,} Services, {preset.endpoints:,} endpoints ({time.monotonic() - t0:.1f}s)"
    )
    probe = _probe(cluster)

    knot_port = free_port()
    with running(start_knotd(work, {gen.ZONE: files.zone}, knot_port, args.server_cpu)) as knot:
        wait_for(knot, answers(knot_port, *probe), 120)
        b = Bench(args, work, files, knot, knot_port)
        runs = knotd_runs(b)  # knotd's only
        rounds = [kdns_round(b, co, probe) for co in checkouts]
    for k, co in zip(rounds, checkouts, strict=True):
        k.cold_ask = cold_ask(b, co)
    if args.rss_preset != "none":
        try:
            for label, figures in rss_full(b, checkouts).items():
                next(k for k in rounds if k.label == label).rss_full = figures
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:  # keep the rest
            print(f"RSS with the {args.rss_preset} data not measured: {exc}", flush=True)
            facts["RSS with the --rss-preset data"] = f"not measured: {str(exc).splitlines()[0]}"
    facts["load average at end"] = loadavg()

    static, first = (next(r for r in runs if r.run == RUN_NAMES[n]) for n in ("static", "first"))
    ref = Reference(static.qps, first.qps, static.per_cpu, first.per_cpu)
    all_runs = runs + [r for k in rounds for r in k.runs]
    order = list(RUN_NAMES.values())
    all_runs.sort(key=lambda r: order.index(r.run))  # stable: knotd, then each kdns, per run
    text = markdown(command, facts, all_runs, rounds, ref, args, preset)
    (work / "results.md").write_text(text)
    (work / "results.json").write_text(
        json.dumps(
            {
                "command": command,
                "facts": facts,
                "runs": [asdict(r) for r in all_runs],
                "kdns": [asdict(k) for k in rounds],
            },
            indent=2,
            default=str,
        )
    )
    print("\n" + text)
    print(f"written: {work / 'results.md'}, {work / 'results.json'}")
    return 0


def markdown(
    command: str,
    facts: dict[str, str],
    runs: list[Run],
    rounds: list[KdnsRound],
    knot: Reference,
    args: argparse.Namespace,
    preset: gen.Preset,
) -> str:
    facts_text = "\n".join(f"- {k}: {v}" for k, v in facts.items())
    notes = [
        f"data ({args.preset}): {preset.services:,} Services ({preset.headless}% headless), "
        f"{preset.endpoints:,} endpoints in {preset.namespaces} namespaces, seed {args.seed}; "
        f"{preset.queries:,} questions "
        "(A 70%, AAAA 10%, SRV 10%, search-path NXDOMAIN 10%)",
        f"kdns (`kubernetes cluster.local {{ endpoint <test API server>; ttl 30 }}`) and knotd pinned to CPU "
        f"{args.server_cpu}; dnsperf (-c {args.clients} -q {args.outstanding}, UDP, no EDNS), the API "
        f"server and the harness on CPU {args.client_cpu}",
        f"max-load runs {args.seconds:g} s (first pass: one pass over the file); their p50/p99 are a "
        f"{args.probe_qps} qps dnsperf -v probe's beside the load; latency runs {args.latency_seconds:g} s "
        f"at {args.latency_qps} qps, p50/p99 from dnsperf -v (lost queries excluded, counted apart)",
        f"churn: {args.rate:g} EndpointSlice updates/s through the API server's watch streams, from "
        f"{args.lead:g} s before dnsperf starts to its end; each moves one ready endpoint of the next slice "
        "(seeded order) to a new address",
        "× knotd static: qps ÷ knotd's static warm qps of this run (the issue's reference); knotd ran "
        "before the kdns rounds",
    ]
    notes += [f"{r.run}, {r.server}: {r.note}" for r in runs if r.note]
    return (
        f"Command: `{command}`\n\n{facts_text}\n\n{runs_table(runs, knot)}\n\n"
        f"{figures_table(rounds, knot)}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
