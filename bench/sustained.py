"""Sustained load and memory under floods (issue #15): `python -m bench.sustained`.

One kdns (kind's Corefile shape on the generated cluster, pinned to --server-cpu; dnsperf on
--client-cpu), then, in order:
1. warm-up: one pass over the Pod-shaped question file (bench/queries.py);
2. idle latency: --idle-qps for 20 s, p99 of the answered queries;
3. peak: dnsperf at max load (-c 4 -q 200) for 20 s, as bench/run.py measures it;
4. sustained: --load × peak qps for --seconds (default 60 s, 80%); pass when no query is lost and
   p99 ≤ 2 × idle p99;
5. floods, each at max load for --flood-seconds (60 s) with RSS (VmRSS) sampled every 5 s: random
   names that do not exist (`<random>.<namespace>.svc.cluster.local`, every one different: NXDOMAIN,
   each a new cache entry) and random qtypes (0–65535) of existing names. Reported: RSS before,
   the samples, after, and the peak (VmHWM).

Prints a table and writes results.md / results.json to --workdir.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import dnsperf, gen
from bench.run import COREFILES, ensure_tools, machine_facts, running
from bench.servers import answers, rss_mib, start_kdns, wait_for
from tests.support.ports import free_port

RSS_EVERY_S = 5.0


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
    idle: dict[str, float] = field(default_factory=dict)
    peak: dict[str, float] = field(default_factory=dict)
    sustained: dict[str, float] = field(default_factory=dict)
    floods: list[Flood] = field(default_factory=list)

    @property
    def sustained_ok(self) -> bool:
        return self.sustained["lost"] == 0 and self.sustained["p99_ms"] <= 2 * self.idle["p99_ms"]


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
    i, p, s = res.idle, res.peak, res.sustained
    lines = [
        f"Command: `{res.command}`",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| idle ({args.idle_qps} qps) p50 / p99 | {i['p50_ms']:.2f} / {i['p99_ms']:.2f} ms | |",
        f"| peak (max load, {args.peak_seconds:.0f} s) | {p['qps']:,.0f} qps, {p['lost']:.0f} lost | |",
        f"| sustained {args.load:.0%} of peak ({s['target_qps']:,.0f} qps) for {args.seconds:.0f} s "
        f"| {s['qps']:,.0f} qps, {s['completed']:,.0f} answered, {s['lost']:.0f} lost | 0 lost |",
        f"| sustained p50 / p99 | {s['p50_ms']:.2f} / {s['p99_ms']:.2f} ms "
        f"| p99 ≤ {2 * i['p99_ms']:.2f} ms (2 × idle) |",
    ]
    for f in res.floods:
        samples = ", ".join(f"{v:.0f}" for v in f.rss_samples)
        lines.append(f"| {f.name} flood, {args.flood_seconds:.0f} s at {f.qps:,.0f} qps "
                     f"| RSS {f.rss_before:.1f} → {f.rss_after:.1f} MiB ({f.growth:+.1f}); every "
                     f"{RSS_EVERY_S:.0f} s: {samples}; peak {f.peak_rss:.1f} MiB; {f.lost} lost "
                     "| flat |")  # fmt: skip
    lines += ["", f"sustained load: {'PASS' if res.sustained_ok else 'FAIL'}"]
    lines += [f"{k}: {v}" for k, v in res.facts.items()]
    return "\n".join(lines)


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
        perf_args = {"cpu": args.client_cpu, "clients": args.clients, "outstanding": args.outstanding}
        # One client for the single pass, as bench/run.py warms up (dnsperf -n 1 with -c 4 never
        # finished here).
        dnsperf.run(port, files.queries, seconds=0, cpu=args.client_cpu, clients=1, outstanding=20, once=True)
        idle = dnsperf.run(port, files.queries, seconds=20, max_qps=args.idle_qps, verbose=True, **perf_args)
        res.idle = {"qps": idle.qps, "lost": idle.lost, "p50_ms": ms(idle.percentile(50)),
                    "p99_ms": ms(idle.percentile(99))}  # fmt: skip
        print(f"idle: p99 {res.idle['p99_ms']} ms", flush=True)
        peak = dnsperf.run(port, files.queries, seconds=args.peak_seconds, server_pid=kd.pid, **perf_args)
        res.peak = {"qps": peak.qps, "lost": peak.lost, "per_cpu_second": peak.per_cpu_second or 0.0}
        print(f"peak: {peak.qps:,.0f} qps", flush=True)
        target = int(peak.qps * args.load)
        t0 = time.monotonic()
        run = dnsperf.run(port, files.queries, seconds=args.seconds, max_qps=target, verbose=True,
                          **perf_args)  # fmt: skip
        res.sustained = {"target_qps": target, "qps": run.qps, "sent": run.sent, "completed": run.completed,
                         "lost": run.lost, "p50_ms": ms(run.percentile(50)), "p99_ms": ms(run.percentile(99)),
                         "seconds": time.monotonic() - t0}  # fmt: skip
        print(f"sustained: {run.qps:,.0f} qps, {run.lost} lost, p99 {res.sustained['p99_ms']} ms", flush=True)
        for name, queries in (("random NXDOMAIN names", nx_file), ("random qtypes", qtype_file)):
            f = flood(name, port, kd.pid, queries, args.flood_seconds, args)
            res.floods.append(f)
            print(f"{name}: RSS {f.rss_before:.1f} -> {f.rss_after:.1f} MiB", flush=True)
        kd.check_alive()
    text = markdown(res, args)
    (work / "results.md").write_text(text + "\n")
    (work / "results.json").write_text(json.dumps(asdict(res), indent=2, default=str))
    print("\n" + text)
    return 0 if res.sustained_ok else 1


if __name__ == "__main__":
    sys.exit(main())
