"""k8s_external's answers, CoreDNS's plugin/k8s_external with the kubernetes plugin's External().

Grammar under each ZONE (the `dns` label is `apex`):

    <zone>                        SOA; NS `ns1.dns.<zone>` (its addresses in the additional section)
    dns.<zone>                    NODATA (empty non-terminal)
    ns1.dns.<zone>                A/AAAA: the external addresses of the Services whose endpoints are
                                  this server, or this server's own addresses when it backs none
    <svc>.<ns>.<zone>             A/AAAA: the Service's external IPs and load-balancer IPs; a
                                  load-balancer hostname is a CNAME, chased through the server;
                                  SRV: one per port, target the Service name
    _<port>._<proto>.<svc>.<ns>.<zone>   SRV of that port
    with `headless`, for headless Services without external IPs: `<svc>.<ns>.<zone>` → the ready
    endpoints' addresses, `<ep>.<svc>.<ns>.<zone>` → that endpoint's, SRV → one per endpoint and port
    reverse names (zones such as in-addr.arpa)   PTR → `<svc>.<ns>.<first zone>` of external IPs

A namespace that does not exist (or is not in `namespaces`) is NXDOMAIN, `<ns>.<zone>` itself NODATA;
a Service without external addresses is NXDOMAIN (SERVFAIL until the cluster data first synced).
Other query types of an existing name: NODATA.
Negative answers carry the zone's SOA, whose serial is the cluster data's last change.

Replies are never reused by the server's fast path: they depend on Service fields (external IPs,
load-balancer status) whose changes the index does not version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord

from kdns.k8s.models import ServicePort
from kdns.k8s.records import SrvRecord
from kdns.log import plugin_logger
from kdns.plugin import Controller, Handler, Plugin, PluginError, find_plugin
from kdns.plugins.k8s_external.cluster import ClusterData, ExternalService
from kdns.plugins.k8s_external.config import ExternalConfig
from kdns.plugins.kubernetes.names import address_from_reverse
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request

_log = plugin_logger("k8s_external")
NOERROR, NXDOMAIN, SERVFAIL = int(RCODE.NOERROR), int(RCODE.NXDOMAIN), int(RCODE.SERVFAIL)
# CoreDNS's apex: hostmaster mailbox, SOA timers (refresh, retry, expire); the nameserver label.
_HOSTMASTER, _NS_LABEL = "hostmaster", "ns1"
_SOA_TIMERS = (7200, 1800, 86400)
_REVERSE = ("in-addr.arpa.", "ip6.arpa.")


class K8sExternal(Plugin):
    name: ClassVar[str] = "k8s_external"

    def __init__(self, config: ExternalConfig, block_plugins: list[Plugin], controller: Controller) -> None:
        self.config = config
        self._block_plugins = block_plugins
        self._controller = controller
        self._cluster: ClusterData | None = None

    async def start(self) -> None:
        """Bind to the kubernetes plugin of this block (set up after this one: CoreDNS's OnStartup)."""
        kubernetes = find_plugin(self._block_plugins, "kubernetes")
        if kubernetes is None:
            raise PluginError("k8s_external: kubernetes plugin not loaded")
        self._cluster = ClusterData(kubernetes)

    @property
    def cluster(self) -> ClusterData:
        if self._cluster is None:
            raise PluginError("k8s_external is not started")
        return self._cluster

    def transparent_for(self, qname: str) -> bool:
        """Names outside the zones pass through untouched (the fast path may serve them)."""
        return zone_matches(qname, self.config.zones) is None

    async def serve(self, request: Request, next_: Handler) -> Reply:
        qname = request.qname_lower
        zone = zone_matches(qname, self.config.zones)
        if zone is None:
            return await next_(request)
        owner_zone = request.qname[len(request.qname) - len(zone) :] if zone != "." else "."
        msg = request.reply(aa=True)
        rel = qname[: len(qname) - len(zone)].rstrip(".") if zone != "." else qname.rstrip(".")
        labels = rel.split(".") if rel else []
        if not labels:
            self._apex(request, msg, owner_zone)
        elif labels[-1] == self.config.apex:
            self._sub_apex(request, msg, labels, owner_zone)
        else:
            rcode, found = self._lookup(request, labels, zone)
            if not found:
                if rcode == NXDOMAIN and self._falls_through(qname):
                    return await next_(request)
                # Before the kubernetes plugin's first sync a missing name may just not be listed
                # yet: SERVFAIL rather than a cacheable NXDOMAIN, as that plugin answers.
                msg.header.rcode = rcode if rcode != NXDOMAIN or self.cluster.synced else SERVFAIL
            else:
                await self._answer(request, msg, found, owner_zone)
        if not msg.rr:
            msg.add_auth(self._soa(owner_zone))
        return Reply(msg, self.name)

    def _falls_through(self, qname: str) -> bool:
        zones = self.config.fallthrough
        return zones is not None and zone_matches(qname, zones) is not None

    # --- the apex and the nameserver's own names ------------------------------------------------

    def _apex(self, request: Request, msg: DNSRecord, zone: str) -> None:
        if request.qtype == QTYPE.SOA:
            msg.add_answer(self._soa(zone))
        elif request.qtype == QTYPE.NS:
            target = f"{_NS_LABEL}.{self.config.apex}.{zone}"
            msg.add_answer(RR(zone, QTYPE.NS, ttl=self.config.ttl, rdata=NS(target)))
            for rr in self._nameserver_addresses(target):
                msg.add_ar(rr)

    def _sub_apex(self, request: Request, msg: DNSRecord, labels: list[str], zone: str) -> None:
        if len(labels) == 1:
            return  # `dns.<zone>`: an empty non-terminal, NODATA
        if len(labels) != 2 or labels[0] != _NS_LABEL:
            msg.header.rcode = NXDOMAIN
            return
        for rr in self._nameserver_addresses(request.qname):
            if rr.rtype == request.qtype:
                msg.add_answer(rr)

    def _nameserver_addresses(self, owner: str) -> list[RR]:
        services, own = self.cluster.own_services()
        ips = [ip for svc in services for ip in svc.addresses] if services else [*own.v4, *own.v6]
        return self._address_rrs(owner, ips)

    def _soa(self, zone: str) -> RR:
        c = self.config
        rdata = SOA(f"{_NS_LABEL}.{c.apex}.{zone}", f"{_HOSTMASTER}.{c.apex}.{zone}",
                    (self.cluster.serial, *_SOA_TIMERS, c.ttl))  # fmt: skip
        return RR(zone, QTYPE.SOA, ttl=c.ttl, rdata=rdata)

    # --- Service names --------------------------------------------------------------------------

    def _lookup(self, request: Request, labels: list[str], zone: str) -> tuple[int, list[_Found]]:
        """(rcode, what the name holds), CoreDNS's External(): NXDOMAIN when nothing exists there."""
        if request.qtype == QTYPE.PTR and zone in _REVERSE:
            ip = address_from_reverse(labels, zone)
            if ip is not None:
                services = self.cluster.services_with_address(ip)
                found = [_Found(ptr=f"{svc.name}.{svc.namespace}") for svc in services]
                return (NOERROR if found else NXDOMAIN), found
        cluster = self.cluster
        namespace = labels[-1]
        if not cluster.namespace_exposed(namespace):
            return NXDOMAIN, []
        if len(labels) == 1:
            return NOERROR, []
        if len(labels) > 4:
            return NXDOMAIN, []
        svc = cluster.service(namespace, labels[-2])
        if svc is None:
            return NXDOMAIN, []
        below = labels[:-2]  # [], [endpoint] or [_port, _proto]
        if self.config.headless and not svc.exposed and (svc.headless or len(below) == 1):
            return self._headless(svc, below)
        if not svc.exposed or len(below) == 1:
            # kdns: no names below an external Service (CoreDNS answers its external IPs there)
            return NXDOMAIN, []
        ports = _matching_ports(svc, below)
        if ports is None:
            return NXDOMAIN, []
        return NOERROR, [_Found(service=svc, ports=ports, srv_target=f"{svc.name}.{svc.namespace}")]

    def _headless(self, svc: ExternalService, below: list[str]) -> tuple[int, list[_Found]]:
        data = self.cluster.headless(svc.namespace, svc.name)
        if data is None:
            return NXDOMAIN, []
        if len(below) == 1:
            addrs = data.endpoints.get(below[0])
            if addrs is None:
                return NXDOMAIN, []
            return NOERROR, [_Found(ips=(*addrs.v4, *addrs.v6))]
        if below:
            srvs = data.srv_by_port.get((below[0].removeprefix("_"), below[1].removeprefix("_")))
            if srvs is None:
                return NXDOMAIN, []
        else:
            srvs = data.srv_all
        ips = [ip for addrs in data.endpoints.values() for ip in (*addrs.v4, *addrs.v6)]
        glue = {label: (*a.v4, *a.v6) for label, a in data.endpoints.items()}
        return NOERROR, [_Found(ips=tuple(dict.fromkeys(ips)), headless_srvs=srvs, glue=glue)]

    async def _answer(self, request: Request, msg: DNSRecord, found: list[_Found], zone: str) -> None:
        qtype, ttl = request.qtype, self.config.ttl
        for f in found:
            if f.ptr and qtype == QTYPE.PTR:
                target = f"{f.ptr}.{self.config.zones[0]}"
                msg.add_answer(RR(request.qname, QTYPE.PTR, ttl=ttl, rdata=PTR(target)))
            elif qtype in (QTYPE.A, QTYPE.AAAA):
                ips = f.service.addresses if f.service is not None else f.ips
                for rr in self._address_rrs(request.qname, ips):
                    if rr.rtype == qtype:
                        msg.add_answer(rr)
                if f.service is not None and f.service.hostnames:
                    await self._cname(request, msg, f.service.hostnames[0])
            elif qtype == QTYPE.SRV:
                self._srv(request, msg, f, zone)

    async def _cname(self, request: Request, msg: DNSRecord, target: str) -> None:
        """A load-balancer hostname: CNAME, then the target's records through the whole server
        (CoreDNS's upstream lookup); a failed lookup leaves the CNAME alone."""
        msg.add_answer(RR(request.qname, QTYPE.CNAME, ttl=self.config.ttl, rdata=CNAME(target + ".")))
        if not self._controller.serves(target.lower() + "."):
            return
        try:
            reply = await self._controller.resolve(target + ".", request.qtype, request.proto)
        except Exception as e:
            _log.debug("looking up %s failed: %s", target, e)
            return
        for rr in reply.rr:
            msg.add_answer(rr)
        msg.header.tc = int(bool(reply.header.tc))

    def _srv(self, request: Request, msg: DNSRecord, f: _Found, zone: str) -> None:
        ttl = self.config.ttl
        if f.headless_srvs:
            for s in f.headless_srvs:  # `<ep>.<svc>.<ns>.svc` in the cluster zone → `<ep>.<svc>.<ns>.<zone>`
                target = f"{s.target.removesuffix('.svc')}.{zone}"
                rdata = SRV(s.priority, s.weight, s.port, target)
                msg.add_answer(RR(request.qname, QTYPE.SRV, ttl=ttl, rdata=rdata))
                for rr in self._address_rrs(target, f.glue.get(s.target.split(".", 1)[0], ())):
                    msg.add_ar(rr)
            return
        svc = f.service
        if svc is None:
            return
        # CoreDNS: one candidate per (address, port), weight floor(100/N) (at least 1), then one SRV
        # per distinct port; addresses go to the additional section.
        candidates = (len(svc.addresses) + len(svc.hostnames)) * len(f.ports)
        weight = max(1, 100 // candidates) if candidates else 0
        target = f"{f.srv_target}.{zone}"
        for port in dict.fromkeys(p.port for p in f.ports):
            msg.add_answer(RR(request.qname, QTYPE.SRV, ttl=ttl, rdata=SRV(0, weight, port, target)))
        for rr in self._address_rrs(target, svc.addresses):
            msg.add_ar(rr)

    def _address_rrs(self, owner: str, ips: Iterable[str]) -> list[RR]:
        ttl = self.config.ttl
        return [
            RR(owner, QTYPE.AAAA, ttl=ttl, rdata=AAAA(ip))
            if ":" in ip
            else RR(owner, QTYPE.A, ttl=ttl, rdata=A(ip))
            for ip in dict.fromkeys(ips)
        ]


@dataclass(slots=True)
class _Found:
    """What one name holds for k8s_external (CoreDNS's msg.Service list, grouped)."""

    service: ExternalService | None = None  # a Service with external addresses
    ports: tuple[ServicePort, ...] = ()  # its ports the name selects
    srv_target: str = ""  # `<svc>.<ns>`, relative to the zone
    ips: tuple[str, ...] = ()  # headless: endpoint addresses
    headless_srvs: tuple[SrvRecord, ...] = ()  # headless: the kubernetes plugin's SRVs (cluster-relative)
    glue: dict[str, tuple[str, ...]] = field(default_factory=dict)  # headless: endpoint label → addresses
    ptr: str = ""  # reverse: `<svc>.<ns>`


def _matching_ports(svc: ExternalService, below: list[str]) -> tuple[ServicePort, ...] | None:
    """The Service ports an SRV name `_<port>._<proto>` selects (all without one); None: no match."""
    if not below:
        return svc.ports
    port, proto = below[0].removeprefix("_"), below[1].removeprefix("_")
    ports = tuple(p for p in svc.ports if p.name.lower() == port and p.protocol == proto)
    return ports or None
