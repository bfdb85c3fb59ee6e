"""One upstream: its connection cache, its failure count, and a single query exchange.

As in CoreDNS (plugin/pkg/proxy), `fails` is only moved by health checks: a failed query triggers a
check, each failed check adds one, a successful one resets it, and the upstream counts as down once
`fails > max_fails`.
"""

from __future__ import annotations

import asyncio
import time

from dnslib import RCODE

from kdns.plugins.forward import metrics
from kdns.plugins.forward.config import Upstream
from kdns.plugins.forward.tls import TlsTarget
from kdns.plugins.forward.transport import TLS_PROTO, ConnectionCache, UpstreamTimeout

READ_TIMEOUT = 2.0  # CoreDNS proxy read timeout per attempt


class UpstreamError(Exception):
    """An exchange with one upstream failed; worded like CoreDNS's (`read udp 10.0.0.1:53: i/o timeout`)."""


def describe(error: BaseException) -> str:
    """Go's wording for the socket errors operators grep for."""
    if isinstance(error, UpstreamTimeout | TimeoutError):
        return "i/o timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(error, asyncio.IncompleteReadError):
        return "EOF"
    return str(error) or type(error).__name__


def rcode_name(wire: bytes) -> str:
    """The `rcode` label of a reply (header rcode; CoreDNS uses dns.RcodeToString)."""
    code = wire[3] & 0x0F if len(wire) >= 4 else 0
    return str(RCODE.get(code, str(code)))


class Proxy:
    def __init__(self, upstream: Upstream, expire: float, tls: TlsTarget | None = None) -> None:
        self.upstream = upstream
        self.label = upstream.label
        self.fails = 0
        self.conns = ConnectionCache(upstream.host, upstream.port, expire, tls)

    def down(self, max_fails: int) -> bool:
        return max_fails > 0 and self.fails > max_fails

    async def exchange(self, wire: bytes, proto: str, timeout: float) -> bytes:
        """Send `wire` and return the reply carrying the same ID, or raise UpstreamError."""
        start = time.monotonic()
        proto = self.conns.proto_for(proto)
        while True:
            try:
                conn, cached = await self.conns.acquire(proto, timeout)
            except (UpstreamTimeout, OSError) as e:
                raise UpstreamError(f"dial {proto} {self.label}: {describe(e)}") from None
            metrics.conn_cache(self.label, proto, cached)
            try:
                reply = await conn.exchange(wire, timeout)
            except (UpstreamTimeout, asyncio.IncompleteReadError, OSError) as e:
                conn.close()
                if cached and proto in ("tcp", TLS_PROTO) and not isinstance(e, UpstreamTimeout):
                    continue  # the upstream closed our idle connection: retry on a fresh one
                raise UpstreamError(f"read {proto} {self.label}: {describe(e)}") from None
            except BaseException:
                conn.close()
                raise
            self.conns.release(conn)
            metrics.request_duration(self.label, rcode_name(reply), time.monotonic() - start)
            return reply
