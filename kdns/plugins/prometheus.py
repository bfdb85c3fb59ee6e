"""`prometheus [ADDRESS]` — CoreDNS's metrics on http://ADDRESS/metrics (default localhost:9153).

The names and labels are CoreDNS's (plugin/metrics/vars), declared in kdns.metrics, so existing
dashboards and alerts work unchanged. Where each number comes from:
- serve() wraps the rest of the block's chain: requests, DO requests, duration, request size, and
  responses by rcode and by the plugin that wrote the reply (empty when a plugin failed and the
  server wrote the SERVFAIL);
- an observer on every listener's dispatcher adds the response size (the bytes actually sent, after
  truncation) and counts queries that never entered a chain (REFUSED for a zone not served,
  BADVERS, NOTIMP…) under zone="dropped", as CoreDNS's server does;
- coredns_plugin_enabled lists the query-path plugins of each block that has `prometheus`, rebuilt
  every time a configuration is applied.
The HTTP listener survives reloads (kdns.plugins._http); several blocks naming one address share it.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

from dnslib import QTYPE, RCODE
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kdns import metrics
from kdns.chain import Chain
from kdns.corefile.model import Corefile, Directive
from kdns.http1.server import Request as HttpRequest
from kdns.http1.server import Response as HttpResponse
from kdns.metrics import HotCount, HotObservations
from kdns.observe import FastStats, Outcome, Served, Traffic
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins import _http
from kdns.plugins._args import expect_args
from kdns.plugins._text import qtype_text, rcode_label
from kdns.request import Reply, Request

DEFAULT_ADDRESS = "localhost:9153"
PATH = "/metrics"
DROPPED = "dropped"  # no closing dot: never a real zone (CoreDNS vars.Dropped)
VIEW = ""  # kdns has no view plugin; CoreDNS leaves the label empty without one
# Query types with their own `type` label value; the rest are counted as "other" (CoreDNS vars.monitorType).
_MONITORED = ("A", "AAAA", "MX", "SOA", "CNAME", "PTR", "TXT", "NS", "SRV", "DS", "DNSKEY", "RRSIG", "NSEC",
              "NSEC3", "HTTPS", "IXFR", "AXFR", "ANY")  # fmt: skip
MONITORED_TYPES = frozenset(QTYPE.reverse[t] for t in _MONITORED)
_SERVFAIL = rcode_label(RCODE.SERVFAIL)
_PENDING_KEY = "prometheus.new_dispatchers"
_OBSERVING_KEY = "prometheus.observing_loads"


def type_label(qtype: int) -> str:
    return qtype_text(qtype) if qtype in MONITORED_TYPES else "other"


@dataclass(frozen=True, slots=True)
class _Series:
    """The labelled children one kind of query updates, looked up once per kind of query."""

    requests: HotCount
    duration: HotObservations
    request_size: HotObservations
    responses: HotCount
    do_requests: HotCount

    @classmethod
    def of(
        cls, server: str, zone: str, proto: str, family: str, qtype: str, rcode: str, plugin: str
    ) -> _Series:
        return cls(
            metrics.REQUESTS.labels(server, zone, VIEW, proto, family, qtype),
            metrics.REQUEST_DURATION.labels(server, zone, VIEW),
            metrics.REQUEST_SIZE.labels(server, zone, VIEW, proto),
            metrics.RESPONSES.labels(server, zone, VIEW, rcode, plugin),
            metrics.DO_REQUESTS.labels(server, zone, VIEW),
        )


# Bounded: servers and zones come from the Corefile, types collapse to `other`, rcodes and plugins
# are few. The metric objects are process-wide, so the children stay valid across reloads.
_series: dict[tuple[str, str, str, int, str, str, str], _Series] = {}


def report(r: Request, zone: str, rcode: str, plugin: str, seconds: float) -> None:
    """Everything CoreDNS's vars.Report records, except the response size (see observe)."""
    _record(r.server, zone, r.proto, r.family, r.qtype, rcode, plugin, r.do, r.size, seconds)


def _record(
    server: str,
    zone: str,
    proto: str,
    family: int,
    qtype_number: int,
    rcode: str,
    plugin: str,
    do: bool,
    size: int,
    seconds: float,
) -> None:
    series = _series_of(server, zone, proto, family, type_label(qtype_number), rcode, plugin)
    if do:
        series.do_requests.inc()
    series.requests.inc()
    series.duration.observe(seconds)
    series.request_size.observe(size)
    series.responses.inc()


def _series_of(
    server: str, zone: str, proto: str, family: int, qtype: str, rcode: str, plugin: str
) -> _Series:
    key = (server, zone, proto, family, qtype, rcode, plugin)
    series = _series.get(key)
    if series is None:
        series = _series[key] = _Series.of(server, zone, proto, str(family), qtype, rcode, plugin)
    return series


_response_sizes: dict[tuple[str, str, str], HotObservations] = {}
_chains_with_prometheus: weakref.WeakKeyDictionary[Chain, bool] = weakref.WeakKeyDictionary()


