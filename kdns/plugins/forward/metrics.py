"""Forward's Prometheus series, named and labelled as CoreDNS's forward and proxy packages export them."""

from __future__ import annotations

from kdns.metrics import counter, histogram

PROXY_NAME = "forward"  # the `proxy_name` label: CoreDNS's proxy package is shared with grpc

_BROKEN = counter(
    "forward", "healthcheck_broken_total", "Counter of the number of complete failures of the healthchecks."
)
_REJECTS = counter(
    "forward",
    "max_concurrent_rejects_total",
    "Counter of the number of queries rejected because the concurrent queries were at maximum.",
)
_DURATION = histogram(
    "proxy",
    "request_duration_seconds",
    "Histogram of the time each request took.",
    ("proxy_name", "to", "rcode"),
)
_HC_FAILURES = counter(
    "proxy",
    "healthcheck_failures_total",
    "Counter of the number of failed healthchecks.",
    ("proxy_name", "to"),
)
_CONN_HITS = counter(
    "proxy",
    "conn_cache_hits_total",
    "Counter of connection cache hits per upstream and protocol.",
    ("proxy_name", "to", "proto"),
)
_CONN_MISSES = counter(
    "proxy",
    "conn_cache_misses_total",
    "Counter of connection cache misses per upstream and protocol.",
    ("proxy_name", "to", "proto"),
)


def conn_cache(to: str, proto: str, hit: bool) -> None:
    (_CONN_HITS if hit else _CONN_MISSES).labels(PROXY_NAME, to, proto).inc()


def request_duration(to: str, rcode: str, seconds: float) -> None:
    _DURATION.labels(PROXY_NAME, to, rcode).observe(seconds)


def healthcheck_failure(to: str) -> None:
    _HC_FAILURES.labels(PROXY_NAME, to).inc()


def healthcheck_broken() -> None:
    _BROKEN.inc()


def max_concurrent_reject() -> None:
    _REJECTS.inc()
