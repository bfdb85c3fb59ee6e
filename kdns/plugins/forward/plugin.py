"""The forward plugin's query path: zone matching, the concurrency limit, and the upstream loop.

The loop is CoreDNS's (plugin/forward/forward.go ServeDNS): walk the upstreams in policy order
within a 5 s overall deadline, each attempt with a 2 s read timeout; skip upstreams marked down, and
when all are down pick a random one anyway (health checking itself may be what is broken); a failed
attempt starts that upstream's health check and moves on to the next. When time runs out the query
fails with the last upstream error (SERVFAIL, logged by `errors`). One difference: CoreDNS retries
the list in a tight loop, kdns pauses 0.1 s between passes so a dead upstream costs no CPU.

Failures carry an Extended DNS Error (RFC 8914) for EDNS clients, which CoreDNS's forward does not
set: SERVFAIL with 22 No Reachable Authority (§4.23) when every upstream is marked down by its health
checks, 23 Network Error (§4.24) when the upstreams are not marked down but the exchanges failed
(timeouts, refused or reset connections); REFUSED beyond `max_concurrent` with 0 Other Error (§4.1).
RFC 8914 has no code for an overloaded server: 15 Blocked is about the domain (an operator's block
list) and 18 Prohibited about the client (not authorized), while this refusal is about neither and
goes away by itself, so the EXTRA-TEXT says what happened, as §4.1 asks.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import ClassVar

from dnslib import RCODE, DNSRecord

from kdns.plugin import Handler, Plugin, PluginError
from kdns.plugins import _edns
from kdns.plugins.forward import metrics
from kdns.plugins.forward.config import ForwardConfig, Upstream
from kdns.plugins.forward.health import HealthCheck
from kdns.plugins.forward.policy import make_policy
from kdns.plugins.forward.proxy import READ_TIMEOUT, Proxy, UpstreamError
from kdns.plugins.forward.tls import TlsTarget, server_name_of
from kdns.protocol.message import MessageError, parse_message
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request
from kdns.tasks import cancel_and_wait

OVERALL_TIMEOUT = 5.0  # CoreDNS defaultTimeout
_NAMED_UPSTREAMS = 3  # upstreams an EDE's text names; the rest are counted (the text stays short)
RETRY_PAUSE = 0.1
MIN_SWEEP_INTERVAL = 1.0


class Forward(Plugin):
    name: ClassVar[str] = "forward"

    def __init__(self, config: ForwardConfig) -> None:
        self.config = config
        self.proxies = [Proxy(u, config.expire, _tls_target(config, u)) for u in config.upstreams]
        probe_proto = "tcp" if config.force_tcp else "udp"
        self.health = {p: HealthCheck(p, config.health, probe_proto, config.max_fails) for p in self.proxies}
        self._order = make_policy(config.policy)
        self._inflight = 0
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        await cancel_and_wait(self._sweeper)
        for check in self.health.values():
            await check.stop()
        for proxy in self.proxies:
            proxy.conns.close()

    async def _sweep(self) -> None:
        """Close cached connections once they are older than `expire` (CoreDNS's transport cleanup)."""
        while True:
            await asyncio.sleep(max(self.config.expire, MIN_SWEEP_INTERVAL))
            for proxy in self.proxies:
                proxy.conns.sweep()

    # --- query path -------------------------------------------------------------------------------

    def matches(self, qname_lower: str) -> bool:
        """In FROM and not under an `except` name (FROM itself is always forwarded, as in CoreDNS)."""
        cfg = self.config
        if zone_matches(qname_lower, (cfg.from_zone,)) is None:
            return False
        return qname_lower == cfg.from_zone or zone_matches(qname_lower, cfg.ignored) is None

    def transparent_for(self, qname: str) -> bool:
        """Names forward does not handle pass through it untouched (the server's fast path may apply)."""
        return not self.matches(qname)

    async def serve(self, request: Request, next_: Handler) -> Reply:
        if not self.matches(request.qname_lower):
            return await next_(request)
        limit = self.config.max_concurrent
        if limit and self._inflight >= limit:
            # Beyond max_concurrent: REFUSED at once, and not a health failure (CoreDNS).
            metrics.max_concurrent_reject()
            refused = request.reply(RCODE.REFUSED)
            reason = f"too many queries in flight upstream (forward max_concurrent {limit}); try again"
            _edns.add_reply_option(refused, *_edns.ede(_edns.EdeCode.OTHER_ERROR, reason))
            return Reply(refused, self.name)
        self._inflight += 1
        try:
            return await self._forward(request)
        finally:
            self._inflight -= 1

    async def _forward(self, request: Request) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OVERALL_TIMEOUT
        wire = request.wire  # the client's query as sent (CoreDNS forwards the message it parsed)
        max_fails = self.config.max_fails
        proxies = self._order(self.proxies)
        i = fails = 0
        error: UpstreamError | None = None
        while loop.time() < deadline:
            if i >= len(proxies):  # every upstream failed once: go round again until the deadline
                i = fails = 0
                await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - loop.time())))
                continue
            proxy = proxies[i]
            i += 1
            if proxy.down(max_fails):
                fails += 1
                if fails < len(proxies):
                    continue
                proxy = random.choice(self.proxies)  # all down: health checking may be what is broken
                metrics.healthcheck_broken()
            try:
                return await self._exchange(proxy, request, wire, deadline)
            except UpstreamError as e:
                error = e
                if max_fails:
                    self.health[proxy].trigger()
                if fails < len(proxies):
                    continue
                break
        raise self._failure(error)

    def _failure(self, error: UpstreamError | None) -> PluginError:
        """The error the query fails with: the last upstream error for the log (CoreDNS's wording),
        and the EDE code and reason for the client (see the module docstring)."""
        message = str(error) if error is not None else "no healthy proxies"
        if all(p.down(self.config.max_fails) for p in self.proxies):
            down = ", ".join(p.label for p in self.proxies[:_NAMED_UPSTREAMS])
            more = len(self.proxies) - _NAMED_UPSTREAMS
            down += f" and {more} more" if more > 0 else ""
            reason = f"every upstream is marked down by failed health checks ({down}); last error: {message}"
            return PluginError(message, _edns.EdeCode.NO_REACHABLE_AUTHORITY, reason)
        return PluginError(message, _edns.EdeCode.NETWORK_ERROR, f"upstream failed: {message}")

    def _transport(self, request: Request) -> str:
        if self.config.force_tcp:
            return "tcp"
        if self.config.prefer_udp:
            return "udp"
        return request.proto

    async def _exchange(self, proxy: Proxy, request: Request, wire: bytes, deadline: float) -> Reply:
        """One upstream attempt: the client's query with a fresh ID; the reply gets the client's ID back."""
        loop = asyncio.get_running_loop()
        proto = self._transport(request)
        while True:
            timeout = min(READ_TIMEOUT, deadline - loop.time())
            if timeout <= 0:
                raise UpstreamError(f"read {proxy.conns.proto_for(proto)} {proxy.label}: i/o timeout")
            qid = secrets.randbelow(0x10000)  # unpredictable IDs: RFC 5452 §4 (spoofing resistance)
            data = await proxy.exchange(qid.to_bytes(2, "big") + wire[2:], proto, timeout)
            reply = self._parse(data, request, proto, proxy)
            # prefer_udp: a truncated UDP reply is retried over TCP; otherwise TC=1 passes to the client.
            if (
                reply.header.tc
                and proxy.conns.proto_for(proto) == "udp"
                and self.config.prefer_udp
                and not self.config.force_tcp
            ):
                proto = "tcp"
                continue
            break
        if not request.matches(reply):
            return Reply(request.reply(RCODE.FORMERR), self.name)  # CoreDNS: a mismatched reply is FORMERR
        reply.header.id = request.query.id
        return Reply(reply, self.name)

    @staticmethod
    def _parse(data: bytes, request: Request, proto: str, proxy: Proxy) -> DNSRecord:
        try:
            return parse_message(data)
        except MessageError as e:
            if proxy.conns.proto_for(proto) == "udp" and len(data) >= 12 and data[2] & 0x02:
                # A datagram cut off mid-record (TC set): pass an empty TC=1 reply on, as CoreDNS's
                # truncateResponse does, so the client retries over TCP.
                reply = request.reply(rcode=data[3] & 0x0F, aa=bool(data[2] & 0x04))
                reply.header.tc = 1
                reply.header.ra = data[3] >> 7
                return reply
            raise UpstreamError(f"read {proto} {proxy.label}: dns: {e}") from None


def _tls_target(config: ForwardConfig, upstream: Upstream) -> TlsTarget | None:
    if not upstream.tls or config.tls_context is None:
        return None
    name = server_name_of(upstream.host, upstream.server_name, config.tls_servername)
    return TlsTarget(config.tls_context, name)
