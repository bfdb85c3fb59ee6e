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

from dnslib import QTYPE, RCODE

from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Kind
from kdns.k8s.podips import PodAddresses
from kdns.k8s.records import split_families
from kdns.k8s.sink import ObjectSource
from kdns.log import plugin_logger
from kdns.netif import interface_addresses
from kdns.plugin import Controller, Handler, NowHandler, Plugin
from kdns.plugins.kubernetes import metrics as source_metrics
from kdns.plugins.kubernetes.answer import Zone, render
from kdns.plugins.kubernetes.lookup import Lookup, Name, Result, Status
from kdns.plugins.kubernetes.options import KubernetesOptions
from kdns.protocol import names
from kdns.protocol.edns import EdeCode, ede
from kdns.protocol.message import add_reply_option, parse_message
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
        self._zone_labels = {zone: len(names.split(zone)) for zone in opts.zones}

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

    def transparent_for(self, qname: str) -> bool:
        return zone_matches(qname, self.opts.zones) is None

    def serve_now(self, request: Request, next_now: NowHandler) -> Reply | None:
        outcome = self._answer(request)
        if outcome is _PASS:
            return next_now(request)
        return outcome if isinstance(outcome, Reply) else None  # an outside chase must await

    async def serve(self, request: Request, next_: Handler) -> Reply:
        outcome = self._answer(request)
        if outcome is _PASS:
            return await next_(request)
        if isinstance(outcome, _Outside):
            return await self._chase_outside(request, outcome)
        assert isinstance(outcome, Reply)
        return outcome

    def _answer(self, request: Request) -> Reply | _Outside | object:
        """The reply, or _PASS (not ours: the next plugin's), or what an outside chase must finish."""
        zone = zone_matches(request.qname_lower, self.opts.zones)
        if zone is None:
            return _PASS
        result = self.lookup.lookup(request.labels, zone, request.qtype)
        rcode = NOERROR
        if result.status is Status.NXDOMAIN:
            if self._falls_through(request.qname_lower):
                return _PASS
            rcode = NXDOMAIN
        elif result.chase is not None:
            chased = self._chase_inside(request, result)
            if isinstance(chased, _Outside):
                chased.zone = zone
                return chased
            rcode = chased
        if not self.index.synced and rcode == NXDOMAIN:
            return self._unsynced(request, result, zone)
        spelled_zone = Zone(request, self._zone_labels[zone])
        wire, spelled = render(request, result, spelled_zone, rcode, self.lookup, self.index.serial)
        return Reply(wire=wire, plugin=self.name, reuse=self._reuse(result, spelled))

    def _unsynced(self, request: Request, result: Result, zone: str) -> Reply:
        """Before the first complete sync a name error may be a lie: SERVFAIL + SOA (docs/dns-contract.md
        §16), Extended DNS Error 14 Not Ready, never replayed."""
        result.reason = "not synced with the Kubernetes API yet"
        zone_spelled = Zone(request, self._zone_labels[zone])
        wire, _ = render(
            request, result, zone_spelled, SERVFAIL, self.lookup, self.index.serial, EdeCode.NOT_READY
        )
        return Reply(wire=wire, plugin=self.name)

    def _reuse(self, result: Result, spelled: bool) -> Reuse | None:
        """May the server answer this question again with the same bytes (fast path)? Yes while what
        the answer read stays the same objects (Result.deps), to clients spelling the question the
        same way when the reply copies that spelling out (SRV targets); not before the first sync
        (the sync does not replace versions)."""
        if not self.index.synced:
            return None
        return Reuse(deps=tuple(result.deps), serial_source=self.index, same_spelling=spelled)

    def _falls_through(self, qname: str) -> bool:
        zones = self.opts.fallthrough
        return zones is not None and zone_matches(qname, zones) is not None

    # --- ExternalName ---------------------------------------------------------------------------

    def _chase_inside(self, request: Request, result: Result) -> int | _Outside:
        """Follow an ExternalName's CNAME for the asked type within our zones; the CNAME stays
        whatever happens (docs/dns-contract.md §5, §18). Returns the rcode (NXDOMAIN only when the
        chain ends at a missing name), or where the chase must leave our zones."""
        target, written = result.chase, result.chase_name
        seen: set[str] = set()
        while target is not None and written is not None:
            if target in seen or len(seen) >= MAX_CNAME_HOPS:
                return NOERROR
            seen.add(target)
            zone = zone_matches(target, self.opts.forward_zones)
            if zone is None:
                return _Outside(result, target, written)
            inner = self.lookup.lookup(names.split(target), zone, request.qtype, owner=written)
            result.answer.extend(inner.answer)
            result.additional.extend(inner.additional)
            result.deps.extend(inner.deps)
            result.negative_tail = inner.status is not Status.ANSWER
            if result.negative_tail:
                result.reason = (
                    f"externalName target {written_text(written)} {_lacks(inner.status, request.qtype)}"
                )
                result.reason += f" ({inner.reason})" if inner.reason else ""
            if inner.status is Status.NXDOMAIN:
                return NXDOMAIN  # RFC 6604 §2.1: the rcode describes the last name of the chain
            target, written = inner.chase, inner.chase_name
        return NOERROR

    async def _chase_outside(self, request: Request, outside: _Outside) -> Reply:
        """Ask the whole server for the CNAME's target (forward, usually), as CoreDNS's re-entry
        does, and add what it says to our CNAME. Never replayed: an upstream answered."""
        result, target = outside.result, outside.target
        zone = Zone(request, self._zone_labels[outside.zone])
        wire, spelled = render(request, result, zone, NOERROR, self.lookup, self.index.serial)
        depth = _chase_depth.get()
        if depth >= MAX_CNAME_HOPS:
            return Reply(wire=wire, plugin=self.name)
        if not self.controller.serves(target):
            # the server would refuse it: the CNAME alone, as after a REFUSED (and replayable)
            return Reply(wire=wire, plugin=self.name, reuse=self._reuse(result, spelled))
        token = _chase_depth.set(depth + 1)
        try:
            upstream = await self.controller.resolve(target, request.qtype, request.proto)
        except Exception as e:  # the CNAME alone is still the right answer (docs/dns-contract.md §5)
            _log.debug("chasing %s failed: %s", target, e)
            return Reply(wire=wire, plugin=self.name)
        finally:
            _chase_depth.reset(token)
        msg = parse_message(wire)
        for rr in upstream.rr:
            msg.add_answer(rr)
        if not any(rr.rtype == request.qtype for rr in upstream.rr):
            for rr in upstream.auth:
                msg.add_auth(rr)
            status = Status.NXDOMAIN if upstream.header.rcode == NXDOMAIN else Status.NODATA
            why = f"externalName target {written_text(outside.written)} {_lacks(status, request.qtype)}"
            add_reply_option(msg, *ede(EdeCode.OTHER_ERROR, why))  # only when the client sent EDNS
        msg.header.tc = upstream.header.tc  # docs/dns-contract.md §5: the upstream's TC bit is copied
        if upstream.header.rcode == NXDOMAIN:
            msg.header.rcode = NXDOMAIN
        return Reply(msg, self.name)


_PASS = object()  # _answer's "not ours"


class _Outside:
    """A chase that leaves our zones: the result so far, and the target to ask the server for."""

    def __init__(self, result: Result, target: str, written: Name) -> None:
        self.result, self.target, self.written = result, target, written
        self.zone = ""


def written_text(name: Name) -> str:
    return names.to_text(name.labels).rstrip(".")


def _lacks(status: Status, qtype: int) -> str:
    """What a chased name that gave no answer lacks, in words: `has no AAAA`, `does not exist`."""
    return "does not exist" if status is Status.NXDOMAIN else f"has no {QTYPE.get(qtype)}"


async def _own_addresses() -> list[str]:
    """This server's non-loopback addresses, to find the Service it backs (dns-contract.md §15)."""
    try:
        return interface_addresses()
    except OSError as e:
        _log.warning("cannot list the network interfaces (%s): the apex NS will be ns.dns without glue", e)
        return []
