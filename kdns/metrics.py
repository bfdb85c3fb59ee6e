"""The process-wide Prometheus registry and CoreDNS's metric names, so dashboards keep working.

Every metric lives in `REGISTRY` for the life of the process: reloads build new plugin instances but
must not declare metrics twice (prometheus-client refuses duplicates), so plugin modules declare their
metrics at import time through `counter`/`gauge`/`histogram`, which return the existing object when
the same metric is declared again. Names are `coredns_<subsystem>_<name>` exactly as CoreDNS exports
them (docs/dns-contract.md §19); the `prometheus` plugin serves this registry on /metrics. What
CoreDNS has no metric for (the listeners' limits, docs/operations.md) is `kdns_<subsystem>_<name>`.

Metrics updated on every query use `hot_counter`/`hot_histogram` instead: prometheus-client takes a
lock on every inc/observe (1–3 µs each, measured), which added ~11 µs to each query for the five
updates CoreDNS makes. Updates and scrapes all run on the one event-loop thread, so these keep plain
numbers and hand them to prometheus-client only when /metrics is read.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from kdns import __version__
from kdns.plugin import NoNextPlugin, PluginError

NAMESPACE = "coredns"
KDNS = "kdns"  # kdns's own metrics, with no CoreDNS equivalent (docs/operations.md)
# plugin.TimeBuckets in CoreDNS: prometheus.ExponentialBuckets(0.00025, 2, 16), 0.25 ms … 8.192 s.
TIME_BUCKETS: tuple[float, ...] = tuple(0.00025 * 2**n for n in range(16))
# plugin.SlimTimeBuckets: ExponentialBuckets(0.00025, 10, 5), 0.25 ms … 2.5 s.
SLIM_TIME_BUCKETS: tuple[float, ...] = tuple(0.00025 * 10**n for n in range(5))
# CoreDNS's request/response size buckets (plugin/metrics/vars).
SIZE_BUCKETS: tuple[float, ...] = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)

# Go's client has no `<name>_created` series; dashboards written for CoreDNS do not expect them.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry()
# The Go runtime's process_* collector has a direct Python equivalent; python_info stands in for go_info.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_declared: dict[str, object] = {}
_M = TypeVar("_M")


def _full_name(namespace: str, subsystem: str, name: str) -> str:
    return "_".join(p for p in (namespace, subsystem, name) if p)


def _declare(
    kind: type[_M],
    subsystem: str,
    name: str,
    labels: Sequence[str],
    make: Callable[[], _M],
    namespace: str = NAMESPACE,
) -> _M:
    """The metric already declared under this full name, else a new one from `make`."""
    full = _full_name(namespace, subsystem, name)
    existing = _declared.get(full)
    if existing is not None:
        if not isinstance(existing, kind) or _labelnames(existing) != tuple(labels):
            raise ValueError(f"metric {full} already declared with another type or labels")
        return existing
    metric = make()
    _declared[full] = metric
    return metric


def _labelnames(metric: object) -> tuple[str, ...]:
    if isinstance(metric, MetricWrapperBase):
        return tuple(metric._labelnames)
    return metric.labelnames if isinstance(metric, _HotFamily | ScrapedGauge) else ()


def counter(subsystem: str, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    """`coredns_<subsystem>_<name>` as a counter (name ends in `_total`, as CoreDNS's do)."""
    return _declare(
        Counter,
        subsystem,
        name,
        labels,
        lambda: Counter(name, doc, labels, namespace=NAMESPACE, subsystem=subsystem, registry=REGISTRY),
    )


def gauge(subsystem: str, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
    return _declare(
        Gauge,
        subsystem,
        name,
        labels,
        lambda: Gauge(name, doc, labels, namespace=NAMESPACE, subsystem=subsystem, registry=REGISTRY),
    )


def histogram(
    subsystem: str, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = TIME_BUCKETS
) -> Histogram:
    return _declare(
        Histogram,
        subsystem,
        name,
        labels,
        lambda: Histogram(
            name, doc, labels, namespace=NAMESPACE, subsystem=subsystem, registry=REGISTRY, buckets=buckets
        ),
    )


class HotCount:
    """One counter child of a HotCounter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HotObservations:
    """One histogram child of a HotHistogram: per-bucket counts, made cumulative when scraped."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # first bucket whose bound is >= amount
        self.sum += amount

    def add(self, counts: Sequence[int], total: float) -> None:
        """Observations counted elsewhere with the same bounds (per bucket, +Inf last) and their sum."""
        for i, n in enumerate(counts):
            self.counts[i] += n
        self.sum += total


_C = TypeVar("_C", HotCount, HotObservations)


class _HotFamily(Collector, Generic[_C]):
    """A labelled metric whose children are plain numbers, turned into samples at scrape time."""

    def __init__(self, full: str, doc: str, labelnames: Sequence[str], make: Callable[[], _C]) -> None:
        self.full = full
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self._make: Callable[[], _C] = make
        self._children: dict[tuple[str, ...], _C] = {}
        REGISTRY.register(self)

    def labels(self, *values: str) -> _C:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.full}: want labels {self.labelnames}, got {values}")
            child = self._children[values] = self._make()
        return child


class HotCounter(_HotFamily[HotCount]):
    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.full, self.doc, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value)
        yield family


