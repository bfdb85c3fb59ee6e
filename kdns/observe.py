"""What the server tells plugins that watch its traffic (the prometheus plugin), without either side
importing the other: the server implements `Traffic`, plugins register observers on it.

Replies answered through a chain are reported one by one (`Observer`); replies replayed from
templates (kdns.server.fastpath) are counted in bulk and handed over at each `harvest`
(`FastObserver`), because a per-reply callback would cost more than the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kdns.request import Countable, Reply, Request

if TYPE_CHECKING:
    from kdns.chain import Chain


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one packet answered through a chain (or by the server itself)."""

    request: Request
    reply: Reply
    wire: bytes
    chain: Chain | None = None  # the server block that answered; None: the server itself did


@dataclass(slots=True)
class Served:
    """What fast-path observers learn of the replies of one template kind."""

    server: str  # the listener label ("dns://:53")
    zone: str  # the server block zone that answered
    qtype: int
    rcode: int
    plugin: str
    do: bool
    chain: Chain
    counters: tuple[Countable, ...]  # the author's own counters, bumped per reply (Reuse.counters)


@dataclass(frozen=True, slots=True)
class SizeStats:
    requests: tuple[int, ...]  # per bucket of metrics.SIZE_BUCKETS, +Inf last
    request_sum: float
    responses: tuple[int, ...]
    response_sum: float


@dataclass(frozen=True, slots=True)
class FastStats:
    """Replies served from templates of one kind since the last harvest."""

    counts: tuple[tuple[int, int], tuple[int, int]]  # [udp, tcp] × [IPv4, IPv6]
    durations: tuple[int, ...]  # per bucket of metrics.TIME_BUCKETS, +Inf last
    duration_sum: float
    sizes: tuple[SizeStats, SizeStats]  # udp, tcp


Observer = Callable[[Outcome, str, tuple[str, int]], None]
FastObserver = Callable[[Served, FastStats], None]


class Traffic(Protocol):
    """One listener's traffic, as a plugin may watch it (kdns.server.dispatch.Dispatcher)."""

    label: str  # "dns://:53"
    observers: list[Observer]
    # An observer that must see every reply registers here too, and is given the replayed replies'
    # counts at each harvest; the fast path stays off while any observer has not.
    fast_observers: list[FastObserver]

    @property
    def zones(self) -> Mapping[str, Chain]:
        """Zone → the chain serving it, read-only."""

    def harvest(self) -> None:
        """Hand what was replayed since the last call to the fast observers (before a scrape)."""
