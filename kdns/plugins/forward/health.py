"""In-band health checking of one upstream (CoreDNS forward: "When it detects an error a health check
is performed").

A failed query starts a probe loop: `. IN NS` (or `domain FQDN`, RD per `no_rec`) every `interval`
(default 0.5s) until one probe gets any reply at all — REFUSED or SERVFAIL count as healthy, only
network errors and timeouts do not. Each failed probe adds one to the upstream's `fails`; a reply
resets it. Probes use a fresh socket each time, over TCP with `force_tcp`, else UDP; a tls://
upstream is always probed over TLS, its handshake and certificate check included (CoreDNS: "when
TLS is used, checks are set to tcp-tls").
"""

from __future__ import annotations

import asyncio
import secrets

from dnslib import QTYPE, DNSHeader, DNSQuestion, DNSRecord

from kdns.log import plugin_logger
from kdns.plugins.forward import metrics
from kdns.plugins.forward.config import HealthCheckConfig
from kdns.plugins.forward.proxy import Proxy, describe
from kdns.plugins.forward.transport import UpstreamTimeout
from kdns.tasks import cancel_and_wait

PROBE_TIMEOUT = 1.0  # CoreDNS hcReadTimeout / hcWriteTimeout
_log = plugin_logger("forward")


class HealthCheck:
    def __init__(self, proxy: Proxy, config: HealthCheckConfig, proto: str, max_fails: int) -> None:
        self.proxy = proxy
        self.config = config
        self.proto = proto
        self.max_fails = max_fails
        self._task: asyncio.Task[None] | None = None

    def trigger(self) -> None:
        """Start the probe loop unless one is already running."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not await self.check():
            await asyncio.sleep(self.config.interval)

    async def check(self) -> bool:
        """One probe; updates the upstream's failure count. True when the upstream answered."""
        proxy = self.proxy
        try:
            await self._probe()
        except (UpstreamTimeout, asyncio.IncompleteReadError, OSError) as e:
            proxy.fails += 1
            metrics.healthcheck_failure(proxy.label)
            if proxy.fails == self.max_fails + 1:
                _log.warning(
                    "upstream %s marked down after %d failed health checks (last: %s)",
                    proxy.label,
                    proxy.fails,
                    describe(e),
                )
            return False
        if proxy.down(self.max_fails):
            _log.info("upstream %s is healthy again", proxy.label)
        proxy.fails = 0
        return True

    async def _probe(self) -> None:
        header = DNSHeader(id=secrets.randbelow(65536), rd=int(self.config.recursion_desired))
        query = DNSRecord(header, q=DNSQuestion(self.config.domain, QTYPE.NS))
        conn = await self.proxy.conns.dial(self.proto, PROBE_TIMEOUT)
        try:
            await conn.exchange(bytes(query.pack()), PROBE_TIMEOUT)
        finally:
            conn.close()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