def observe(outcome: Outcome, proto: str, client: tuple[str, int]) -> None:
    """Dispatcher observer: response sizes for blocks with prometheus, and the dropped queries."""
    r, reply, chain = outcome.request, outcome.reply, outcome.chain
    if chain is None:
        report(r, DROPPED, rcode_label(reply.rcode), "", 0.0)
        zone = DROPPED
    elif _counts(chain):
        zone = r.zone
    else:
        return
    _response_size(r.server, zone, proto, len(outcome.wire))


def observe_fast(info: Served, stats: FastStats) -> None:
    """Fast-path observer: the same series for replies served from cached bytes since the last
    harvest (never `dropped`: only chain answers are cached)."""
    if not _counts(info.chain):
        return
    qtype, rcode = type_label(info.qtype), rcode_label(info.rcode)
    total = 0
    server, zone = info.server, info.zone
    for proto, by_family, sizes in zip(("udp", "tcp"), stats.counts, stats.sizes, strict=True):
        served = sum(by_family)
        if not served:
            continue
        total += served
        for family, n in zip((1, 2), by_family, strict=True):
            if n:
                _series_of(server, zone, proto, family, qtype, rcode, info.plugin).requests.inc(n)
        metrics.REQUEST_SIZE.labels(server, zone, VIEW, proto).add(sizes.requests, sizes.request_sum)
        _response_sizes_of(server, zone, proto).add(sizes.responses, sizes.response_sum)
    metrics.REQUEST_DURATION.labels(server, zone, VIEW).add(stats.durations, stats.duration_sum)
    metrics.RESPONSES.labels(server, zone, VIEW, rcode, info.plugin).inc(total)
    if info.do:
        metrics.DO_REQUESTS.labels(server, zone, VIEW).inc(total)


def _counts(chain: Chain) -> bool:
    """Is `chain` a block with prometheus in it? (Memoised: asked for every query.)"""
    counted = _chains_with_prometheus.get(chain)
    if counted is None:
        counted = _chains_with_prometheus[chain] = chain.find(Prometheus.name) is not None
    return counted


def _response_size(server: str, zone: str, proto: str, size: int) -> None:
    _response_sizes_of(server, zone, proto).observe(size)


def _response_sizes_of(server: str, zone: str, proto: str) -> HotObservations:
    key = (server, zone, proto)
    sizes = _response_sizes.get(key)
    if sizes is None:
        sizes = _response_sizes[key] = metrics.RESPONSE_SIZE.labels(server, zone, VIEW, proto)
    return sizes


def _describe(listeners: list[Traffic]) -> None:
    """coredns_plugin_enabled for the configuration just applied (CoreDNS resets it on restart)."""
    metrics.PLUGIN_ENABLED.clear()
    for traffic in listeners:
        for zone, chain in traffic.zones.items():
            if chain.find(Prometheus.name) is None:
                continue
            for plugin in chain.plugins:
                if plugin.in_query_path:
                    metrics.PLUGIN_ENABLED.labels(traffic.label, zone, VIEW, plugin.name).set(1)


# Listeners whose fast-path counts are collected before each scrape (a reload retires a listener's
# traffic after harvesting it one last time: kdns.server.runtime).
_harvested: weakref.WeakSet[Traffic] = weakref.WeakSet()


async def _serve_metrics(request: HttpRequest) -> HttpResponse:
    for traffic in list(_harvested):
        traffic.harvest()
    return HttpResponse(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)


class Prometheus(Plugin):
    name = "prometheus"

    def __init__(self, address: tuple[str | None, int], shared: dict[str, Any]) -> None:
        self.address = address
        self.shared = shared

    def transparent_for(self, qname: str) -> bool:
        return True  # it only counts, and counts fast-path replies through observe_fast

    async def serve(self, request: Request, next_: Handler) -> Reply:
        start = time.perf_counter()
        try:
            reply = await next_(request)
        except Exception as e:
            if metrics.is_panic(e):
                metrics.PANICS.inc()
            report(request, request.zone, _SERVFAIL, "", time.perf_counter() - start)
            raise
        report(request, request.zone, rcode_label(reply.rcode), reply.plugin, time.perf_counter() - start)
        return reply

    def observe(self, traffic: Traffic) -> None:
        if observe not in traffic.observers:
            traffic.observers.append(observe)
            traffic.fast_observers.append(observe_fast)
            _harvested.add(traffic)
        pending: list[Traffic] = self.shared.setdefault(_PENDING_KEY, [])
        if traffic not in pending:
            pending.append(traffic)

    async def start(self) -> None:
        await _http.mount(self.shared, self.address, PATH, self, _serve_metrics)

    async def stop(self) -> None:
        await _http.unmount(self.shared, self.address, PATH, self)


def _watch_loads(ctx: SetupContext) -> None:
    """Once per process: rebuild plugin_enabled each time a configuration is applied."""
    if ctx.shared.get(_OBSERVING_KEY):
        return
    ctx.shared[_OBSERVING_KEY] = True
    shared = ctx.shared

    def applied(ok: bool, corefile: Corefile | None) -> None:
        if ok:
            pending: list[Traffic] = shared.setdefault(_PENDING_KEY, [])
            _describe(pending)
            pending.clear()

    ctx.controller.reload_observers.append(applied)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 1)
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}'")
    address = _http.parse_address(d, args[0] if args else DEFAULT_ADDRESS)
    _watch_loads(ctx)
    return Prometheus(address, ctx.shared)
