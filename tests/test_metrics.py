"""kdns.metrics: declared once per process, and the lock-free query-path metrics expose exactly what
prometheus-client's own Counter and Histogram would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from kdns import metrics


def exposition(registry: CollectorRegistry, name: str) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if line.startswith(name) and not line.startswith("#")]


def test_hot_metrics_match_prometheus_client() -> None:
    reference = CollectorRegistry()
    buckets = (0, 100, 511, 1023)
    ref_h = Histogram(
        "h", "doc", ("a",), namespace="coredns", subsystem="t", buckets=buckets, registry=reference
    )
    ref_c = Counter("c_total", "doc", ("a",), namespace="coredns", subsystem="t", registry=reference)
    hot_h = metrics.hot_histogram("t", "h", "doc", ("a",), buckets)
    hot_c = metrics.hot_counter("t", "c_total", "doc", ("a",))
    for label, amount in [("x", 0), ("x", 100), ("x", 101), ("x", 5000), ("y", 511), ("y", 0.5)]:
        ref_h.labels(label).observe(amount)
        hot_h.labels(label).observe(amount)
        ref_c.labels(label).inc(2)
        hot_c.labels(label).inc(2)
    assert exposition(metrics.REGISTRY, "coredns_t_") == exposition(reference, "coredns_t_")
    assert len(exposition(reference, "coredns_t_")) == 2 * (len(buckets) + 3) + 2


def test_declaring_twice_returns_the_same_metric() -> None:
    assert metrics.counter("t", "again_total", "doc", ("a",)) is metrics.counter(
        "t", "again_total", "doc", ("a",)
    )
    assert metrics.hot_counter("t", "hot_total", "doc", ("a",)) is metrics.hot_counter(
        "t", "hot_total", "d", ("a",)
    )
    with pytest.raises(ValueError, match="already declared"):
        metrics.gauge("t", "again_total", "doc", ("a",))
    with pytest.raises(ValueError, match="already declared"):
        metrics.hot_counter("t", "hot_total", "doc", ("b",))
    with pytest.raises(ValueError, match="want labels"):
        metrics.hot_counter("t", "hot_total", "doc", ("a",)).labels("1", "2")


def test_time_buckets_are_coredns() -> None:
    assert metrics.TIME_BUCKETS[0] == 0.00025 and len(metrics.TIME_BUCKETS) == 16
    assert metrics.TIME_BUCKETS[-1] == 8.192
    assert metrics.SLIM_TIME_BUCKETS == (0.00025, 0.0025, 0.025, 0.25, 2.5)
