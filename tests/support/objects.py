"""Builders for Kubernetes API objects as JSON dicts (the wire shape), so tests stay short.

Shared by unit tests (fed through kdns.k8s.models) and by the test API server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

Obj = dict[str, Any]

# The smallest cluster a real process needs, as a `manifests` file: the default namespace and the
# ClusterIP Service web (10.96.0.20).
WEB_MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80}]}
"""


def namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def port(name: str, port: int, protocol: str = "TCP", target_port: int | None = None) -> Obj:
    p: Obj = {"name": name, "port": port, "protocol": protocol}
    if target_port is not None:
        p["targetPort"] = target_port
    return p


def service(
    name: str,
    ns: str = "default",
    *,
    ips: Sequence[str] = ("10.96.0.20",),
    ports: Iterable[Obj] = (),
    type: str = "ClusterIP",
    external_name: str | None = None,
    labels: dict[str, str] | None = None,
    publish_not_ready: bool = False,
    external_ips: Sequence[str] = (),
    ingress: Sequence[str] = (),
    selector: dict[str, str] | None = None,
) -> Obj:
    """A Service; `ips=()` or `ips=("None",)` makes it headless. `external_ips` are spec.externalIPs,
    `ingress` the status.loadBalancer.ingress entries (an IP, or a hostname)."""
    spec: Obj = {"type": type, "ports": list(ports)}
    if selector is not None:
        spec["selector"] = selector
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    if type == "ExternalName":
        spec["externalName"] = external_name
    else:
        ips = tuple(ips) or ("None",)
        spec["clusterIP"] = ips[0]
        spec["clusterIPs"] = list(ips)
        spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4" for ip in ips if ip != "None"] or ["IPv4"]
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": spec,
    }
    if ingress:
        entries = [{"ip": i} if _is_ip(i) else {"hostname": i} for i in ingress]
        obj["status"] = {"loadBalancer": {"ingress": entries}}
    return obj


def headless(name: str, ns: str = "default", ports: Iterable[Obj] = (), **kw: Any) -> Obj:
    return service(name, ns, ips=("None",), ports=ports, **kw)


def external(name: str, target: str, ns: str = "default") -> Obj:
    return service(name, ns, type="ExternalName", external_name=target)


def endpoint(
    *addresses: str,
    ready: bool | None = True,
    hostname: str | None = None,
    pod: str | None = None,
    node: str | None = None,
    serving: bool | None = None,
    terminating: bool | None = None,
) -> Obj:
    """One endpoint; a condition given as None is left out (ready and serving: unknown = true,
    terminating: unknown = false)."""
    conditions = {"ready": ready, "serving": serving, "terminating": terminating}
    known = {k: v for k, v in conditions.items() if v is not None}
    ep: Obj = {"addresses": list(addresses), "conditions": known}
    if hostname:
        ep["hostname"] = hostname
    if pod:
        ep["targetRef"] = {"kind": "Pod", "name": pod, "namespace": "default"}
    if node:
        ep["nodeName"] = node
    return ep


def endpoint_slice(
    name: str,
    service_name: str,
    ns: str = "default",
    *,
    endpoints: Iterable[Obj] = (),
    ports: Iterable[Obj] | None = (),
    address_type: str = "IPv4",
    labels: dict[str, str] | None = None,
) -> Obj:
    meta_labels = {"kubernetes.io/service-name": service_name, **(labels or {})}
    ports_list = None if ports is None else [{k: v for k, v in p.items() if k != "targetPort"} for p in ports]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": meta_labels},
        "addressType": address_type,
        "endpoints": list(endpoints),
        "ports": ports_list,
    }


def pod(
    name: str,
    ip: str,
    ns: str = "default",
    *,
    phase: str = "Running",
    terminating: bool = False,
    labels: dict[str, str] | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "labels": labels or {}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
