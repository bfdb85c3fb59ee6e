"""The figures of bench/churn.py: what each run measured, issue #12's targets, and the tables.

Pure: no process, no socket (tests/bench/test_churn.py checks the verdicts).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from bench import dnsperf, gen
from bench.run import fmt_ms, fmt_qps, met

MIB_PER_MB = 1_000_000 / 2**20
RSS_TARGET_MB = 120


# --- what was measured ------------------------------------------------------------------------------


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
            f"| {fmt_ms(r.p50)} | {fmt_ms(r.p99)} | {cpu} | {per_cpu} | {pct(r.others)} | {churn} |"
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


def pct(share: float | None) -> str:
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


def check_text(c: Check) -> str:
    if c.wrong == 0:
        return (
            f"all {c.names} changed names right {c.seconds:.1f}s after the churn stopped "
            f"({c.wrong_at_first} still wrong in the first round of asking)"
        )
    return f"{c.wrong} of {c.names} changed names still wrong: " + "; ".join(c.examples)


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
