"""Cache's Prometheus series, named and labelled as CoreDNS's cache plugin exports them.

`zones` is the cache's zones joined by commas and `view` is empty (kdns has no view plugin), as
CoreDNS labels them for a block without a view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdns.metrics import counter, gauge

SUCCESS = "success"
DENIAL = "denial"

ENTRIES = gauge(
    "cache", "entries", "The number of elements in the cache.", ("server", "type", "zones", "view")
)
REQUESTS = counter("cache", "requests_total", "The count of cache requests.", ("server", "zones", "view"))
HITS = counter("cache", "hits_total", "The count of cache hits.", ("server", "type", "zones", "view"))
MISSES = counter(
    "cache",
    "misses_total",
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    ("server", "zones", "view"),
)
PREFETCHES = counter(
    "cache",
    "prefetch_total",
    "The number of times the cache has prefetched a cached item.",
    ("server", "zones", "view"),
)
DROPS = counter(
    "cache",
    "drops_total",
    "The number responses that are not cached, because the reply is malformed.",
    ("server", "zones", "view"),
)
SERVED_STALE = counter(
    "cache",
    "served_stale_total",
    "The number of requests served from stale cache entries.",
    ("server", "zones", "view"),
)
EVICTIONS = counter(
    "cache", "evictions_total", "The count of cache evictions.", ("server", "type", "zones", "view")
)


@dataclass(frozen=True, slots=True)
class Series:
    """One cache's series on one listener, labelled once: `labels()` costs microseconds, and a
    miss touches five of them."""

    requests: Any
    misses: Any
    drops: Any
    served_stale: Any
    prefetches: Any
    hits: dict[str, Any]  # by tier: SUCCESS, DENIAL
    entries: dict[str, Any]
    evictions: dict[str, Any]

    @classmethod
    def of(cls, server: str, zones: str) -> Series:
        def tiers(family: Any) -> dict[str, Any]:
            return {tier: family.labels(server, tier, zones, "") for tier in (SUCCESS, DENIAL)}

        plain = (server, zones, "")
        return cls(REQUESTS.labels(*plain), MISSES.labels(*plain), DROPS.labels(*plain),
                   SERVED_STALE.labels(*plain), PREFETCHES.labels(*plain), tiers(HITS), tiers(ENTRIES),
                   tiers(EVICTIONS))  # fmt: skip
