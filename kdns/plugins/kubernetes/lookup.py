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
    <reverse address>              PTR (reverse zones); the names above one exist too (RFC 8020)

A name's existence is the same for every qtype (our deliberate difference from CoreDNS,
docs/dns-contract.md §18): a name that exists answers NODATA for types it lacks, never NXDOMAIN.

Each Result also says what it read (`deps`, kdns.request.Reuse: the server replays the reply until
one of those changes) and, for a negative answer, why in plain words (`reason`: the EXTRA-TEXT of an
Extended DNS Error, RFC 8914). Records are name-agnostic values that kdns/plugins/kubernetes/answer.py
writes in wire form; packed addresses come prepared from the index (kdns/k8s/records.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from dnslib import QTYPE

from kdns.k8s.index import ClusterIndex, Key
from kdns.k8s.records import Addresses, ServiceView, SrvRecord, split_families
from kdns.plugins.kubernetes.names import address_from_pod_label, address_from_reverse, reverse_prefix
from kdns.plugins.kubernetes.options import REVERSE_SUFFIXES, KubernetesOptions, is_reverse_zone
from kdns.protocol import names
from kdns.request import Dependency

DNS_SCHEMA_VERSION = "1.1.0"  # docs/dns-contract.md §6
DNS_VERSION_TTL = 28800  # docs/dns-contract.md §6: always 28800, whatever `ttl` says
A, AAAA, SRV, CNAME, PTR, NS, TXT, SOA, ANY = 1, 28, 33, 5, 12, 2, 16, 6, 255


class Status(Enum):
    ANSWER = "answer"  # NOERROR with records
    NODATA = "nodata"  # NOERROR, empty, SOA in authority
    NXDOMAIN = "nxdomain"  # name error (may fall through, or SERVFAIL before sync)


@dataclass(slots=True)
class Name:
    """A domain name as an answer spells it: `labels`, then the zone as the client spelled it when
    `zoned` (CoreDNS keeps the query's spelling of the zone, docs/dns-contract.md §15)."""

    labels: tuple[bytes, ...]
    zoned: bool = True


@dataclass(slots=True)
class AddressRR:
    owner: Name | None  # None: the question's name
    rtype: int  # A or AAAA
    ttl: int
    rdata: bytes


@dataclass(slots=True)
class NameRR:
    owner: Name | None
    rtype: int  # CNAME, PTR or NS
    ttl: int
    target: Name


@dataclass(slots=True)
class SrvRR:
    owner: Name | None
    ttl: int
    fields: tuple[int, int, int]  # priority, weight, port
    target: Name


@dataclass(slots=True)
class TxtRR:
    owner: Name | None
    ttl: int
    text: bytes


Record = AddressRR | NameRR | SrvRR | TxtRR


@dataclass(slots=True)
class Result:
    status: Status
    answer: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    # ExternalName whose target lies outside our zones: the plugin resolves it through the server.
    chase: str | None = None  # lower-case text of the target, to look up
    chase_name: Name | None = None  # the target as written, for the owners of what the chase finds
    apex_ns: bool = False  # NS at the apex: the plugin adds them with glue (this server's addresses)
    apex_soa: bool = False  # SOA at the apex: the plugin writes it (it owns the serial)
    # Set while chasing a CNAME: the chain ended at a name without data, so the zone SOA goes in
    # authority (RFC 2308 §2.2), or the upstream's authority for out-of-zone targets.
    negative_tail: bool = False
    deps: list[Dependency] = field(default_factory=list)  # what the answer read (kdns.request.Reuse)
    reason: str = ""  # why it is negative, in plain words (Extended DNS Error text, RFC 8914)


# A name below `<namespace>.svc|pod`: (relative labels, namespace, qtype, owner) → its Result.
_Below = Callable[[list[str], str, int, "Name | None"], Result]


def _nodata(reason: str = "") -> Result:
    return Result(Status.NODATA, reason=reason)


def _nxdomain(reason: str) -> Result:
    return Result(Status.NXDOMAIN, reason=reason)


def _id(view: ServiceView) -> str:
    return f"{view.namespace}/{view.name}"


def _plain_labels(name: str) -> tuple[bytes, ...]:
    """A relative name from the index (Kubernetes names: no escapes) as labels."""
    return tuple(name.encode().split(b"."))


def _labels(texts: Sequence[str]) -> tuple[bytes, ...]:
    """Escaped label texts (request.labels) → labels; only names made of plain labels get here."""
    return tuple(t.encode() for t in texts)


class Lookup:
    """Answers for one kubernetes plugin instance; holds no per-query state."""

    def __init__(
        self, index: ClusterIndex, options: KubernetesOptions, self_addresses: Sequence[str] = ()
    ) -> None:
        self.index = index
        self.opts = options
        self.ttl = options.ttl
        self.self_addresses = split_families(self_addresses)
        self._zone_labels = {zone: len(names.split(zone)) for zone in options.zones}
        self._reverse_zones = frozenset(zone for zone in options.zones if is_reverse_zone(zone))

    # --- entry point ----------------------------------------------------------------------------

    def lookup(self, labels: Sequence[str], zone: str, qtype: int, owner: Name | None = None) -> Result:
        """`labels`: the lower-case name's labels (escaped text) in `zone`; `owner`: how records at
        the name are owned (None: the question's name; a chased CNAME target otherwise)."""
        rel = list(labels[: len(labels) - self._zone_labels[zone]])
        if zone in self._reverse_zones:
            return self._reverse(labels, qtype, owner)
        if not rel:
            return self._apex(qtype)
        top = rel[-1]
        if top == "svc":
            return self._svc(rel, qtype, owner)
        if top == "pod":
            return self._pod(rel, qtype, owner)
        if rel == ["dns-version"]:
            if qtype == TXT:
                txt = TxtRR(
                    owner, DNS_VERSION_TTL, bytes((len(DNS_SCHEMA_VERSION),)) + DNS_SCHEMA_VERSION.encode()
                )
                return Result(Status.ANSWER, [txt])
            return _nodata(f"dns-version.{zone} has TXT only")
        if rel == ["dns"]:
            return _nodata(f"dns.{zone} holds no records (an empty non-terminal)")
        if rel == ["ns", "dns"]:
            result = self._addresses(owner, self.self_addresses, qtype, f"ns.dns.{zone}")
            result.deps.append(self._dep_everything())
            return result
        return _nxdomain(
            f"no such name in zone {zone} (the kubernetes plugin serves svc, pod and dns-version)"
        )

    # --- dependencies -------------------------------------------------------------------------------

    def _dep_namespace(self, namespace: str) -> Dependency:
        versions = self.index.namespace_versions
        if namespace in self.index.namespaces:  # the index's own string (interned), not the query's copy
            namespace = sys.intern(namespace)
        return (versions, namespace, versions.get(namespace))

    def _dep_service(self, key: Key) -> Dependency:
        return (self.index.service_versions, key, self.index.service_versions.get(key))

    def _dep_endpoints(self, key: Key) -> Dependency:
        return (self.index.endpoint_versions, key, self.index.endpoint_versions.get(key))

    def _dep_everything(self) -> Dependency:
        return (self.index.everything, "", self.index.everything[""])

    # --- zone apex and this server --------------------------------------------------------------

    def _apex(self, qtype: int) -> Result:
        if qtype == NS:
            return Result(Status.ANSWER, apex_ns=True, deps=[self._dep_everything()])
        if qtype == SOA:
            return Result(Status.ANSWER, apex_soa=True)  # the serial is patched in when replayed
        return _nodata("the zone apex has SOA and NS only")

    def nameservers(self) -> tuple[list[Record], list[Record]]:
        """NS records and glue for the apex (docs/dns-contract.md §15): the Service whose endpoint is
        this server, else `ns.dns.<zone>` with this server's addresses."""
        ns_rrs: list[Record] = []
        glue: list[Record] = []
        seen: set[str] = set()
        for ip, packed in zip(
            (*self.self_addresses.v4, *self.self_addresses.v6),
            (*self.self_addresses.v4_packed, *self.self_addresses.v6_packed),
            strict=True,
        ):
            for key in self.index.services_with_endpoint(packed):
                view = self.index.views.get(key)
                if view is None or not self._exposed(view.namespace):
                    continue
                if view.relname in seen:
                    continue
                seen.add(view.relname)
                target = Name(_labels(names.split(view.relname)))
                ns_rrs.append(NameRR(None, NS, self.ttl, target))
                glue.extend(self._address_rrs(target, view.addresses or split_families((ip,))))
        if not ns_rrs:
            target = Name((b"ns", b"dns"))
            ns_rrs.append(NameRR(None, NS, self.ttl, target))
            glue.extend(self._address_rrs(target, self.self_addresses))
        return ns_rrs, glue

    # --- svc.<zone> -----------------------------------------------------------------------------

    def _svc(self, rel: list[str], qtype: int, owner: Name | None) -> Result:
        if len(rel) == 1:
            return _nodata("svc holds no records (an empty non-terminal)")
        return self._in_namespace(rel, qtype, owner, self._service_names)

    def _service_names(self, rel: list[str], namespace: str, qtype: int, owner: Name | None) -> Result:
        n = len(rel)
        view = self.index.view(namespace, rel[-3])
        key = view.key if view is not None else (namespace, rel[-3])
        dep = self._dep_service(key)
        if view is None or not view.exists:
            result = _nxdomain(self._missing(key, view))
        elif n == 3:
            result = self._service(owner, view, qtype)
        elif view.cname is not None:
            result = _nxdomain(f"names below ExternalName service {namespace}/{key[1]} do not exist")
        elif n == 4:
            result = self._endpoint(owner, view, rel[0], qtype)
            result.deps.append(self._dep_endpoints(key))
        elif n == 5:
            result = self._port(owner, view, rel[0], rel[1], qtype)
        else:
            result = _nxdomain(f"no such name below service {namespace}/{key[1]}")
        result.deps.append(dep)
        return result

    def _missing(self, key: Key, view: ServiceView | None) -> str:
        """Why the Service name `key` is a name error (docs/dns-contract.md §4–§5)."""
        namespace, name = key
        svc = self.index.services.get(key)
        if view is None or svc is None:
            return f"no service {name} in namespace {namespace}"
        if svc.is_external_name:
            return f"service {namespace}/{name} is an ExternalName to {svc.external_name!r}, not a name"
        not_ready = sum(
            1 for sl in self.index.slices_of.get(key, {}).values() for ep in sl.endpoints if not ep.ready
        )
        if svc.headless:
            return (
                f"service {namespace}/{name} has no ready endpoints ({not_ready} not ready, "
                f"publishNotReadyAddresses={str(svc.publish_not_ready).lower()})"
            )
        return (
            f"service {namespace}/{name} has no ready endpoints ({not_ready} not ready; ignore empty_service)"
        )

    def _service(self, owner: Name | None, view: ServiceView, qtype: int) -> Result:
        if view.cname is not None:
            return self._external_name(owner, view.cname, qtype)
        if qtype == SRV:
            if view.srv_all:
                return self._srv(owner, view, view.srv_all)
            return _nodata(f"service {_id(view)} has no ports (no SRV records)")
        if qtype == ANY:  # RFC 8482: a subset is enough; the addresses are what clients want
            rrs = self._address_rrs(owner, view.addresses)
            return Result(Status.ANSWER, rrs) if rrs else _nodata(f"service {_id(view)} has no addresses")
        return self._addresses(owner, view.addresses, qtype, lambda: f"service {_id(view)}")

    def _endpoint(self, owner: Name | None, view: ServiceView, label: str, qtype: int) -> Result:
        addrs = self.index.endpoints_of((view.namespace, view.name)).get(label)
        if addrs is not None:
            return self._addresses(owner, addrs, qtype, lambda: f"endpoint {label} of service {_id(view)}")
        # `_tcp.<svc>…` is an empty non-terminal when `_<port>._tcp.<svc>…` exists (RFC 8020: NODATA).
        if label.startswith("_") and any(proto == label[1:] for _, proto in view.srv_by_port):
            return _nodata(f"{label} holds no records (an empty non-terminal)")
        return _nxdomain(f"service {_id(view)} has no ready endpoint named {label}")

    def _port(self, owner: Name | None, view: ServiceView, port: str, proto: str, qtype: int) -> Result:
        port, proto = port.removeprefix("_"), proto.removeprefix("_")
        srvs = view.srv_by_port.get((port, proto))
        if srvs is None:  # docs/dns-contract.md §13: an unknown port or protocol is NXDOMAIN
            return _nxdomain(f"service {_id(view)} has no port named {port} over {proto}")
        if qtype != SRV:
            return _nodata(f"_{port}._{proto} of service {_id(view)} has SRV records only")
        return self._srv(owner, view, srvs)

    def _srv(self, owner: Name | None, view: ServiceView, srvs: Sequence[SrvRecord]) -> Result:
        answer: list[Record] = [
            SrvRR(owner, self.ttl, (s.priority, s.weight, s.port), Name(_plain_labels(s.target)))
            for s in srvs
        ]
        glue: list[Record] = []
        for s in {s.target: s for s in srvs}.values():
            if s.target == view.relname:
                addrs = view.addresses
            else:
                addrs = view.endpoints.get(s.target.split(".", 1)[0], Addresses())
            glue.extend(self._address_rrs(Name(_plain_labels(s.target)), addrs))
        return Result(Status.ANSWER, answer, glue)

    def _external_name(self, owner: Name | None, target: str, qtype: int) -> Result:
        try:
            written = Name(names.from_text(target + "."), zoned=False)  # case kept (dns-contract §5)
        except names.BadName:
            return _nxdomain(f"externalName target {target!r} is not a valid name")
        cname = NameRR(owner, CNAME, self.ttl, written)
        if qtype == CNAME:
            return Result(Status.ANSWER, [cname])
        return Result(Status.ANSWER, [cname], chase=names.canonical(target), chase_name=written)

    # --- pod.<zone> -----------------------------------------------------------------------------

    def _pod(self, rel: list[str], qtype: int, owner: Name | None) -> Result:
        n = len(rel)
        if n == 1:
            return _nodata("pod holds no records (an empty non-terminal)")
        if self.opts.pods == "disabled":
            return _nxdomain("pods disabled")
        if n > 3:
            return _nxdomain("no such name below pod (want <a-b-c-d>.<namespace>.pod)")
        return self._in_namespace(rel, qtype, owner, self._pod_address)

    def _in_namespace(self, rel: list[str], qtype: int, owner: Name | None, below: _Below) -> Result:
        """`<namespace>.svc|pod` and what is `below` it: NXDOMAIN for a namespace that is not
        exposed, NODATA for the namespace name itself; valid while the namespace's standing is."""
        namespace = rel[-2]
        why_not = self._unexposed(namespace)
        if why_not:
            result = _nxdomain(why_not)
        elif len(rel) == 2:
            result = _nodata(f"namespace {namespace} holds no records (an empty non-terminal)")
        else:
            result = below(rel, namespace, qtype, owner)
        result.deps.append(self._dep_namespace(namespace))
        return result

    def _pod_address(self, rel: list[str], namespace: str, qtype: int, owner: Name | None) -> Result:
        ip = address_from_pod_label(rel[0])
        if ip is None:
            return _nxdomain(f"{rel[0]} is not an address written with dashes")
        addrs = split_families((ip,))
        if self.opts.pods == "verified":
            packed = (addrs.v4_packed or addrs.v6_packed)[0]
            pods = self.index.pod_ips
            if not self.index.pod_exists(namespace, packed):
                result = _nxdomain(f"no pod with address {ip} in namespace {namespace} (pods verified)")
            else:
                result = self._addresses(owner, addrs, qtype, f"pod {ip}")
            result.deps.append((pods, (namespace, packed), pods.get((namespace, packed))))
            return result
        return self._addresses(owner, addrs, qtype, f"pod {ip}")

    # --- reverse zones --------------------------------------------------------------------------

    def _reverse(self, labels: Sequence[str], qtype: int, owner: Name | None) -> Result:
        qname = ".".join(labels) + "."
        suffix = next(s for s in REVERSE_SUFFIXES if names.is_subdomain(qname, s))
        rel = list(labels[: len(labels) - len(names.split(suffix))])
        packed = address_from_reverse(rel, suffix)
        if packed is None:
            return self._reverse_above(rel, suffix)
        index = self.index
        deps: list[Dependency] = [
            (index.cluster_ip_ptr, packed, index.cluster_ip_ptr.get(packed)),
            (index.endpoint_ptr, packed, index.endpoint_ptr.get(packed)),
        ]
        for key in (index.cluster_ip_ptr.get(packed), *index.services_with_endpoint(packed)):
            if key is not None:
                deps += [self._dep_endpoints(key), self._dep_namespace(key[0])]
        targets = [t for ns, t in index.ptr_targets(packed) if self._exposed(ns)]
        if not targets:
            result = _nxdomain("no served Service or endpoint has this address")
        elif qtype != PTR:
            result = _nodata("a reverse name has PTR records only")
        else:
            primary = names.from_text(self.opts.primary_zone)
            ptrs: list[Record] = [
                NameRR(owner, PTR, self.ttl, Name(_labels(names.split(t)) + primary, zoned=False))
                for t in targets
            ]
            result = Result(Status.ANSWER, ptrs)
        result.deps = deps
        return result

    def _reverse_above(self, rel: list[str], suffix: str) -> Result:
        """A reverse name that is no whole address: it exists (NODATA, RFC 8020) when some address
        with a PTR lies below it, else it is a name error."""
        prefix = reverse_prefix(rel, suffix)
        result = _nxdomain("not a reverse name of an address with a PTR record")
        if prefix is not None:
            for ip in self.index.reverse_names_below(*prefix):
                if any(self._exposed(ns) for ns, _ in self.index.ptr_targets(ip)):
                    result = _nodata("a reverse name above PTR records (an empty non-terminal)")
                    break
        result.deps.append(self._dep_everything())
        return result

    # --- helpers --------------------------------------------------------------------------------

    def _unexposed(self, namespace: str) -> str:
        """Why names in `namespace` do not exist, or "" when they may."""
        allowed = self.opts.namespaces
        if allowed and namespace not in allowed:
            return f"namespace {namespace} is not served (namespaces option)"
        if not self.index.namespace_exists(namespace):
            return f"namespace {namespace} does not exist"
        return ""

    def _exposed(self, namespace: str) -> bool:
        return not self._unexposed(namespace)

    def _addresses(
        self, owner: Name | None, addrs: Addresses, qtype: int, what: str | Callable[[], str]
    ) -> Result:
        """A/AAAA answers, else NODATA saying what `what` (text, or made when needed) lacks."""
        if qtype == A and addrs.v4_packed:
            return Result(Status.ANSWER, [AddressRR(owner, A, self.ttl, ip) for ip in addrs.v4_packed])
        if qtype == AAAA and addrs.v6_packed:
            return Result(Status.ANSWER, [AddressRR(owner, AAAA, self.ttl, ip) for ip in addrs.v6_packed])
        name = what if isinstance(what, str) else what()
        if qtype == A:
            return _nodata(f"{name} has no IPv4 address")
        if qtype == AAAA:
            return _nodata(f"{name} has no IPv6 address")
        return _nodata(f"{name} has addresses only (A/AAAA), no {QTYPE.get(qtype)}")

    def _address_rrs(self, owner: Name | None, addrs: Addresses) -> list[Record]:
        rrs: list[Record] = [AddressRR(owner, A, self.ttl, ip) for ip in addrs.v4_packed]
        return rrs + [AddressRR(owner, AAAA, self.ttl, ip) for ip in addrs.v6_packed]
