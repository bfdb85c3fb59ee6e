"""The kubernetes plugin's answers: cluster names → records, from the index alone (no I/O).

Grammar under a cluster zone (docs/dns-contract.md §2–§7, §13):

    <zone>                         SOA, NS (apex)
    dns-version.<zone>             TXT "1.1.0"
    ns.dns.<zone>                  A/AAAA of this server
    svc.<zone>, pod.<zone>         empty non-terminals (NODATA)
    <ns>.svc|pod.<zone>            NODATA when the namespace exists and is exposed
    <svc>.<ns>.svc.<zone>          A/AAAA, SRV (all ports), CNAME (ExternalName)
    <ep>.<svc>.<ns>.svc.<zone>     A/AAAA of endpoints labelled <ep>
    _<port>._<proto>.<svc>…        SRV
    <a-b-c-d>.<ns>.pod.<zone>      A/AAAA (pods insecure|verified)
    <reverse address>              PTR (reverse zones)

A name's existence is the same for every qtype (our deliberate difference from CoreDNS, §18 of
docs/dns-contract.md): a name that exists answers NODATA for types it lacks, never NXDOMAIN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeAlias

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RR, SRV, TXT, A, DNSLabel

from kdns.k8s.index import ClusterIndex
from kdns.k8s.records import Addresses, ServiceView, SrvRecord, packed_ip, split_families
from kdns.plugins.kubernetes.names import address_from_pod_label, address_from_reverse
from kdns.plugins.kubernetes.options import REVERSE_SUFFIXES, KubernetesOptions, is_reverse_zone
from kdns.protocol import names

DNS_SCHEMA_VERSION = "1.1.0"  # docs/dns-contract.md §6
DNS_VERSION_TTL = 28800  # docs/dns-contract.md §6: always 28800
_ADDRESS_TYPES = (QTYPE.A, QTYPE.AAAA)
# An answer's owner: the name as spelled, as text or a dnslib label (which keeps a label's dots).
Owner: TypeAlias = str | DNSLabel


class Status(Enum):
    ANSWER = "answer"  # NOERROR with records
    NODATA = "nodata"  # NOERROR, empty, SOA in authority
    NXDOMAIN = "nxdomain"  # name error (may fall through, or SERVFAIL before sync)


@dataclass
class Result:
    status: Status
    answer: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    # ExternalName whose target lies outside our zones: the plugin resolves it through the server.
    chase: str | None = None
    apex_ns: bool = False  # NS at the apex: glue is added by the plugin (needs this server's addresses)
    # Set while chasing a CNAME: the chain ended at a name without data, so the zone SOA goes in
    # authority (RFC 2308 §2.2), or the upstream's authority for out-of-zone targets.
    negative_tail: bool = False
    scope: str = ""  # the index scope the answer was computed from: a namespace, or "" (all)
    authority: list[RR] = field(default_factory=list)
    truncated: bool = False
    upstream: bool = False  # the chase asked the rest of the server: the answer is not ours to reuse


def _nodata() -> Result:
    return Result(Status.NODATA)


def _nxdomain() -> Result:
    return Result(Status.NXDOMAIN)


class Lookup:
    """Answers for one kubernetes plugin instance; holds no per-query state."""

    def __init__(
        self, index: ClusterIndex, options: KubernetesOptions, self_addresses: Sequence[str] = ()
    ) -> None:
        self.index = index
        self.opts = options
        self.ttl = options.ttl
        self.self_addresses = split_families(self_addresses)

    # --- entry point ----------------------------------------------------------------------------

    def lookup(self, owner: Owner, qname: str, zone: str, qtype: int) -> Result:
        """`owner` is the name as the client spelled it; `qname` is its lower-case form in `zone`.
        Labels are split as escaped text: one holding a dot stays one label (and matches nothing)."""
        labels = names.relative(qname, zone)
        if is_reverse_zone(zone):
            return self._reverse(owner, qname, labels, zone, qtype)
        if not labels:
            return self._apex(qtype)
        top = labels[-1]
        if top in ("svc", "pod"):
            result = (
                self._svc(owner, labels, zone, qtype) if top == "svc" else self._pod(owner, labels, qtype)
            )
            if len(labels) >= 2:
                result.scope = labels[-2]  # everything below <ns>.svc|pod is that namespace's data
            return result
        if labels == ["dns-version"]:
            if qtype == QTYPE.TXT:
                return Result(
                    Status.ANSWER, [RR(owner, QTYPE.TXT, ttl=DNS_VERSION_TTL, rdata=TXT(DNS_SCHEMA_VERSION))]
                )
            return _nodata()
        if labels == ["dns"]:
            return _nodata()
        if labels == ["ns", "dns"]:
            return self._addresses(owner, self.self_addresses, qtype)
        return _nxdomain()

    # --- zone apex and this server --------------------------------------------------------------

    def _apex(self, qtype: int) -> Result:
        if qtype == QTYPE.NS:
            return Result(Status.ANSWER, apex_ns=True)
        if qtype == QTYPE.SOA:
            return Result(Status.ANSWER)  # the plugin writes the SOA (it owns serial and zone spelling)
        return _nodata()

    def nameservers(self, zone_owner: Owner, zone: str) -> tuple[list[RR], list[RR]]:
        """NS records and glue for the apex (docs/dns-contract.md §15): the Service whose endpoint
        is this server,
        else `ns.dns.<zone>` with this server's addresses."""
        ns_rrs: list[RR] = []
        glue: list[RR] = []
        seen: set[str] = set()
        for ip in (*self.self_addresses.v4, *self.self_addresses.v6):
            packed = packed_ip(ip)
            for key in self.index.services_with_endpoint(packed) if packed else ():
                view = self.index.views.get(key)
                if view is None or not self._exposed(view.namespace):
                    continue
                target = f"{view.relname}.{zone}"
                if target in seen:
                    continue
                seen.add(target)
                ns_rrs.append(RR(zone_owner, QTYPE.NS, ttl=self.ttl, rdata=NS(target)))
                addrs = view.addresses or split_families((ip,))
                glue.extend(self._address_rrs(target, addrs))
        if not ns_rrs:
            target = f"ns.dns.{zone}"
            ns_rrs.append(RR(zone_owner, QTYPE.NS, ttl=self.ttl, rdata=NS(target)))
            glue.extend(self._address_rrs(target, self.self_addresses))
        return ns_rrs, glue

    # --- svc.<zone> -----------------------------------------------------------------------------

    def _svc(self, owner: Owner, labels: list[str], zone: str, qtype: int) -> Result:
        n = len(labels)
        if n == 1:
            return _nodata()
        namespace = labels[-2]
        if not self._exposed(namespace):
            return _nxdomain()
        if n == 2:
            return _nodata()
        view = self.index.view(namespace, labels[-3])
        if view is None or not view.exists:
            return _nxdomain()
        if n == 3:
            return self._service(owner, view, zone, qtype)
        if view.cname is not None:
            return _nxdomain()  # docs/dns-contract.md §5: names below an ExternalName do not exist
        if n == 4:
            return self._endpoint(owner, view, labels[0], qtype)
        if n == 5:
            port, proto = labels[0].removeprefix("_"), labels[1].removeprefix("_")
            srvs = view.srv_by_port.get((port, proto))
            if srvs is None:
                return _nxdomain()  # docs/dns-contract.md §3: an unknown port or protocol is NXDOMAIN
            if qtype != QTYPE.SRV:
                return _nodata()
            return self._srv(owner, view, srvs, zone)
        return _nxdomain()

    def _service(self, owner: Owner, view: ServiceView, zone: str, qtype: int) -> Result:
        if view.cname is not None:
            return self._external_name(owner, view.cname, qtype)
        if qtype == QTYPE.SRV:
            return self._srv(owner, view, view.srv_all, zone) if view.srv_all else _nodata()
        if qtype == QTYPE.ANY:  # RFC 8482: a subset is enough; the addresses are what clients want
            rrs = self._address_rrs(owner, view.addresses)
            return Result(Status.ANSWER, rrs) if rrs else _nodata()
        return self._addresses(owner, view.addresses, qtype)

    def _endpoint(self, owner: Owner, view: ServiceView, label: str, qtype: int) -> Result:
        addrs = self.index.endpoints_of((view.namespace, view.name)).get(label)
        if addrs is not None:
            return self._addresses(owner, addrs, qtype)
        # `_tcp.<svc>…` is an empty non-terminal when `_<port>._tcp.<svc>…` exists (RFC 8020: NODATA).
        if label.startswith("_") and any(proto == label[1:] for _, proto in view.srv_by_port):
            return _nodata()
        return _nxdomain()

    def _srv(self, owner: Owner, view: ServiceView, srvs: Sequence[SrvRecord], zone: str) -> Result:
        answer = [
            RR(owner, QTYPE.SRV, ttl=self.ttl, rdata=SRV(s.priority, s.weight, s.port, f"{s.target}.{zone}"))
            for s in srvs
        ]
        glue: list[RR] = []
        for target in dict.fromkeys(s.target for s in srvs):
            if target == view.relname:
                addrs = view.addresses
            else:
                addrs = view.endpoints.get(target.split(".", 1)[0], Addresses())
            glue.extend(self._address_rrs(f"{target}.{zone}", addrs))
        return Result(Status.ANSWER, answer, glue)

    def _external_name(self, owner: Owner, target: str, qtype: int) -> Result:
        cname = RR(owner, QTYPE.CNAME, ttl=self.ttl, rdata=CNAME(target + "."))
        if qtype == QTYPE.CNAME:
            return Result(Status.ANSWER, [cname])
        return Result(Status.ANSWER, [cname], chase=target.lower() + ".")

    # --- pod.<zone> -----------------------------------------------------------------------------

    def _pod(self, owner: Owner, labels: list[str], qtype: int) -> Result:
        n = len(labels)
        if n == 1:
            return _nodata()
        if self.opts.pods == "disabled" or n > 3:
            return _nxdomain()
        namespace = labels[-2]
        if not self._exposed(namespace):
            return _nxdomain()
        if n == 2:
            return _nodata()
        ip = address_from_pod_label(labels[0])
        if ip is None:
            return _nxdomain()
        if self.opts.pods == "verified":
            packed = packed_ip(ip)
            if packed is None or not self.index.pod_exists(namespace, packed):
                return _nxdomain()
        return self._addresses(owner, split_families((ip,)), qtype)

    # --- reverse zones --------------------------------------------------------------------------

    def _reverse(self, owner: Owner, qname: str, labels: list[str], zone: str, qtype: int) -> Result:
        suffix = next(s for s in REVERSE_SUFFIXES if names.is_subdomain(qname, s))
        packed = address_from_reverse(names.relative(qname, suffix), suffix)
        if packed is None:
            return _nxdomain()
        targets = [t for ns, t in self.index.ptr_targets(packed) if self._exposed(ns)]
        if not targets:
            return _nxdomain()
        if qtype != QTYPE.PTR:
            return _nodata()
        primary = self.opts.primary_zone
        return Result(
            Status.ANSWER, [RR(owner, QTYPE.PTR, ttl=self.ttl, rdata=PTR(f"{t}.{primary}")) for t in targets]
        )

    # --- helpers --------------------------------------------------------------------------------

    def _exposed(self, namespace: str) -> bool:
        allowed = self.opts.namespaces
        return (not allowed or namespace in allowed) and self.index.namespace_exists(namespace)

    def _addresses(self, owner: Owner, addrs: Addresses, qtype: int) -> Result:
        if qtype == QTYPE.A and addrs.v4:
            return Result(Status.ANSWER, [RR(owner, QTYPE.A, ttl=self.ttl, rdata=A(ip)) for ip in addrs.v4])
        if qtype == QTYPE.AAAA and addrs.v6:
            return Result(
                Status.ANSWER, [RR(owner, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA(ip)) for ip in addrs.v6]
            )
        return _nodata()

    def _address_rrs(self, owner: Owner, addrs: Addresses) -> list[RR]:
        return [RR(owner, QTYPE.A, ttl=self.ttl, rdata=A(ip)) for ip in addrs.v4] + [
            RR(owner, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA(ip)) for ip in addrs.v6
        ]