class HotHistogram(_HotFamily[HotObservations]):
    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.full, self.doc, labels=self.labelnames)
        for values, child in list(self._children.items()):
            running, buckets = 0, []
            for bound, count in zip((*child.bounds, float("inf")), child.counts, strict=True):
                running += count
                buckets.append((floatToGoString(bound), float(running)))  # type: ignore[no-untyped-call]
            family.add_metric(values, buckets, child.sum)
        yield family


def hot_counter(
    subsystem: str, name: str, doc: str, labels: Sequence[str], namespace: str = NAMESPACE
) -> HotCounter:
    """A labelled counter for the query path (see the module docstring). kdns's own metrics, which
    CoreDNS has no equivalent of, take namespace=KDNS."""
    full = _full_name(namespace, subsystem, name)
    return _declare(
        HotCounter, subsystem, name, labels, lambda: HotCounter(full, doc, labels, HotCount), namespace
    )


def hot_histogram(
    subsystem: str, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float] = TIME_BUCKETS
) -> HotHistogram:
    """A labelled histogram for the query path (see the module docstring)."""
    full = _full_name(NAMESPACE, subsystem, name)
    bounds = tuple(float(b) for b in buckets)
    return _declare(
        HotHistogram,
        subsystem,
        name,
        labels,
        lambda: HotHistogram(full, doc, labels, lambda: HotObservations(bounds)),
    )


Reading = Iterable[tuple[Sequence[str], float]]


class ScrapedGauge(Collector):
    """A labelled gauge read when /metrics is scraped: sizes the server knows anyway (open
    connections, templates held), so nothing is updated per packet."""

    def __init__(self, full: str, doc: str, labelnames: Sequence[str], read: Callable[[], Reading]) -> None:
        self.full = full
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self._read = read
        REGISTRY.register(self)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.full, self.doc, labels=self.labelnames)
        for values, value in self._read():
            family.add_metric(values, value)
        yield family


def scraped_gauge(
    subsystem: str, name: str, doc: str, labels: Sequence[str], read: Callable[[], Reading],
    namespace: str = NAMESPACE,
) -> ScrapedGauge:  # fmt: skip
    """A gauge whose samples `read()` gives at scrape time: (label values, value) pairs."""
    full = _full_name(namespace, subsystem, name)
    return _declare(
        ScrapedGauge, subsystem, name, labels, lambda: ScrapedGauge(full, doc, labels, read), namespace
    )


def is_panic(exc: BaseException) -> bool:
    """Whether a plugin's exception is a bug (CoreDNS would have panicked) rather than a failure.

    PluginError/NoNextPlugin are how plugins report failure on purpose and OSError covers network
    and timeout failures; anything else (TypeError, KeyError…) is a programming error.
    """
    return not isinstance(exc, PluginError | NoNextPlugin | OSError)


# --- the server-level metrics (plugin/metrics/vars in CoreDNS) ---------------------------------------

BUILD_INFO = gauge(
    "",
    "build_info",
    "A metric with a constant '1' value labeled by version, revision, and goversion from "
    "which CoreDNS was built.",
    ("version", "revision", "goversion"),
)
PANICS = counter("", "panics_total", "A metrics that counts the number of panics.")
PLUGIN_ENABLED = gauge(
    "",
    "plugin_enabled",
    "A metric that indicates whether a plugin is enabled on per server and zone basis.",
    ("server", "zone", "view", "name"),
)
REQUESTS = hot_counter(
    "dns",
    "requests_total",
    "Counter of DNS requests made per zone, protocol and family.",
    ("server", "zone", "view", "proto", "family", "type"),
)
REQUEST_DURATION = hot_histogram(
    "dns",
    "request_duration_seconds",
    "Histogram of the time (in seconds) each request took per zone.",
    ("server", "zone", "view"),
)
REQUEST_SIZE = hot_histogram(
    "dns",
    "request_size_bytes",
    "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
    ("server", "zone", "view", "proto"),
    SIZE_BUCKETS,
)
RESPONSE_SIZE = hot_histogram(
    "dns",
    "response_size_bytes",
    "Size of the returned response in bytes.",
    ("server", "zone", "view", "proto"),
    SIZE_BUCKETS,
)
DO_REQUESTS = hot_counter(
    "dns",
    "do_requests_total",
    "Counter of DNS requests with DO bit set per zone.",
    ("server", "zone", "view"),
)
RESPONSES = hot_counter(
    "dns",
    "responses_total",
    "Counter of response status codes.",
    ("server", "zone", "view", "rcode", "plugin"),
)

# revision: kdns is not built from a VCS checkout at run time; goversion carries the Python version.
BUILD_INFO.labels(__version__, "", f"python{sys.version.split()[0]}").set(1)
