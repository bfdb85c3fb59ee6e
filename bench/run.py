"""kdns next to knotd on the same data, one command: `bench/run.sh` (or `python -m bench.run`).

Steps (issue #4): install what is missing (Debian dnsperf and knot via `make debs`, as root),
generate the data (bench/gen.py), start knotd and kdns on loopback pinned to the server CPU with
dnsperf pinned to the other, check a sample of answers agree, then measure: qps at max load and
lost queries; latency percentiles at a fixed 2k qps; kdns's RSS after load; cold start to the first
correct answer (from manifests, and from the test API server); forwarded names with a warm cache.
Prints one table (figure | kdns | knotd | ratio | target) and writes results.{json,md} to --workdir.

Numbers from a shared or busy machine are noisy; the ratio to knotd, measured in the same run on
the same core, is the figure to trust most.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import dnsperf, gen
from bench.compare import Agreement, compare, read_questions, sample
from bench.profile import profile_summary, py_spy
from bench.servers import (
    ROOT,
    Proc,
    answers,
    rss_mib,
    start_apiserver,
    start_kdns,
    start_knotd,
    wait_for,
)
from tests.support.ports import free_port

TOOLS = ("dnsperf", "knotd", "taskset")

COREFILES = {
    # The cluster zone alone: the kubernetes plugin is the whole answer path.
    "minimal": """cluster.local:{port} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        {source}
        ttl 30
    }}
}}
""",
    # kind's Corefile (kubeadm's default), with loopback addresses and the bench upstream.
    "kind": """.:{port} {{
    bind 127.0.0.1
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        {source}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . 127.0.0.1:{upstream}
    cache 30
    loop
    loadbalance
}}
""",
}
# Forwarded names: cache in front of forward. The cache's TTL cap is 300 s here (kind: 30 s) so that
# entries warmed before the run stay fresh through it; the cost of a cache hit does not depend on it.
FORWARD_COREFILE = """.:{port} {{
    bind 127.0.0.1
    cache 300
    forward . 127.0.0.1:{upstream}
}}
"""


@dataclass
class Row:
    figure: str
    kdns: str
    knotd: str = "–"
    ratio: str = "–"
    target: str = "–"


@dataclass
class Results:
    facts: dict[str, str]
    command: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- set-up ---------------------------------------------------------------------------------------


def ensure_tools() -> None:
    """Install dnsperf/knot through the Makefile's `debs` target when missing (root only)."""
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: run as root (installs Debian dnsperf knot) or install them")
    subprocess.run(["make", "-C", str(ROOT), "debs"], check=True)


def machine_facts() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    mhz = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("cpu MHz")), "?"
    )

    def out(*argv: str) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {
        "cpu": f"{model} ({mhz} MHz)",
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": "yes" if _has_uvloop() else "no",
        "kdns commit": out("git", "describe", "--always", "--dirty"),
        "knotd": out("knotd", "-V"),
        "dnsperf": out("sh", "-c", "dnsperf -h 2>&1 | grep -i version"),
        "load average at start": loadavg(),
    }


