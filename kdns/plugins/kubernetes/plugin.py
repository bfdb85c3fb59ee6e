"""The kubernetes plugin: cluster names answered from the API-synced index.

Decision order per query (docs/dns-contract.md §16): a name error falls through when
`fallthrough` covers it (checked before the sync state), else it is SERVFAIL + SOA until the first
complete sync ("never lie before sync"), else NXDOMAIN + SOA. NODATA and answers are served as soon
as the data is there.
"""

from __future__ import annotations

import asyncio
import contextvars
import time

from dnslib import QTYPE, RCODE, RR, SOA

from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Kind
from kdns.k8s.podips import PodAddresses
from kdns.k8s.records import split_families
from kdns.k8s.sink import ObjectSource
from kdns.log import plugin_logger
from kdns.netif import interface_addresses
from kdns.plugin import Controller, Handler, Plugin
from kdns.plugins.kubernetes import metrics as source_metrics
from kdns.plugins.kubernetes.lookup import Lookup, Result, Status
from kdns.plugins.kubernetes.options import KubernetesOptions
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request, Reuse

_log = plugin_logger("kubernetes")
# dnslib's RCODE table is untyped; name the three rcodes this plugin writes once, as ints.
NOERROR, SERVFAIL, NXDOMAIN = int(RCODE.NOERROR), int(RCODE.SERVFAIL), int(RCODE.NXDOMAIN)
# RFC 1034 §3.6.2 leaves the chain length open; resolvers stop around 8–16 (BIND: 16, CoreDNS: 8
# for its own lookups). 10 in-zone hops covers any sane ExternalName chain and stops loops.
MAX_CNAME_HOPS = 10
# Out-of-zone chases re-enter the server; this bounds re-entry when zones CNAME into each other.
_chase_depth: contextvars.ContextVar[int] = contextvars.ContextVar("kdns_chase_depth", default=0)
_WAIT_LOG_INTERVAL = 0.5  # CoreDNS logs "waiting for Kubernetes API" every 500 ms
# SOA timers from CoreDNS (docs/dns-contract.md §15): refresh, retry, expire; the RR's TTL is capped at 300.
_SOA_REFRESH, _SOA_RETRY, _SOA_EXPIRE, _SOA_TTL_CAP = 7200, 1800, 86400, 300


def watched_kinds(opts: KubernetesOptions) -> list[Kind]:
    """Namespaces and Services always; EndpointSlices unless noendpoints; Pods only when verified."""
    kinds = [Kind.NAMESPACE, Kind.SERVICE]
    if not opts.noendpoints:
        kinds.append(Kind.ENDPOINTSLICE)
    if opts.pods == "verified":
        kinds.append(Kind.POD)
    return kinds


