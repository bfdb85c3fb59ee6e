"""Pure functions: a Service and its EndpointSlices → the DNS data of that Service.

Computed once per change of the Service or one of its slices (never per query) and stored in the
index as a ServiceView. Names here are relative to the cluster zone and lower-case
(`web.default.svc`); the plugin appends the zone when it answers. Rules cite the sections (§) of
docs/dns-contract.md.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from kdns.k8s.models import EndpointSlice, Service, ServicePort

# §1: `endpoint_pod_names` uses the pod name only when it fits a DNS label (< 64 chars).
_MAX_LABEL = 63
# CoreDNS weighs SRV records out of 100 (§14).
_SRV_WEIGHT_TOTAL = 100


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # relative to the zone, e.g. "web-0.web.default.svc"


@dataclass(frozen=True, slots=True)
class Addresses:
    """A and AAAA data of one name, deduplicated, in first-seen order; also packed (the records'
    RDATA, RFC 1035 §3.4.1, RFC 3596 §2.2), so answers are written without parsing an address."""

    v4: tuple[str, ...] = ()
    v6: tuple[str, ...] = ()
    v4_packed: tuple[bytes, ...] = ()
    v6_packed: tuple[bytes, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)


@dataclass(slots=True)
class ServiceView:
    """Everything DNS can say about one Service; `exists` False means its name is NXDOMAIN."""

    namespace: str
    name: str
    exists: bool
    addresses: Addresses  # of `<svc>.<ns>.svc`
    cname: str | None  # ExternalName target as written (case kept), without trailing dot
    # label → addresses (`<label>.<svc>…`), kept for headless Services only: for ClusterIP Services
    # these names are a CoreDNS extension asked for rarely, and holding them for the bulk of a
    # cluster's endpoints cost ~20 MB at 100k; ClusterIndex.endpoints_of derives them when asked.
    endpoints: dict[str, Addresses] = field(default_factory=dict)
    srv_by_port: dict[tuple[str, str], tuple[SrvRecord, ...]] = field(default_factory=dict)  # (name, proto)
    srv_all: tuple[SrvRecord, ...] = ()  # SRV at the bare service name (CoreDNS extension, §13)
    cluster_ips: tuple[str, ...] = ()  # PTR → the Service
    endpoint_ips: tuple[str, ...] = ()  # ready endpoint addresses: PTR → their endpoint names
    # For ClusterIP Services, whose endpoint names are not kept: a digest of (label, address) pairs,
    # so that a change of names alone (an address reused by another pod) still changes the view
    # and so invalidates answers cached for those names.
    endpoint_names_digest: int = 0
    _key: tuple[str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def relname(self) -> str:
        return f"{self.name}.{self.namespace}.svc"

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name), the index's key of this Service: one tuple per view, shared by every
        reply that depends on it (a replayed reply keeps it alive)."""
        key = self._key
        if key is None:
            key = self._key = (self.namespace, self.name)
        return key


