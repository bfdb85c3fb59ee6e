"""Sustained load and memory under floods (issue #15): `python -m bench.sustained`.

knotd (the generated zone) and then kdns (kind's Corefile shape on the generated cluster), each
pinned to --server-cpu with dnsperf on --client-cpu, go through:
1. warm-up: one pass over the Pod-shaped question file (bench/queries.py);
2. idle latency: --idle-qps for 20 s, p99 of the answered queries;
3. peak: dnsperf at max load (-c 4 -q 200) for 20 s, as bench/run.py measures it;
4. sustained: --load × kdns's peak qps for --seconds (default 60 s, 80%), the same rate for both
   servers; latency from a 200-qps dnsperf with `-v` beside the load (dnsperf.probing: `-v` on the
   load itself caps dnsperf near 100k qps, and its own queueing became the figure). kdns passes
   when no query is lost and its p99 ≤ 2 × its idle p99; knotd's figures show what the same
   harness gives a C server at that rate on this machine.
kdns then takes, each at max load for --flood-seconds (60 s) with RSS (VmRSS) sampled every 5 s:
random names that do not exist (`<random>.<namespace>.svc.cluster.local`, every one different:
NXDOMAIN, each a new cache entry) and random qtypes (0–65535) of existing names. Reported: RSS
before, the samples, after, and the peak (VmHWM).

Prints a table and writes results.md / results.json to --workdir.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import dnsperf, gen
from bench.run import COREFILES, ensure_tools, machine_facts, running
from bench.servers import answers, rss_mib, start_kdns, start_knotd, wait_for
from tests.support.ports import free_port

RSS_EVERY_S = 5.0
PROBE_QPS = 200  # the latency probe's rate beside the sustained load (as bench/churn.py)


@dataclass
class Flood:
    name: str
    qps: float
    lost: int
    rss_before: float
    rss_samples: list[float]
    rss_after: float
    peak_rss: float  # VmHWM at the end: the process's high-water mark so far

    @property
    def growth(self) -> float:
        return self.rss_after - self.rss_before


@dataclass
class Results:
    facts: dict[str, str]
    command: str
    servers: dict[str, Load] = field(default_factory=dict)  # "knotd", "kdns"
    floods: list[Flood] = field(default_factory=list)

    @property
    def sustained_ok(self) -> bool:
        kdns = self.servers["kdns"]
        return kdns.sustained["lost"] == 0 and kdns.sustained["p99_ms"] <= 2 * kdns.idle["p99_ms"]


@dataclass
class Load:
    """One server's idle, peak and sustained figures."""

    idle: dict[str, float] = field(default_factory=dict)
    peak: dict[str, float] = field(default_factory=dict)
    sustained: dict[str, float] = field(default_factory=dict)


def random_names(cluster: gen.Cluster, count: int, seed: int) -> str:
    """`count` different names that do not exist, in the namespaces' svc subdomains."""
    rng = random.Random(seed)
    namespaces = cluster.namespaces
    return "".join(f"r{i:x}{rng.getrandbits(40):010x}.{rng.choice(namespaces)}.svc.{gen.ZONE} A\n"
                   for i in range(count))  # fmt: skip


def random_qtypes(cluster: gen.Cluster, count: int, seed: int) -> str:
    """Existing Service names asked with random qtypes, every one of the 65,536 included."""
    rng = random.Random(seed)
    services = [s.fqdn for s in cluster.services]
    return "".join(f"{rng.choice(services)} TYPE{rng.randrange(65536)}\n" for _ in range(count))