def loadavg() -> str:
    """1, 5 and 15 minute load: above the core count means other work shared the cores."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def kdns_supports(flag: str) -> bool:
    r = subprocess.run([sys.executable, "-m", "kdns", "-h"], capture_output=True, text=True, cwd=ROOT)
    return flag in r.stdout


@contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


# --- formatting -----------------------------------------------------------------------------------


def fmt_qps(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def fmt_ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1000:.3f}"


def ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.0%}" if a < b else f"{a / b:.2f}×"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def table(rows: list[Row]) -> str:
    lines = ["| figure | kdns | knotd | ratio | target |", "|---|---|---|---|---|"]
    lines += [f"| {r.figure} | {r.kdns} | {r.knotd} | {r.ratio} | {r.target} |" for r in rows]
    return "\n".join(lines)


def markdown(res: Results) -> str:
    facts = "\n".join(f"- {k}: {v}" for k, v in res.facts.items())
    notes = "\n".join(f"- {n}" for n in res.notes)
    return f"Command: `{res.command}`\n\n{facts}\n\n{table(res.rows)}\n\n{notes}\n"


# --- the run --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--preset",
        choices=sorted(gen.PRESETS),
        default="full",
        help="data size: full = 10k Services + 100k endpoints (default), small = a tenth",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/kdns-bench"))
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each max-load run")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--latency-qps", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    ap.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    ap.add_argument("--sample", type=int, default=500, help="questions whose answers must agree")
    ap.add_argument("--server-cpu", default="0", help="taskset CPU list for kdns and knotd")
    ap.add_argument("--client-cpu", default="1", help="taskset CPU list for dnsperf (and the API server)")
    ap.add_argument(
        "--corefile",
        choices=sorted(COREFILES),
        default="minimal",
        help="minimal: the cluster zone alone; kind: kind's Corefile shape",
    )
    ap.add_argument("--workers", type=int, default=0, help="pass -workers N to kdns (if it has the flag)")
    ap.add_argument("--profile", type=float, default=10.0, help="seconds of py-spy under load (0: none)")
    ap.add_argument("--skip-api", action="store_true", help="no cold start from the test API server")
    ap.add_argument("--skip-forward", action="store_true", help="no forwarded-names figure")
    args = ap.parse_args(argv)

    ensure_tools()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    res = Results(machine_facts(), "bench/run.sh " + " ".join(argv if argv is not None else sys.argv[1:]))
    print("\n".join(f"{k}: {v}" for k, v in res.facts.items()), flush=True)

    t0 = time.monotonic()
    cluster = gen.cluster_for(args.preset, args.seed)
    files = gen.write(cluster, work / "data", gen.PRESETS[args.preset].queries, args.seed)
    preset = gen.PRESETS[args.preset]
    print(f"data: {preset.services} Services, {preset.endpoints} endpoints ({time.monotonic() - t0:.1f}s)")
    probe = next(s for s in reversed(cluster.services) if s.cluster_ips)
    probe_check = (probe.fqdn, "A", {ip for ip in probe.cluster_ips if ":" not in ip})

    extra: list[str] = []
    if args.workers:
        if not kdns_supports("-workers"):
            sys.exit("kdns has no -workers flag yet")
        extra = ["-workers", str(args.workers)]
    server_cpu, client_cpu = args.server_cpu, args.client_cpu
    knot_port = free_port()
    zones = {gen.ZONE: files.zone, gen.FORWARD_ZONE: files.forward_zone}
    with running(start_knotd(work, zones, knot_port, server_cpu)) as knot:
        knot_start = wait_for(knot, answers(knot_port, *probe_check), 120)
        kport = free_port()
        corefile = COREFILES[args.corefile].format(
            port=kport, source=f"manifests {files.manifests}", upstream=knot_port
        )
        with running(start_kdns(work, corefile, server_cpu, extra_args=extra)) as kd:
            kdns_start = wait_for(kd, answers(kport, *probe_check), 300)
            rss_ready = rss_mib(kd.pid)
            print(f"ready: knotd {knot_start:.2f}s, kdns {kdns_start:.2f}s (RSS {rss_ready[0]:.0f} MiB)")
            agreement = compare(kport, knot_port, sample(read_questions(str(files.queries)), args.sample))
            report_agreement(agreement)

            # Twice: the first run starts with kdns having answered nothing yet (every first ask
            # goes through the plugin chain), the second with every question asked before.
            perf: dict[str, dnsperf.PerfResult] = {}
            for run in ("", " again"):
                for name, port, pid in (("knotd", knot_port, knot.pid), ("kdns", kport, kd.pid)):
                    perf[name + run] = dnsperf.run(
                        port,
                        files.queries,
                        seconds=args.seconds,
                        cpu=client_cpu,
                        clients=args.clients,
                        outstanding=args.outstanding,
                        server_pid=pid,
                    )
                    result = perf[name + run]
                    print(
                        f"max load{run} {name}: {result.qps:,.0f} qps, lost {result.lost}, "
                        f"{result.per_cpu_second or 0:,.0f} answers per CPU-second",
                        flush=True,
                    )
            lat = {}
            for name, port in (("knotd", knot_port), ("kdns", kport)):
                lat[name] = dnsperf.run(
                    port,
                    files.queries,
                    seconds=args.latency_seconds,
                    cpu=client_cpu,
                    clients=args.clients,
                    outstanding=args.outstanding,
                    max_qps=args.latency_qps,
                    verbose=True,
                )
                print(
                    f"at {args.latency_qps} qps {name}: p50 {fmt_ms(lat[name].percentile(50))} ms, "
                    f"p99 {fmt_ms(lat[name].percentile(99))} ms, lost {lat[name].lost}",
                    flush=True,
                )
            rss_kdns, hwm_kdns = rss_mib(kd.pid)
            rss_knot, _ = rss_mib(knot.pid)
            profiles = {}
            if args.profile > 0:
                profiles["cluster names"] = run_profile(kd, kport, files.queries, args, work / "profile.txt")
        api_start = None if args.skip_api else cold_start_from_api(work, files, probe_check, args, extra)
        fwd = None
        if not args.skip_forward:
            fwd = forwarded(work, (knot_port, knot.pid), files.forward_queries, args, extra, profiles)

    res.raw = {
        "perf": {k: _perf_dict(v) for k, v in perf.items()},
        "latency": {k: _perf_dict(v) for k, v in lat.items()},
        "agreement": {
            "asked": agreement.asked,
            "mismatches": len(agreement.mismatches),
            "tc_differs": len(agreement.tc_differs),
            "mismatched": [asdict(m) for m in agreement.mismatches],
        },
        "rss_ready_mib": rss_ready[0],
        "rss_mib": rss_kdns,
        "hwm_mib": hwm_kdns,
        "knot_rss_mib": rss_knot,
        "cold_start": {"kdns": kdns_start, "knotd": knot_start, "api": api_start and api_start["start"]},
        "api_rss": api_start and {k: v for k, v in api_start.items() if k != "start"},
        "forward": fwd,
    }
    res.facts["load average at end"] = loadavg()
    res.rows = rows(res.raw, args)
    res.notes = notes(args, preset, agreement)
    text = markdown(res)
    prof = "".join(
        f"\nProfile of kdns at max load, {name}:\n\n```\n{p}\n```\n" for name, p in profiles.items()
    )
    (work / "results.md").write_text(text + prof)
    (work / "results.json").write_text(json.dumps({**asdict(res)}, indent=2, default=str))
    print("\n" + text)
    if prof:
        print(prof)
    print(f"written: {work / 'results.md'}, {work / 'results.json'}")
    return 1 if agreement.mismatches else 0


def _perf_dict(p: dnsperf.PerfResult) -> dict[str, Any]:
    d = asdict(p)
    d.pop("latencies")
    d["p50"], d["p99"], d["p999"] = p.percentile(50), p.percentile(99), p.percentile(99.9)
    d["per_cpu_second"] = p.per_cpu_second
    return d


def report_agreement(a: Agreement) -> None:
    print(
        f"answers agree on {a.asked - len(a.mismatches)}/{a.asked} sampled questions"
        f" (TC bit differs on {len(a.tc_differs)})",
        flush=True,
    )
    for m in a.mismatches[:20]:
        print(f"  MISMATCH {m.question}:\n    kdns:  {m.left}\n    knotd: {m.right}")


def run_profile(kd: Proc, port: int, queries: Path, args: argparse.Namespace, raw: Path) -> str:
    """py-spy on kdns while dnsperf loads it at max rate for --profile seconds; raw stacks to `raw`."""
    spy = py_spy()
    load = threading.Thread(
        target=dnsperf.run,
        args=(port, queries),
        daemon=True,
        kwargs={
            "seconds": args.profile + 3,
            "cpu": args.client_cpu,
            "clients": args.clients,
            "outstanding": args.outstanding,
        },
    )
    load.start()
    time.sleep(1)
    subprocess.run(
        [
            spy,
            "record",
            "-p",
            str(kd.pid),
            "-d",
            str(int(args.profile)),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(raw),
        ],
        check=True,
        capture_output=True,
    )
    load.join()
    return profile_summary(raw.read_text())


def cold_start_from_api(
    work: Path,
    files: gen.Written,
    probe: tuple[str, str, set[str]],
    args: argparse.Namespace,
    extra: list[str],
) -> dict[str, float]:
    """kdns against the test API server preloaded with the same objects: process start → first
    correct answer, then RSS after a max-load run (the path a cluster takes: no manifest file held
    in memory). The API server (Python, on the client CPU) is started and loaded first."""
    manifests = files.manifests
    api_port = free_port()
    with running(start_apiserver(work, manifests, api_port, args.client_cpu)) as api:
        deadline = time.monotonic() + 300
        while "apiserver listening" not in api.log.read_text(errors="replace"):
            api.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("test API server did not start")
            time.sleep(0.1)
        port = free_port()
        corefile = COREFILES["minimal"].format(
            port=port, source=f"endpoint http://127.0.0.1:{api_port}", upstream=0
        )
        with running(start_kdns(work, corefile, args.server_cpu, name="kdns-api", extra_args=extra)) as kd:
            took = wait_for(kd, answers(port, *probe), 300)
            dnsperf.run(port, files.queries, seconds=args.seconds, cpu=args.client_cpu, clients=args.clients,
                        outstanding=args.outstanding)  # fmt: skip
            rss, hwm = rss_mib(kd.pid)
    print(f"cold start from the API server: {took:.2f}s; RSS after load {rss:.0f} MiB", flush=True)
    return {"start": took, "rss_mib": rss, "hwm_mib": hwm}


def forwarded(
    work: Path,
    upstream: tuple[int, int],
    queries: Path,
    args: argparse.Namespace,
    extra: list[str],
    profiles: dict[str, str],
) -> dict[str, Any]:
    """Forwarded names through `cache` + `forward` to knotd (`upstream` = its port and PID), cache
    warmed by one pass; knotd's own authoritative qps on the same questions is the reference."""
    port = free_port()
    kd = start_kdns(
        work,
        FORWARD_COREFILE.format(port=port, upstream=upstream[0]),
        args.server_cpu,
        name="kdns-forward",
        extra_args=extra,
    )
    with running(kd):
        try:
            wait_for(kd, answers(port, f"host-0.{gen.FORWARD_ZONE}", "A", {"10.0.0.0"}), 60)
        except (RuntimeError, TimeoutError) as exc:
            print(f"forwarded names: kdns could not serve them: {exc}", flush=True)
            return {"error": str(exc).splitlines()[-1] if str(exc) else repr(exc)}
        dnsperf.run(port, queries, seconds=0, cpu=args.client_cpu, clients=1, outstanding=20, once=True)
        kdns_perf = dnsperf.run(
            port,
            queries,
            seconds=args.seconds,
            cpu=args.client_cpu,
            clients=args.clients,
            outstanding=args.outstanding,
            server_pid=kd.pid,
        )
        if args.profile > 0:
            profiles["forwarded names, warm cache"] = run_profile(
                kd, port, queries, args, work / "profile-forward.txt"
            )
    knot_perf = dnsperf.run(
        upstream[0],
        queries,
        seconds=args.seconds,
        cpu=args.client_cpu,
        clients=args.clients,
        outstanding=args.outstanding,
        server_pid=upstream[1],
    )
    print(f"forwarded, warm cache: kdns {kdns_perf.qps:,.0f} qps; knotd (authoritative) {knot_perf.qps:,.0f}")
    return {"kdns": _perf_dict(kdns_perf), "knotd": _perf_dict(knot_perf)}


