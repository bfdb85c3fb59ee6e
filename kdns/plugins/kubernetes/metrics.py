"""The API connection's health as metrics: an outage must be visible, not only in the logs.

CoreDNS exposes only client-go's REST latencies here; these series are kdns's own (prefix `kdns_`),
read from the running informers' counters at scrape time, one series per watched resource (`kind`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kdns import metrics
from kdns.k8s.informer import InformerStats
from kdns.k8s.models import Kind


@runtime_checkable
class HasStats(Protocol):
    @property
    def stats(self) -> Mapping[Kind, InformerStats]: ...


_sources: set[HasStats] = set()

_COUNTERS = (
    ("lists", "Complete lists applied, the first one included."),
    ("relists", "Complete lists after the first (410 Gone, garbage, reconnect without history)."),
    ("watch_restarts", "Watch streams opened after the first one."),
    ("events", "Watch events applied (ADDED, MODIFIED, DELETED)."),
    ("errors", "Failed list or watch attempts (connection errors, timeouts, HTTP errors)."),
)


class _InformerCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        synced = GaugeMetricFamily(
            "kdns_kubernetes_synced", "1 once the first complete list was applied.", labels=["kind"]
        )
        connected = GaugeMetricFamily(
            "kdns_kubernetes_connected", "1 while a watch stream is open.", labels=["kind"]
        )
        age = GaugeMetricFamily(
            "kdns_kubernetes_last_event_age_seconds",
            "Seconds since the last watch event or bookmark (grows during an outage).",
            labels=["kind"],
        )
        counters = {
            name: CounterMetricFamily(f"kdns_kubernetes_{name}", doc, labels=["kind"])
            for name, doc in _COUNTERS
        }
        now = time.monotonic()
        for source in list(_sources):
            for kind, st in source.stats.items():
                label = [kind.value]
                synced.add_metric(label, float(st.synced))
                connected.add_metric(label, float(st.connected))
                last = st.last_event if st.last_event is not None else st.last_sync
                if last is not None:
                    age.add_metric(label, now - last)
                for name, family in counters.items():
                    family.add_metric(label, float(getattr(st, name)))
        yield from (synced, connected, age, *counters.values())


def watch(source: object) -> None:
    """Report `source` while it runs, if it has a connection to report on (API informers do;
    manifest files do not)."""
    if isinstance(source, HasStats):
        _sources.add(source)


def unwatch(source: object) -> None:
    if isinstance(source, HasStats):
        _sources.discard(source)


metrics.REGISTRY.register(_InformerCollector())
