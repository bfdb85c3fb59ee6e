"""What the kubernetes plugin's index adds to an explanation: the Service, its EndpointSlices and why
each endpoint is in the answer or not. The replies come from the plugin itself, through a real
Dispatcher (kdns.server.trace), as `kdns explain` gets them."""

from __future__ import annotations

from typing import Any

from dnslib import QTYPE, DNSRecord

from kdns.chain import Chain
from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Kind, parse_object
from kdns.plugins.kubernetes.explain import ClusterDetail, describe
from kdns.plugins.kubernetes.options import KubernetesOptions
from kdns.plugins.kubernetes.plugin import Kubernetes
from kdns.server.dispatch import Dispatcher
from kdns.server.trace import trace
from tests.support import objects as o
from tests.support.units import FakeController, StaticSource

ZONES = ("cluster.local.", "in-addr.arpa.")
HTTP = o.port("http", 80)
OBJECTS = [
    o.namespace("default"),
    o.namespace("shop"),
    o.service("web", ips=["10.96.0.20"], ports=[HTTP], selector={"app": "web"}),
    o.endpoint_slice("web-a", "web", ports=[HTTP], endpoints=[
        o.endpoint("10.244.0.1", ready=True, serving=True, terminating=False, pod="web-1"),
        o.endpoint("10.244.0.2", ready=False, serving=True, terminating=True, pod="web-2"),
        o.endpoint("10.244.0.3", ready=False, serving=False, terminating=False, pod="web-3"),
    ]),
    o.headless("db", ports=[HTTP], selector={"app": "db"}, publish_not_ready=True),
    o.endpoint_slice("db-a", "db", ports=[HTTP], endpoints=[
        o.endpoint("10.244.1.1", ready=True, serving=False, hostname="db-0", pod="db-0"),
        o.endpoint("fd00::11", ready=True, hostname="db-1", pod="db-1"),
    ]),
    o.endpoint_slice("db-fqdn", "db", address_type="FQDN", endpoints=[o.endpoint("db.example.org")]),
    o.headless("lonely", ports=[HTTP]),
    o.headless("cart", ns="shop", ports=[HTTP], selector={"app": "cart"}),
    o.endpoint_slice("cart-a", "cart", ns="shop", ports=[HTTP], endpoints=[
        o.endpoint("10.244.2.1", ready=False, hostname="cart-0")]),
    o.pod("web-1", "10.244.0.1"),
]  # fmt: skip


def plugin(**opts: Any) -> Kubernetes:
    index = ClusterIndex()
    for kind in (Kind.NAMESPACE, Kind.SERVICE, Kind.ENDPOINTSLICE, Kind.POD):
        index.replace(kind, [parse_object(kind, obj) for obj in OBJECTS if obj["kind"] == kind.kind_name])
    options = KubernetesOptions(zones=ZONES, **opts)
    return Kubernetes(options, StaticSource(), index, FakeController())


async def explained(name: str, qtype: str = "A", **opts: Any) -> tuple[ClusterDetail, DNSRecord]:
    k = plugin(**opts)
    traced = await trace(Dispatcher("dns://:53", [Chain(["."], [k])]), name, getattr(QTYPE, qtype))
    assert traced.wire is not None and traced.plugin == "kubernetes"
    reply = DNSRecord.parse(traced.wire)
    return describe(k, name.lower(), getattr(QTYPE, qtype), reply), reply


def whys(detail: ClusterDetail) -> dict[str, str]:
    return {ep.addresses[0]: ep.why for sl in detail.endpoint_slices for ep in sl.endpoints}


async def test_clusterip_service_endpoints_are_behind_the_clusterip() -> None:
    detail, _ = await explained("web.default.svc.cluster.local.")
    assert detail.form == "service" and detail.service is not None
    assert (detail.service.type, detail.service.cluster_ips, detail.service.selector) == (
        "ClusterIP", ["10.96.0.20"], True)
    assert detail.service.ports == ["http 80/tcp"]
    assert whys(detail) == {
        "10.244.0.1": "ready: behind the ClusterIP (kube-proxy sends the Service's traffic here)",
        "10.244.0.2": "not ready, terminating: kube-proxy uses it only while no endpoint is ready",
        "10.244.0.3": "not ready: kube-proxy sends it no traffic",
    }
    [sl] = detail.endpoint_slices
    assert [(ep.pod, ep.ready, ep.serving, ep.terminating) for ep in sl.endpoints] == [
        ("web-1", True, True, False), ("web-2", False, True, True), ("web-3", False, False, False)]
    assert "ClusterIP Service: its name answers with the ClusterIP, whatever the endpoints" in detail.notes


