"""The process-wide Prometheus registry and CoreDNS's metric names, so dashboards keep working.

Every metric lives in `REGISTRY` for the life of the process: reloads build new plugin instances but
must not declare metrics twice (prometheus-client refuses duplicates), so plugin modules declare their
metrics at import time through `counter`/`gauge`/`histogram`, which return the existing object when
the same metric is declared again. Names are `coredns_<subsystem>_<name>` exactly as CoreDNS exports
them (coredns-behaviour.md §5); the `prometheus` plugin serves this registry on /metrics.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

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

from kdns import __version__
from kdns.plugin import NoNextPlugin, PluginError

NAMESPACE = "coredns"
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

_declared: dict[str, MetricWrapperBase] = {}
_M = TypeVar("_M", bound=MetricWrapperBase)


def _declare(kind: type[_M], subsystem: str, name: str, labels: Sequence[str], make: Callable[[], _M]) -> _M:
    """The metric already declared under this full name, else a new one from `make`."""
    full = "_".join(p for p in (NAMESPACE, subsystem, name) if p)
    existing = _declared.get(full)
    if existing is not None:
        if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labels):
            raise ValueError(f"metric {full} already declared with another type or labels")
        return existing
    metric = make()
    _declared[full] = metric
    return metric


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
REQUESTS = counter(
    "dns",
    "requests_total",
    "Counter of DNS requests made per zone, protocol and family.",
    ("server", "zone", "view", "proto", "family", "type"),
)
REQUEST_DURATION = histogram(
    "dns",
    "request_duration_seconds",
    "Histogram of the time (in seconds) each request took per zone.",
    ("server", "zone", "view"),
)
REQUEST_SIZE = histogram(
    "dns",
    "request_size_bytes",
    "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
    ("server", "zone", "view", "proto"),
    SIZE_BUCKETS,
)
RESPONSE_SIZE = histogram(
    "dns",
    "response_size_bytes",
    "Size of the returned response in bytes.",
    ("server", "zone", "view", "proto"),
    SIZE_BUCKETS,
)
DO_REQUESTS = counter(
    "dns",
    "do_requests_total",
    "Counter of DNS requests with DO bit set per zone.",
    ("server", "zone", "view"),
)
RESPONSES = counter(
    "dns",
    "responses_total",
    "Counter of response status codes.",
    ("server", "zone", "view", "rcode", "plugin"),
)

# revision: kdns is not built from a VCS checkout at run time; goversion carries the Python version.
BUILD_INFO.labels(__version__, "", f"python{sys.version.split()[0]}").set(1)