class Kubernetes(Plugin):
    name = "kubernetes"
    # Pod IP → namespace with `pods verified` (kdns.k8s.podips, read by autopath), else None.
    pod_addresses: PodAddresses | None = None

    def __init__(
        self, opts: KubernetesOptions, source: ObjectSource, index: ClusterIndex, controller: Controller
    ) -> None:
        self.opts = opts
        self.index = index
        self.source = source
        self.controller = controller
        self.lookup = Lookup(index, opts)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.index.call_later = asyncio.get_running_loop().call_later  # slice hand-over holds
        self.lookup.self_addresses = split_families(await _own_addresses())
        await self.source.start()
        source_metrics.watch(self.source)
        deadline = time.monotonic() + self.opts.startup_timeout
        while not self.source.synced():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _log.warning("starting server with unsynced Kubernetes API")
                return
            _log.info("waiting for Kubernetes API before starting server")
            await self.source.wait_synced(min(_WAIT_LOG_INTERVAL, remaining))

    async def stop(self) -> None:
        source_metrics.unwatch(self.source)
        await self.source.stop()

    def ready(self) -> bool:
        return self.index.synced

    # --- queries --------------------------------------------------------------------------------

    async def serve(self, request: Request, next_: Handler) -> Reply:
        zone = zone_matches(request.qname_lower, self.opts.zones)
        if zone is None:
            return await next_(request)
        result = self.lookup.lookup(request.owner, request.qname_lower, zone, request.qtype)
        if result.status is Status.NXDOMAIN:
            if self._falls_through(request.qname_lower):
                return await next_(request)
            rcode = NXDOMAIN if self.index.synced else SERVFAIL
            return self._reply(request, result, zone, rcode)
        rcode = NOERROR
        if result.chase is not None:
            rcode = await self._chase(request, result)
        return self._reply(request, result, zone, rcode)

    def _reuse(self, result: Result) -> Reuse | None:
        """May the server answer this question again with the same bytes (fast path)? Not before the
        first sync (sync does not change generations), not after asking an upstream; a chase inside
        the zone read other namespaces, so it depends on the whole index."""
        if not self.index.synced or result.upstream:
            return None
        scope = "" if result.chase is not None else result.scope
        return Reuse(self.index, scope, self.index.scope_gen.get(scope, 0))

    def _falls_through(self, qname: str) -> bool:
        zones = self.opts.fallthrough
        return zones is not None and zone_matches(qname, zones) is not None

    def _reply(self, request: Request, result: Result, zone: str, rcode: int) -> Reply:
        msg = request.reply(rcode=rcode, aa=True)
        zone_owner = request.qname[len(request.qname) - len(zone) :] if zone != "." else "."
        for rr in result.answer:
            msg.add_answer(rr)
        if result.apex_ns:
            ns_rrs, glue = self.lookup.nameservers(zone_owner, zone)
            for rr in ns_rrs:
                msg.add_answer(rr)
            result.additional.extend(glue)
        elif result.status is Status.ANSWER and request.qtype == QTYPE.SOA and not result.answer:
            msg.add_answer(self._soa(zone_owner, zone))
        if result.status is not Status.ANSWER or result.negative_tail:
            msg.add_auth(self._soa(zone_owner, zone))
        for rr in result.authority:
            msg.add_auth(rr)
        msg.header.tc = int(result.truncated)
        for rr in result.additional:
            msg.add_ar(rr)
        return Reply(msg, self.name, self._reuse(result))

    def _soa(self, owner: str, zone: str) -> RR:
        ttl = self.opts.ttl
        times = (self.index.serial, _SOA_REFRESH, _SOA_RETRY, _SOA_EXPIRE, ttl)
        return RR(
            owner,
            QTYPE.SOA,
            ttl=min(ttl, _SOA_TTL_CAP),
            rdata=SOA(f"ns.dns.{zone}", f"hostmaster.{zone}", times),
        )

    # --- ExternalName ---------------------------------------------------------------------------

    async def _chase(self, request: Request, result: Result) -> int:
        """Follow an ExternalName's CNAME for the asked type; the CNAME stays whatever happens
        (dns-contract.md §5, §18). Returns the rcode: NXDOMAIN only when the chain ends at a missing name."""
        target = result.chase
        seen: set[str] = set()
        while target is not None:
            if target in seen or len(seen) >= MAX_CNAME_HOPS:
                return NOERROR
            seen.add(target)
            zone = zone_matches(target, self.opts.forward_zones)
            if zone is None:
                return await self._chase_outside(request, result, target)
            inner = self.lookup.lookup(target, target, zone, request.qtype)
            result.answer.extend(inner.answer)
            result.negative_tail = inner.status is not Status.ANSWER
            if inner.status is Status.NXDOMAIN:
                return NXDOMAIN  # RFC 6604 §2.1: the rcode describes the last name of the chain
            target = inner.chase
        return NOERROR

    async def _chase_outside(self, request: Request, result: Result, target: str) -> int:
        depth = _chase_depth.get()
        if depth >= MAX_CNAME_HOPS:
            return NOERROR
        if not self.controller.serves(target.lower()):
            return NOERROR  # the server would refuse it: the CNAME alone, as after a REFUSED (reusable)
        result.upstream = True
        token = _chase_depth.set(depth + 1)
        try:
            upstream = await self.controller.resolve(target, request.qtype, request.proto)
        except Exception as e:  # the CNAME alone is still the right answer (docs/dns-contract.md §5)
            _log.debug("chasing %s failed: %s", target, e)
            return NOERROR
        finally:
            _chase_depth.reset(token)
        result.answer.extend(upstream.rr)
        result.truncated = bool(upstream.header.tc)  # dns-contract.md §5: the upstream's TC bit is copied
        if not any(rr.rtype == request.qtype for rr in upstream.rr):
            result.authority.extend(upstream.auth)
        return NXDOMAIN if upstream.header.rcode == NXDOMAIN else NOERROR


async def _own_addresses() -> list[str]:
    """This server's non-loopback addresses, to find the Service it backs (dns-contract.md §15)."""
    try:
        return interface_addresses()
    except OSError as e:
        _log.warning("cannot list the network interfaces (%s): the apex NS will be ns.dns without glue", e)
        return []
