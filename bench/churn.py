"""kdns in a living cluster (issue #12), next to knotd on the same data, in one run: `bench/churn.sh`
(or `python -m bench.churn`; --help for the options).

kdns follows the test API server (tests/support/apiserver.py, preloaded with the generated objects,
in a child process with a writer: bench/churn_api.py) and knotd serves the same records from a
zone file; the figures, targets and tables are bench/churn_figures.py's. kdns and knotd share the
server CPU (taskset), dnsperf, the API server and this script the other. Per kdns checkout
(--kdns-root, repeatable: old and new code side by side):

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype

from bench import dnsperf, gen
from bench.churn_api import Question, Written, api_main, final_answers, read_slices
from bench.churn_figures import (
    RUN_NAMES,
    Check,
    KdnsRound,
    Reference,
    Run,
    check_text,
    markdown,
    pct,
    summarise_cold,
)
from bench.compare import compare, read_questions, sample
from bench.run import COREFILES, ensure_tools, fmt_ms, loadavg, machine_facts, running
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
        f"p99 {fmt_ms(r.p99)} ms, CPU {cpu} s in {r.seconds:.1f} s, others {pct(r.others)} (load {r.load})",
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
            print(f"{co.label}: after headless churn, {check_text(out.headless_right)}", flush=True)
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


if __name__ == "__main__":
    raise SystemExit(main())
