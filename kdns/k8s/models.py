"""Slim, immutable copies of the API objects, holding only what DNS needs.

Parsed straight from the API's JSON (a dict) — never through the `kubernetes` package's model
classes, which cost ~50x more time and memory at 100k endpoints (CoreDNS learned the same, #2095).
Strings that repeat across objects (namespaces, protocols, port names) are interned.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

JSON = Mapping[str, Any]


class Kind(StrEnum):
    """The resources kdns watches; the value is the API resource name."""

    SERVICE = "services"
    ENDPOINTSLICE = "endpointslices"
    NAMESPACE = "namespaces"
    POD = "pods"

    @property
    def api_path(self) -> str:
        """Collection path for list/watch across all namespaces."""
        if self is Kind.ENDPOINTSLICE:
            return "/apis/discovery.k8s.io/v1/endpointslices"
        return f"/api/v1/{self.value}"

    @property
    def kind_name(self) -> str:
        return {
            "services": "Service",
            "endpointslices": "EndpointSlice",
            "namespaces": "Namespace",
            "pods": "Pod",
        }[self.value]


def _s(value: object) -> str:
    """Interned: for strings many objects repeat (namespaces, protocols, port names, hostnames)."""
    return sys.intern(str(value)) if value is not None else ""


def _u(value: object) -> str:
    """Not interned: for strings nearly unique to one object (IPs, pod names), where interning only
    grows the intern table."""
    return str(value) if value is not None else ""


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    protocol: str  # lower-case: "tcp", "udp", "sctp"
    port: int


def _ports(ports: list[JSON] | None) -> tuple[ServicePort, ...]:
    """Service or EndpointSlice ports (the same shape in both; protocol defaults to TCP)."""
    return tuple(
        ServicePort(
            _s(p.get("name") or ""), _s((p.get("protocol") or "TCP").lower()), int(p.get("port") or 0)
        )
        for p in ports or ()
    )


# Service.flags bits: facts DNS answers do not depend on but `kdns explain` reports. One small int
# for both (small ints are shared objects), so they cost a Service one slot.
HAS_SELECTOR = 1  # spec.selector is set: the EndpointSlice controller writes its slices
PUBLISH_NOT_READY = 2  # spec.publishNotReadyAddresses: its endpoints are all marked ready


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str  # ClusterIP | NodePort | LoadBalancer | ExternalName
    cluster_ips: tuple[str, ...]  # empty when headless or ExternalName
    headless: bool
    external_name: str  # "" unless type is ExternalName
    ports: tuple[ServicePort, ...]
    # What the k8s_external plugin serves outside the cluster (CoreDNS's Service.ExternalIPs, kept
    # apart here): spec.externalIPs, and status.loadBalancer.ingress entries (an IP, else a hostname).
    external_ips: tuple[str, ...] = ()
    ingress: tuple[str, ...] = ()
    flags: int = 0  # HAS_SELECTOR | PUBLISH_NOT_READY

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def is_external_name(self) -> bool:
        return self.type == "ExternalName"

    @property
    def has_selector(self) -> bool:
        return bool(self.flags & HAS_SELECTOR)

    @property
    def publish_not_ready(self) -> bool:
        return bool(self.flags & PUBLISH_NOT_READY)

    @classmethod
    def from_json(cls, obj: JSON) -> Service:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
        svc_type = spec.get("type") or "ClusterIP"
        ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
        headless = svc_type != "ExternalName" and (not ips or ips[0] == "None")
        cluster_ips = (
            () if headless or svc_type == "ExternalName" else tuple(_u(ip) for ip in ips if ip != "None")
        )
        ports = _ports(spec.get("ports"))
        return cls(
            namespace=_s(meta.get("namespace") or "default"),
            name=_s(meta.get("name")),
            type=_s(svc_type),
            cluster_ips=cluster_ips,
            headless=headless,
            external_name=str(spec.get("externalName") or "") if svc_type == "ExternalName" else "",
            ports=ports,
            external_ips=tuple(_u(ip) for ip in spec.get("externalIPs") or () if ip),
            ingress=tuple(_u(a) for a in (i.get("ip") or i.get("hostname") for i in ingress) if a),
            # An empty selector selects nothing: the API treats it as none (a selector-less Service).
            flags=(HAS_SELECTOR if spec.get("selector") else 0)
            | (PUBLISH_NOT_READY if spec.get("publishNotReadyAddresses") else 0),
        )


# Endpoint.flags bits: the conditions DNS does not read (it reads `ready` alone), for `kdns explain`.
# Set bits are the exceptions to the API's defaults for an absent condition (serving: true,
# terminating: false), so flags=0 is the common endpoint, and one small int costs one slot.
NOT_SERVING = 1  # conditions.serving is false
TERMINATING = 2  # conditions.terminating is true
NOT_READY = 4  # conditions.ready is false (absent means unknown, which counts as ready)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a slice. At 100k endpoints each slot counts: the conditions share one int,
    and the usual single address is kept as a string, not a one-item tuple (~6 MB less)."""

    address_or_addresses: str | tuple[str, ...]
    hostname: str | None
    target_name: str | None  # targetRef.name when it is a Pod (for endpoint_pod_names)
    flags: int = 0  # NOT_SERVING | TERMINATING | NOT_READY

    @classmethod
    def of(
        cls,
        addresses: tuple[str, ...],
        ready: bool,
        hostname: str | None,
        target_name: str | None,
        flags: int = 0,
    ) -> Endpoint:
        one: str | tuple[str, ...] = addresses[0] if len(addresses) == 1 else addresses
        return cls(one, hostname, target_name, flags | (0 if ready else NOT_READY))

    @property
    def addresses(self) -> tuple[str, ...]:
        value = self.address_or_addresses
        return (value,) if isinstance(value, str) else value

    @property
    def ready(self) -> bool:
        return not self.flags & NOT_READY

    @property
    def serving(self) -> bool:
        return not self.flags & NOT_SERVING

    @property
    def terminating(self) -> bool:
        return bool(self.flags & TERMINATING)


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str  # the kubernetes.io/service-name label; "" when absent
    address_type: str  # IPv4 | IPv6 | FQDN
    endpoints: tuple[Endpoint, ...]
    ports: tuple[ServicePort, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def from_json(cls, obj: JSON) -> EndpointSlice:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        endpoints = []
        for ep in obj.get("endpoints") or ():
            conditions = ep.get("conditions") or {}
            ready = conditions.get("ready")
            ref = ep.get("targetRef") or {}
            endpoints.append(
                Endpoint.of(
                    addresses=tuple(_u(a) for a in ep.get("addresses") or ()),
                    ready=ready is None or bool(ready),
                    hostname=_s(ep["hostname"]) if ep.get("hostname") else None,
                    target_name=_u(ref["name"])
                    if ref.get("kind", "Pod") == "Pod" and ref.get("name")
                    else None,
                    flags=(NOT_SERVING if conditions.get("serving") is False else 0)
                    | (TERMINATING if conditions.get("terminating") else 0),
                )
            )
        ports = _ports(obj.get("ports"))
        return cls(
            namespace=_s(meta.get("namespace") or "default"),
            name=_s(meta.get("name")),
            service_name=_s(labels.get(SERVICE_NAME_LABEL) or ""),
            address_type=_s(obj.get("addressType") or "IPv4"),
            endpoints=tuple(endpoints),
            ports=ports,
        )


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str

    @property
    def key(self) -> tuple[str, str]:
        return ("", self.name)

    @classmethod
    def from_json(cls, obj: JSON) -> Namespace:
        return cls(_s((obj.get("metadata") or {}).get("name")))


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    ip: str  # status.podIP only, as CoreDNS indexes it
    terminating: bool  # deletionTimestamp set: CoreDNS drops such pods

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def from_json(cls, obj: JSON) -> Pod:
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        return cls(
            namespace=_s(meta.get("namespace") or "default"),
            name=_u(meta.get("name")),
            ip=_u(status.get("podIP") or ""),
            terminating=bool(meta.get("deletionTimestamp")),
        )


Model = Service | EndpointSlice | Namespace | Pod

MODEL_FOR_KIND: dict[Kind, type[Service] | type[EndpointSlice] | type[Namespace] | type[Pod]] = {
    Kind.SERVICE: Service,
    Kind.ENDPOINTSLICE: EndpointSlice,
    Kind.NAMESPACE: Namespace,
    Kind.POD: Pod,
}


def parse_object(kind: Kind, obj: JSON) -> Model:
    """API JSON → slim model of that kind."""
    return MODEL_FOR_KIND[kind].from_json(obj)


def object_key(obj: JSON) -> tuple[str, str]:
    """(namespace, name) of raw API JSON; namespace is "" for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    return (_s(meta.get("namespace") or ""), _s(meta.get("name")))