async def test_headless_service_publishing_not_ready_addresses() -> None:
    detail, reply = await explained("db.default.svc.cluster.local.")
    assert [str(rr.rdata) for rr in reply.rr] == ["10.244.1.1"]
    assert whys(detail) == {
        "10.244.1.1": "ready (the Pod itself is not; publishNotReadyAddresses): in the answer",
        "fd00::11": "ready: an IPv6 address, in the AAAA answer",
        "db.example.org": "not used: cluster DNS reads IPv4 and IPv6 slices, not FQDN",
    }
    assert "publishNotReadyAddresses: the controller marks every endpoint ready" in detail.notes
    v6, _ = await explained("db.default.svc.cluster.local.", "AAAA")
    assert whys(v6)["10.244.1.1"].endswith("an IPv4 address, in the A answer")
    srv, _ = await explained("_http._tcp.db.default.svc.cluster.local.", "SRV")
    assert srv.form == "port" and whys(srv)["fd00::11"] == "ready: in the answer"  # an SRV target


async def test_endpoint_names() -> None:
    detail, reply = await explained("db-1.db.default.svc.cluster.local.", "AAAA")
    assert [str(rr.rdata) for rr in reply.rr] == ["fd00::11"]
    assert whys(detail)["10.244.1.1"] == (
        "ready (the Pod itself is not; publishNotReadyAddresses); its name is db-0")
    assert whys(detail)["fd00::11"] == "ready: in the answer"
    missing, _ = await explained("cart-0.cart.shop.svc.cluster.local.")
    assert whys(missing) == {"10.244.2.1": "not ready: cluster DNS lists ready endpoints only"}
    assert missing.notes[0] == (
        "a headless Service without ready endpoints has no name in DNS (NXDOMAIN) until one is ready")
    assert missing.notes[1].startswith("no ready endpoint named 'cart-0' (ready: none). An endpoint's")


async def test_missing_things_are_named() -> None:
    nons, _ = await explained("web.nope.svc.cluster.local.")
    assert nons.namespace is not None and not nons.namespace.exists
    assert nons.notes == ["namespace 'nope' does not exist: no name in it exists"]
    elsewhere, _ = await explained("web.shop.svc.cluster.local.")
    assert elsewhere.service is None
    assert elsewhere.notes == ["no Service 'web' in namespace 'shop'; there is one in namespace default"]
    hidden, _ = await explained("web.default.svc.cluster.local.", namespaces=frozenset({"shop"}))
    assert hidden.namespace is not None and hidden.namespace.exists and not hidden.namespace.served
    assert hidden.service is None  # not looked at: the plugin does not serve the namespace
    lonely, _ = await explained("lonely.default.svc.cluster.local.")
    assert any("nothing writes them for a Service without a selector" in n for n in lonely.notes)
    port, _ = await explained("_grpc._tcp.web.default.svc.cluster.local.", "SRV")
    assert "no port named 'grpc' with protocol 'tcp' (named ports: _http._tcp)" in port.notes
    deep, _ = await explained("web.default.svc.cluster.local.default.svc.cluster.local.")
    assert deep.notes[0].startswith("too many labels for a Service name")


async def test_pods_and_reverse_names() -> None:
    off, _ = await explained("10-244-0-1.default.pod.cluster.local.")
    assert off.form == "pod" and off.notes[0].startswith("`pods disabled` (the default)")
    verified, _ = await explained("10-244-0-1.default.pod.cluster.local.", pods="verified")
    assert verified.notes == ["`pods verified`: 10.244.0.1 belongs to Pod web-1"]
    unknown, _ = await explained("10-244-9-9.default.pod.cluster.local.", pods="verified")
    assert unknown.notes == ["`pods verified`: no running Pod in namespace 'default' has address 10.244.9.9"]
    ptr, _ = await explained("20.0.96.10.in-addr.arpa.", "PTR")
    assert ptr.notes == ["the address is the ClusterIP of Service default/web"]
    ep, _ = await explained("1.0.244.10.in-addr.arpa.", "PTR")
    assert ep.notes == ["the address is a ready endpoint of Service default/web"]
