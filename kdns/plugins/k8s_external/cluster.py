"""The one place k8s_external reads the kubernetes plugin's data (CoreDNS: the Externaler interface).

Everything k8s_external needs of the cluster goes through `ClusterData`, so a change in how the
kubernetes plugin or its index keeps Services touches this module only. It reads:
the Service models (`index.services`: external IPs, load-balancer ingress, ports), namespace
existence, the headless views (`index.view`, `index.endpoints_of`), the reverse map of endpoints
(to find the Services this server backs) and the index's SOA serial. Nothing is copied or cached:
every answer reads the current index.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kdns.k8s.models import Service, ServicePort
from kdns.k8s.records import Addresses, SrvRecord, is_ip, packed_ip
from kdns.plugin import Plugin
from kdns.plugins.kubernetes import Kubernetes


@dataclass(frozen=True, slots=True)
class ExternalService:
    """What k8s_external serves for one Service."""

    namespace: str
    name: str
    addresses: tuple[str, ...]  # spec.externalIPs, then load-balancer ingress IPs
    hostnames: tuple[str, ...]  # load-balancer ingress hostnames (answered as a CNAME)
    ports: tuple[ServicePort, ...]
    headless: bool

    @property
    def exposed(self) -> bool:
        """Has an external address (CoreDNS: len(svc.ExternalIPs) > 0)."""
        return bool(self.addresses or self.hostnames)


@dataclass(frozen=True, slots=True)
class HeadlessData:
    """A headless Service's ready endpoints, as the kubernetes plugin computed them."""

    endpoints: dict[str, Addresses]  # endpoint label → addresses
    srv_by_port: dict[tuple[str, str], tuple[SrvRecord, ...]]  # (port name, proto) → SRVs
    srv_all: tuple[SrvRecord, ...]  # targets are `<label>.<svc>.<ns>.svc` (relative to the cluster zone)


def _external(svc: Service) -> ExternalService:
    addresses: list[str] = []
    hostnames: list[str] = []
    for entry in (*svc.external_ips, *svc.ingress):
        (addresses if is_ip(entry) else hostnames).append(entry)
    return ExternalService(
        svc.namespace.lower(), svc.name.lower(), tuple(dict.fromkeys(addresses)),
        tuple(dict.fromkeys(h.rstrip(".") for h in hostnames)), svc.ports, svc.headless,
    )  # fmt: skip


class ClusterData:
    """The kubernetes plugin of this server block, seen from k8s_external."""

    def __init__(self, kubernetes: Plugin) -> None:
        if not isinstance(kubernetes, Kubernetes):
            raise TypeError(f"{kubernetes.name} plugin is not the kubernetes plugin")
        self._k = kubernetes

    @property
    def synced(self) -> bool:
        return self._k.index.synced

    @property
    def serial(self) -> int:
        """The SOA serial: the time of the cluster data's last DNS-relevant change."""
        return self._k.index.serial

    def namespace_exposed(self, namespace: str) -> bool:
        """The kubernetes plugin's rule: allowed by `namespaces` (if set) and existing."""
        allowed = self._k.opts.namespaces
        return (not allowed or namespace in allowed) and self._k.index.namespace_exists(namespace)

    def service(self, namespace: str, name: str) -> ExternalService | None:
        svc = self._k.index.services.get((namespace, name))
        return _external(svc) if svc is not None and not svc.is_external_name else None

    def headless(self, namespace: str, name: str) -> HeadlessData | None:
        view = self._k.index.view(namespace, name)
        if view is None or not view.exists or view.cname is not None:
            return None
        endpoints = self._k.index.endpoints_of((namespace, name))
        return HeadlessData(endpoints, view.srv_by_port, view.srv_all)

    def services_with_address(self, ip: bytes) -> Iterator[ExternalService]:
        """Services with this external address, for PTR queries (a scan: they are rare)."""
        for svc in self._k.index.services.values():
            ext = _external(svc)
            if any(packed_ip(a) == ip for a in ext.addresses) and self.namespace_exposed(ext.namespace):
                yield ext

    def own_services(self) -> tuple[list[ExternalService], Addresses]:
        """The Services whose endpoints are this server, and this server's own addresses (CoreDNS
        nsAddrs: the nameserver records use those Services' external addresses when there are any
        such Services, else the server's addresses)."""
        own = self._k.lookup.self_addresses
        found: dict[tuple[str, str], ExternalService] = {}
        for ip in (*own.v4, *own.v6):
            packed = packed_ip(ip)
            for key in self._k.index.services_with_endpoint(packed) if packed is not None else ():
                svc = self._k.index.services.get(key)
                if svc is not None:
                    found[key] = _external(svc)
        return list(found.values()), own