def packed_ip(ip: str) -> bytes | None:
    """Canonical form for comparing addresses (§3: compare parsed addresses, never strings)."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except (OSError, ValueError):
        return None


def dashed_ip(ip: str) -> str:
    """Endpoint label for an address without hostname (§1): `10-3-0-102`, `fd00--5`, `fd00--0`."""
    if ":" not in ip:
        return ip.replace(".", "-")
    label = ipaddress.IPv6Address(ip).compressed.replace(":", "-")
    return label + "0" if label.endswith("-") else label


def _dedup(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def split_families(ips: Iterable[str]) -> Addresses:
    unique = [(ip, packed_ip(ip)) for ip in _dedup(ips)]
    v4 = [(ip, p) for ip, p in unique if p is not None and len(p) == 4]
    v6 = [(ip, p) for ip, p in unique if p is not None and len(p) == 16]
    return Addresses(
        tuple(ip for ip, _ in v4), tuple(ip for ip, _ in v6), tuple(p for _, p in v4), tuple(p for _, p in v6)
    )


def _weight(candidates: int) -> int:
    """floor(100/N), at least 1, computed before duplicates are removed (§14)."""
    return max(1, _SRV_WEIGHT_TOTAL // candidates) if candidates else 0


def _srv_set(entries: list[tuple[int, str]]) -> tuple[SrvRecord, ...]:
    """(port, target) candidates → SRVs of equal weight, deduplicated by (target, port)."""
    weight = _weight(len(entries))
    unique = dict.fromkeys(entries)
    return tuple(SrvRecord(0, weight, port, target) for port, target in unique)


@dataclass(frozen=True, slots=True)
class _ReadyEndpoint:
    label: str
    ip: str
    ports: tuple[ServicePort, ...]


def _ready_endpoints(slices: Iterable[EndpointSlice], endpoint_pod_names: bool) -> list[_ReadyEndpoint]:
    """Ready addresses of IP slices with their labels (§1, §8: ready true or absent; FQDN ignored)."""
    out = []
    for sl in slices:
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        for ep in sl.endpoints:
            if not ep.ready:
                continue
            for ip in ep.addresses:
                out.append(
                    _ReadyEndpoint(
                        endpoint_label(ep.hostname, ep.target_name, ip, endpoint_pod_names), ip, sl.ports
                    )
                )
    return out


def endpoint_label(hostname: str | None, target_name: str | None, ip: str, endpoint_pod_names: bool) -> str:
    """hostname, else (with endpoint_pod_names) the pod name if short enough, else the dashed IP."""
    if hostname:
        return hostname.lower()
    if endpoint_pod_names and target_name and len(target_name) <= _MAX_LABEL:
        return target_name.lower()
    return dashed_ip(ip)


def build_view(
    svc: Service,
    slices: Iterable[EndpointSlice],
    *,
    endpoint_pod_names: bool = False,
    ignore_empty_service: bool = False,
    use_endpoints: bool = True,
) -> ServiceView:
    """The DNS view of `svc` given its slices (§3 ClusterIP, §4 headless, §5 ExternalName)."""
    ns, name = svc.namespace.lower(), svc.name.lower()
    rel = f"{name}.{ns}.svc"
    if svc.is_external_name:
        target = svc.external_name.rstrip(".")  # spelled as given; compared lower-cased
        valid = bool(target) and not is_ip(target)  # §5, coredns/coredns#2324: an IP is no target
        return ServiceView(ns, name, valid, Addresses(), target if valid else None)

    ready = _ready_endpoints(slices, endpoint_pod_names) if use_endpoints else []

    srv_by_port: dict[tuple[str, str], list[tuple[int, str]]] = {}
    srv_all: list[tuple[int, str]] = []
    if svc.headless:
        addresses = split_families(r.ip for r in ready)
        exists = bool(addresses)  # §4: a headless Service without ready endpoints is NXDOMAIN
        for r in ready:
            for p in r.ports:
                entry = (p.port, f"{r.label}.{rel}")
                srv_all.append(entry)
                if p.name:
                    srv_by_port.setdefault((p.name.lower(), p.protocol), []).append(entry)
    else:
        addresses = split_families(svc.cluster_ips)
        exists = not (ignore_empty_service and not ready)
        for p in svc.ports:
            for _ip in svc.cluster_ips:  # candidates are IP × port (§14): dual-stack → weight 50
                entry = (p.port, rel)
                srv_all.append(entry)
                if p.name:
                    srv_by_port.setdefault((p.name.lower(), p.protocol), []).append(entry)
    return ServiceView(
        namespace=ns,
        name=name,
        exists=exists,
        addresses=addresses,
        cname=None,
        endpoints=_by_label(ready) if svc.headless else {},
        srv_by_port={k: _srv_set(v) for k, v in srv_by_port.items()},
        srv_all=_srv_set(srv_all),
        cluster_ips=() if svc.headless else svc.cluster_ips,
        endpoint_ips=_dedup(r.ip for r in ready),
        endpoint_names_digest=0 if svc.headless else hash(tuple((r.label, r.ip) for r in ready)),
    )


def endpoint_names(slices: Iterable[EndpointSlice], endpoint_pod_names: bool) -> dict[str, Addresses]:
    """label → addresses of the ready endpoints of `slices` (the `<label>.<svc>…` names)."""
    return _by_label(_ready_endpoints(slices, endpoint_pod_names))


def _by_label(ready: Iterable[_ReadyEndpoint]) -> dict[str, Addresses]:
    grouped: dict[str, list[str]] = {}
    for r in ready:
        grouped.setdefault(r.label, []).append(r.ip)
    return {label: split_families(ips) for label, ips in grouped.items()}


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address, not a host name (ExternalName targets, LoadBalancer ingress)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