def rows(raw: dict[str, Any], args: argparse.Namespace) -> list[Row]:
    p, lat, cold = raw["perf"], raw["latency"], raw["cold_start"]
    kq, nq = p["kdns"]["qps"], p["knotd"]["qps"]
    out = [
        Row(
            "cluster-name qps, max load (90% hits / 10% NXDOMAIN)",
            fmt_qps(kq),
            fmt_qps(nq),
            ratio(kq, nq),
            f"≥ 100k and ≥ 65% of knotd: {met(kq >= 100_000 and kq >= 0.65 * nq)}",
        ),
        Row("lost queries at max load", _lost(p["kdns"]), _lost(p["knotd"])),
    ]
    if "kdns again" in p:
        kq2, nq2 = p["kdns again"]["qps"], p["knotd again"]["qps"]
        out.append(
            Row(
                "same, second run (every question asked before)",
                fmt_qps(kq2),
                fmt_qps(nq2),
                ratio(kq2, nq2),
                f"≥ 100k and ≥ 65% of knotd: {met(kq2 >= 100_000 and kq2 >= 0.65 * nq2)}",
            )
        )
    kc, nc = p["kdns"]["per_cpu_second"], p["knotd"]["per_cpu_second"]
    out.append(
        Row(
            "answers per server CPU-second at max load",
            fmt_qps(kc),
            fmt_qps(nc),
            ratio(kc, nc),
            "(same as qps on an idle core)",
        )
    )
    kp99, np99 = lat["kdns"]["p99"], lat["knotd"]["p99"]
    out += [
        Row(
            f"latency at {args.latency_qps} qps, p50 (ms)",
            fmt_ms(lat["kdns"]["p50"]),
            fmt_ms(lat["knotd"]["p50"]),
            ratio(lat["kdns"]["p50"], lat["knotd"]["p50"]),
        ),
        Row(
            f"latency at {args.latency_qps} qps, p99 (ms)",
            fmt_ms(kp99),
            fmt_ms(np99),
            ratio(kp99, np99),
            f"p99 ≤ 0.5 ms: {met(kp99 is not None and kp99 <= 0.0005 and lat['kdns']['lost'] == 0)}",
        ),
        Row(f"lost queries at {args.latency_qps} qps", _lost(lat["kdns"]), _lost(lat["knotd"])),
        Row(
            "RSS after load, from manifests (MiB; peak in brackets)",
            f"{raw['rss_mib']:.0f} ({raw['hwm_mib']:.0f})",
            f"{raw['knot_rss_mib']:.0f}",
            ratio(raw["rss_mib"], raw["knot_rss_mib"]),
            "(the 21 MB manifest is parsed whole: demo/bench path)",
        ),
        Row(
            "cold start to first correct answer, manifests (s)",
            f"{cold['kdns']:.2f}",
            f"{cold['knotd']:.2f}",
            ratio(cold["kdns"], cold["knotd"]),
            f"≤ 5 s: {met(cold['kdns'] <= 5)}",
        ),
    ]
    if cold["api"] is not None:
        out.append(
            Row(
                "cold start to first correct answer, test API server (s)",
                f"{cold['api']:.2f}",
                target=f"≤ 5 s: {met(cold['api'] <= 5)}",
            )
        )
    api_rss = raw.get("api_rss")
    if api_rss:
        out.append(
            Row(
                "RSS after load, synced from the test API server (MiB; peak in brackets)",
                f"{api_rss['rss_mib']:.0f} ({api_rss['hwm_mib']:.0f})",
                target=f"≤ 120 MB (114 MiB): {met(api_rss['rss_mib'] * 1.048576 <= 120)}",
            )
        )
    fwd = raw["forward"]
    if fwd is not None and "error" in fwd:
        out.append(Row("forwarded names, warm cache (qps)", f"not measured: {fwd['error']}", target="≥ 50k"))
    elif fwd is not None:
        fk, fn = fwd["kdns"]["qps"], fwd["knotd"]["qps"]
        out.append(
            Row(
                "forwarded names, warm cache (qps; knotd: authoritative)",
                fmt_qps(fk),
                fmt_qps(fn),
                ratio(fk, fn),
                f"≥ 50k: {met(fk >= 50_000)}",
            )
        )
        fkc, fnc = fwd["kdns"]["per_cpu_second"], fwd["knotd"]["per_cpu_second"]
        out.append(
            Row("forwarded names, answers per server CPU-second", fmt_qps(fkc), fmt_qps(fnc), ratio(fkc, fnc))
        )
    a = raw["agreement"]
    out.append(
        Row("sampled answers equal to knotd's", f"{a['asked'] - a['mismatches']}/{a['asked']}", target="all")
    )
    return out


def _lost(p: dict[str, Any]) -> str:
    return f"{p['lost']:,} ({p['lost'] / p['sent']:.1%})" if p["sent"] else "–"


def notes(args: argparse.Namespace, preset: gen.Preset, agreement: Agreement) -> list[str]:
    return [
        f"data: {preset.services:,} Services, {preset.endpoints:,} endpoints in {preset.namespaces} "
        f"namespaces, seed {args.seed}; {preset.queries:,} questions (A 70%, AAAA 10%, SRV 10%, "
        "search-path NXDOMAIN 10%)",
        f"Corefile: {args.corefile}; kdns and knotd (1 UDP + 1 TCP worker) pinned to CPU {args.server_cpu}, "
        f"dnsperf to CPU {args.client_cpu} (-c {args.clients} -q {args.outstanding}, UDP, no EDNS)",
        f"max load runs {args.seconds:g} s each; latency runs {args.latency_seconds:g} s at "
        f"{args.latency_qps} qps, percentiles from dnsperf -v per-query times (lost queries excluded)",
        f"TC bit differs on {len(agreement.tc_differs)} of {agreement.asked} sampled answers: SRV glue "
        "over 512 bytes (kdns sets TC as CoreDNS does, knotd does not)",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
