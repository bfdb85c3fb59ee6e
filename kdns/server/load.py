"""What a listener holds at once and what it turns away: the in-flight budget shared by its UDP and
TCP sides, and the kdns_* metrics of its limits (docs/operations.md, "Limits").

Nothing here runs per replayed packet: the gauges are read when /metrics is scraped, and the budget
costs a comparison and a counter per query the plugin chain answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from kdns import metrics

# Why kdns closed a TCP connection (the client closing it is not counted).
EVICTED = "evicted"  # at tcp_connections, the longest-idle one made room for a new one
REFUSED = "refused"  # at tcp_connections with none idle: the new one
IDLE = "idle"  # no query within read_timeout (the first) or idle_timeout (the next ones)
SLOW_READER = "slow_reader"  # a reply not taken within write_timeout
MAX_TCP_QUERIES = "maxtcpqueries"  # served max_tcp_queries queries
OVERLOAD = "overload"  # a UDP query past the listener's in-flight bound

TCP_CLOSED = metrics.hot_counter(
    "tcp", "connections_closed_total", "TCP connections closed by the server, per listener and reason.",
    ("server", "reason"), namespace=metrics.KDNS,
)  # fmt: skip
DROPPED = metrics.hot_counter(
    "", "queries_dropped_total", "Queries dropped unanswered, per listener and reason.",
    ("server", "reason"), namespace=metrics.KDNS,
)  # fmt: skip
FLUSHES = metrics.hot_counter(
    "fastpath", "flushes_total", "Times the fast path's template table was full and emptied.",
    ("server",), namespace=metrics.KDNS,
)  # fmt: skip


class Watched(Protocol):
    """A listener as its gauges read it (kdns.server.listeners.Listener)."""

    @property
    def label(self) -> str: ...
    @property
    def open(self) -> bool: ...
    @property
    def tcp_connections(self) -> int: ...
    @property
    def inflight(self) -> int: ...
    @property
    def templates(self) -> int: ...


_watched: weakref.WeakSet[Watched] = weakref.WeakSet()


def watch(listener: Watched) -> None:
    """Report this listener's gauges while it is open."""
    _watched.add(listener)


def _gauge(read: Callable[[Watched], int]) -> Callable[[], Iterator[tuple[tuple[str], float]]]:
    def samples() -> Iterator[tuple[tuple[str], float]]:
        for listener in list(_watched):
            if listener.open:
                yield (listener.label,), float(read(listener))

    return samples


metrics.scraped_gauge(
    "tcp", "connections", "Open TCP connections, per listener.", ("server",),
    _gauge(lambda listener: listener.tcp_connections), namespace=metrics.KDNS,
)  # fmt: skip
metrics.scraped_gauge(
    "", "inflight_queries", "Queries being answered through the plugin chain, per listener.", ("server",),
    _gauge(lambda listener: listener.inflight), namespace=metrics.KDNS,
)  # fmt: skip
metrics.scraped_gauge(
    "fastpath", "templates", "Replies the fast path holds as templates, per listener.", ("server",),
    _gauge(lambda listener: listener.templates), namespace=metrics.KDNS,
)  # fmt: skip


class InFlight:
    """Queries of one listener being answered through the plugin chain, against a bound that a reload
    may change (`limit()` is asked each time). UDP asks `try_take` and drops the query when it is
    refused; TCP awaits `take`, and meanwhile does not read the connection (back-pressure)."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self.count = 0
        self._limit = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        if self.count >= self._limit():
            return False
        self.count += 1
        return True

    async def take(self) -> None:
        """Wait for room (first come, first served among TCP connections), then count one query."""
        while self.count >= self._limit() or self._waiters:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: the room goes to the next one
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)  # cancelled before being woken
            if self.count < self._limit():
                break
        self.count += 1

    def release(self, _: object = None) -> None:
        """One query answered (a done-callback of its task)."""
        self.count -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