def flood(name: str, port: int, pid: int, queries: Path, seconds: float, args: argparse.Namespace) -> Flood:
    """Max load from `queries` for `seconds`, RSS sampled meanwhile."""
    before = rss_mib(pid)[0]
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(RSS_EVERY_S):
            samples.append(rss_mib(pid)[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        perf = dnsperf.run(port, queries, seconds=seconds, cpu=args.client_cpu, clients=args.clients,
                           outstanding=args.outstanding)  # fmt: skip
    finally:
        done.set()
        sampler.join()
    after, hwm = rss_mib(pid)
    return Flood(name, perf.qps, perf.lost, before, samples, after, hwm)


def ms(seconds: float | None) -> float:
    return round((seconds or 0.0) * 1000, 3)


def markdown(res: Results, args: argparse.Namespace) -> str:
    kdns, knot = res.servers["kdns"], res.servers.get("knotd")

    def row(figure: str, value: Callable[[Load], str], target: str = "") -> str:
        return f"| {figure} | {value(kdns)} | {value(knot) if knot else '–'} | {target} |"

    target_qps = kdns.sustained["target_qps"]
    lines = [
        f"Command: `{res.command}`",
        "",
        "| figure | kdns | knotd (same harness) | target (kdns) |",
        "|---|---|---|---|",
        row(f"idle ({args.idle_qps} qps) p50 / p99",
            lambda r: f"{r.idle['p50_ms']:.2f} / {r.idle['p99_ms']:.2f} ms"),
        row(f"peak (max load, {args.peak_seconds:.0f} s)",
            lambda r: f"{r.peak['qps']:,.0f} qps, {r.peak['lost']:.0f} lost"),
        row(f"{args.load:.0%} of kdns's peak ({target_qps:,.0f} qps) for {args.seconds:.0f} s",
            lambda r: f"{r.sustained['qps']:,.0f} qps, {r.sustained['completed']:,.0f} answered, "
                      f"{r.sustained['lost']:.0f} lost", "0 lost"),
        row("p50 / p99 then (200-qps probe beside the load)",
            lambda r: f"{r.sustained['p50_ms']:.2f} / {r.sustained['p99_ms']:.2f} ms",
            f"p99 ≤ {2 * kdns.idle['p99_ms']:.2f} ms (2 × idle)"),
    ]  # fmt: skip
    for f in res.floods:
        samples = ", ".join(f"{v:.0f}" for v in f.rss_samples)
        lines.append(f"| {f.name} flood, {args.flood_seconds:.0f} s at {f.qps:,.0f} qps "
                     f"| RSS {f.rss_before:.1f} → {f.rss_after:.1f} MiB ({f.growth:+.1f}); every "
                     f"{RSS_EVERY_S:.0f} s: {samples}; peak {f.peak_rss:.1f} MiB; {f.lost} lost "
                     "| – | flat |")  # fmt: skip
    lines += ["", f"sustained load: {'PASS' if res.sustained_ok else 'FAIL'}"]
    lines += [f"{k}: {v}" for k, v in res.facts.items()]
    return "\n".join(lines)


def measure(port: int, pid: int, queries: Path, target_qps: int | None, work: Path, args: argparse.Namespace,
            label: str) -> Load:
    """Steps 1–4 of the module doc against one server; `target_qps` None: --load × its own peak."""
    perf_args = {"cpu": args.client_cpu, "clients": args.clients, "outstanding": args.outstanding}
    out = Load()
    # One client for the single pass, as bench/run.py warms up (dnsperf -n 1 with -c 4 never
    # finished here).
    dnsperf.run(port, queries, seconds=0, cpu=args.client_cpu, clients=1, outstanding=20, once=True)
    idle = dnsperf.run(port, queries, seconds=20, max_qps=args.idle_qps, verbose=True, **perf_args)
    out.idle = {"qps": idle.qps, "lost": idle.lost, "p50_ms": ms(idle.percentile(50)),
                "p99_ms": ms(idle.percentile(99))}  # fmt: skip
    peak = dnsperf.run(port, queries, seconds=args.peak_seconds, server_pid=pid, **perf_args)
    out.peak = {"qps": peak.qps, "lost": peak.lost, "per_cpu_second": peak.per_cpu_second or 0.0}
    target = target_qps if target_qps is not None else int(peak.qps * args.load)
    probe_out = work / f"probe-{label}.txt"
    with dnsperf.probing(port, queries, cpu=args.client_cpu, qps=PROBE_QPS, out=probe_out) as probe:
        run = dnsperf.run(port, queries, seconds=args.seconds, max_qps=target, **perf_args)
    timed = probe.result
    assert timed is not None
    out.sustained = {"target_qps": target, "qps": run.qps, "sent": run.sent, "completed": run.completed,
                     "lost": run.lost + timed.lost, "p50_ms": ms(timed.percentile(50)),
                     "p99_ms": ms(timed.percentile(99))}  # fmt: skip
    print(f"{label}: idle p99 {out.idle['p99_ms']} ms, peak {peak.qps:,.0f} qps, {target:,} qps: "
          f"{run.lost} lost, p99 {out.sustained['p99_ms']} ms", flush=True)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sustained", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(gen.PRESETS), default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/kdns-sustained"))
    ap.add_argument("--corefile", choices=sorted(COREFILES), default="kind")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the sustained run")
    ap.add_argument("--load", type=float, default=0.8, help="share of peak qps to sustain")
    ap.add_argument("--peak-seconds", type=float, default=20.0)
    ap.add_argument("--idle-qps", type=int, default=500)
    ap.add_argument("--flood-seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    ap.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    args = ap.parse_args(argv)

    ensure_tools()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.sustained " + " ".join(argv if argv is not None else sys.argv[1:])
    res = Results(machine_facts(), command)
    cluster = gen.cluster_for(args.preset, args.seed)
    files = gen.write(cluster, work / "data", gen.PRESETS[args.preset].queries, args.seed)
    # Every flood query different: more lines than a max-load run sends.
    flood_lines = int(40_000 * args.flood_seconds)
    nx_file = work / "data" / "random-names.txt"
    nx_file.write_text(random_names(cluster, flood_lines, args.seed))
    qtype_file = work / "data" / "random-qtypes.txt"
    qtype_file.write_text(random_qtypes(cluster, flood_lines, args.seed))
    probe = next(s for s in reversed(cluster.services) if s.cluster_ips)
    probe_check = (probe.fqdn, "A", {ip for ip in probe.cluster_ips if ":" not in ip})

    port = free_port()
    # kind's Corefile forwards names outside the cluster; none are asked here, so the upstream is a
    # loopback port with nothing behind it.
    corefile = COREFILES[args.corefile].format(port=port, source=f"manifests {files.manifests}",
                                               upstream=free_port())  # fmt: skip
    with running(start_kdns(work, corefile, args.server_cpu)) as kd:
        wait_for(kd, answers(port, *probe_check), 300)
        res.servers["kdns"] = kdns = measure(port, kd.pid, files.queries, None, work, args, "kdns")
        for name, queries in (("random NXDOMAIN names", nx_file), ("random qtypes", qtype_file)):
            f = flood(name, port, kd.pid, queries, args.flood_seconds, args)
            res.floods.append(f)
            print(f"{name}: RSS {f.rss_before:.1f} -> {f.rss_after:.1f} MiB", flush=True)
        kd.check_alive()
    knot_port = free_port()
    with running(start_knotd(work, {gen.ZONE: files.zone}, knot_port, args.server_cpu)) as knot:
        wait_for(knot, answers(knot_port, *probe_check), 120)
        target = int(kdns.sustained["target_qps"])
        res.servers["knotd"] = measure(knot_port, knot.pid, files.queries, target, work, args, "knotd")
    text = markdown(res, args)
    (work / "results.md").write_text(text + "\n")
    (work / "results.json").write_text(json.dumps(asdict(res), indent=2, default=str))
    print("\n" + text)
    return 0 if res.sustained_ok else 1


if __name__ == "__main__":
    sys.exit(main())
