"""The kubernetes plugin's answers, computed from an index fed with a known cluster (no sockets).

Section numbers (§) are those of docs/dns-contract.md."""

from __future__ import annotations

import asyncio
import ipaddress

import dns.message
import dns.rcode
import pytest

from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Kind, parse_object
from kdns.plugins.kubernetes.lookup import Status
from kdns.plugins.kubernetes.options import KubernetesOptions
from kdns.plugins.kubernetes.plugin import Kubernetes
from kdns.request import Reply, Request
from tests.plugins.kubernetes import cluster
from tests.support import units
from tests.support.units import FakeController, StaticSource


async def _no_next(request: Request) -> Reply:
    raise AssertionError("the kubernetes plugin passed a name of its zones on")


ZONES = ("cluster.local.", "in-addr.arpa.", "ip6.arpa.")


def rev(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def make_index() -> ClusterIndex:
    index = ClusterIndex()
    for kind, objs in (
        (Kind.NAMESPACE, cluster.NAMESPACES),
        (Kind.SERVICE, cluster.SERVICES),
        (Kind.ENDPOINTSLICE, cluster.SLICES),
        (Kind.POD, cluster.PODS),
    ):
        index.replace(kind, [parse_object(kind, obj) for obj in objs])
    return index


def lookup(name: str, qtype: str, **opts: object) -> tuple[Status, list[str]]:
    """The status and answer data the real plugin writes (wire form, read back with dnspython)."""
    options = KubernetesOptions(zones=ZONES, ttl=30, **opts)  # type: ignore[arg-type]
    plugin = Kubernetes(options, StaticSource(), make_index(), FakeController())
    request = units.request(name, qtype, edns=None)
    reply = asyncio.run(plugin.serve(request, _no_next))
    msg = dns.message.from_wire(reply.wire if reply.wire is not None else bytes(reply.message.pack()))
    data = sorted(rd.to_text() for rrset in msg.answer for rd in rrset)
    if msg.rcode() == dns.rcode.NXDOMAIN:
        return NX, data
    return (ANSWER if msg.answer else NODATA), data


ANSWER, NODATA, NX = Status.ANSWER, Status.NODATA, Status.NXDOMAIN


@pytest.mark.parametrize(
    ("name", "qtype", "status", "data"),
    [
        # ClusterIP (§3): A from clusterIPs, the other family NODATA, other types NODATA
        ("web.default.svc.cluster.local.", "A", ANSWER, ["10.96.0.20"]),
        ("Web.Default.SVC.cluster.local.", "A", ANSWER, ["10.96.0.20"]),
        ("web.default.svc.cluster.local.", "AAAA", NODATA, []),
        ("web.default.svc.cluster.local.", "TXT", NODATA, []),
        ("web.default.svc.cluster.local.", "MX", NODATA, []),
        ("dual.default.svc.cluster.local.", "A", ANSWER, ["10.96.0.30"]),
        ("dual.default.svc.cluster.local.", "AAAA", ANSWER, ["fd00:10:96::30"]),
        # SRV (§3): Service port, target the service; unnamed ports have none; unknown → NXDOMAIN
        (
            "_http._tcp.web.default.svc.cluster.local.",
            "SRV",
            ANSWER,
            ["0 100 80 web.default.svc.cluster.local."],
        ),
        (
            "_HTTP._TCP.web.default.svc.cluster.local.",
            "SRV",
            ANSWER,
            ["0 100 80 web.default.svc.cluster.local."],
        ),
        ("_http._udp.web.default.svc.cluster.local.", "SRV", NX, []),
        ("_nope._tcp.web.default.svc.cluster.local.", "SRV", NX, []),
        ("_http._tcp.web.default.svc.cluster.local.", "A", NODATA, []),
        ("_tcp.web.default.svc.cluster.local.", "SRV", NODATA, []),  # empty non-terminal (RFC 8020)
        (
            "_http._tcp.dual.default.svc.cluster.local.",
            "SRV",
            ANSWER,
            ["0 50 80 dual.default.svc.cluster.local."],
        ),
        # bare-name SRV lists all ports; kube-dns's 53/udp + 53/tcp collapse (§14: weight 33 each)
        (
            "kube-dns.kube-system.svc.cluster.local.",
            "SRV",
            ANSWER,
            [
                "0 33 53 kube-dns.kube-system.svc.cluster.local.",
                "0 33 9153 kube-dns.kube-system.svc.cluster.local.",
            ],
        ),
        # endpoints of a ClusterIP service are named too (CoreDNS extension, §13)
        ("10-244-1-6.web.default.svc.cluster.local.", "A", ANSWER, ["10.244.1.6"]),
        ("10-244-1-7.web.default.svc.cluster.local.", "A", NX, []),  # not ready
        # headless (§4): ready endpoints only; absent condition = ready; per-family
        ("db.default.svc.cluster.local.", "A", ANSWER, ["10.244.2.1", "10.244.2.2"]),
        ("db.default.svc.cluster.local.", "AAAA", ANSWER, ["fd00::1"]),
        ("db-0.db.default.svc.cluster.local.", "A", ANSWER, ["10.244.2.1"]),
        ("db-0.db.default.svc.cluster.local.", "AAAA", ANSWER, ["fd00::1"]),
        ("10-244-2-2.db.default.svc.cluster.local.", "A", ANSWER, ["10.244.2.2"]),
        ("10-244-2-2.db.default.svc.cluster.local.", "AAAA", NODATA, []),
        ("10-244-2-1.db.default.svc.cluster.local.", "A", NX, []),  # has a hostname: not by dashed IP
        ("db-2.db.default.svc.cluster.local.", "A", NX, []),  # not ready
        # headless SRV: target = endpoint name, port = slice port; dual-stack db-0 collapses (weight 33)
        (
            "_mysql._tcp.db.default.svc.cluster.local.",
            "SRV",
            ANSWER,
            [
                "0 33 3306 10-244-2-2.db.default.svc.cluster.local.",
                "0 33 3306 db-0.db.default.svc.cluster.local.",
            ],
        ),
        ("empty.default.svc.cluster.local.", "A", NX, []),  # no ready endpoint: NXDOMAIN for every type
        ("empty.default.svc.cluster.local.", "AAAA", NX, []),
        ("noports.default.svc.cluster.local.", "A", ANSWER, ["10.244.4.1"]),
        ("noports.default.svc.cluster.local.", "SRV", NODATA, []),
        # ExternalName (§5)
        ("ext.default.svc.cluster.local.", "CNAME", ANSWER, ["www.Example.com."]),
        ("ext.default.svc.cluster.local.", "A", ANSWER, ["www.Example.com."]),
        ("ext-ip.default.svc.cluster.local.", "A", NX, []),
        ("x.ext.default.svc.cluster.local.", "A", NX, []),
        ("_http._tcp.ext.default.svc.cluster.local.", "SRV", NX, []),
        # zone structure (§6)
        ("cluster.local.", "A", NODATA, []),
        ("cluster.local.", "TXT", NODATA, []),
        ("svc.cluster.local.", "A", NODATA, []),
        ("default.svc.cluster.local.", "A", NODATA, []),
        ("default.svc.cluster.local.", "TXT", NODATA, []),
        ("nope.svc.cluster.local.", "A", NX, []),
        ("nope.default.svc.cluster.local.", "A", NX, []),
        ("api.default.svc.cluster.local.", "A", NX, []),  # lives in "other"
        ("web.default.svc.default.svc.cluster.local.", "A", NX, []),  # search-path miss
        ("a.b.c.web.default.svc.cluster.local.", "A", NX, []),
        ("www.example.com.cluster.local.", "A", NX, []),
        ("dns-version.cluster.local.", "TXT", ANSWER, ['"1.1.0"']),
        ("dns-version.cluster.local.", "A", NODATA, []),
        ("*.default.svc.cluster.local.", "A", NX, []),  # wildcards were removed (CoreDNS 1.9)
        ("pod.cluster.local.", "A", NODATA, []),
        # reverse (§3, §4)
        ("20.0.96.10.in-addr.arpa.", "PTR", ANSWER, ["web.default.svc.cluster.local."]),
        ("20.0.96.10.in-addr.arpa.", "A", NODATA, []),
        ("1.2.244.10.in-addr.arpa.", "PTR", ANSWER, ["db-0.db.default.svc.cluster.local."]),
        ("2.2.244.10.in-addr.arpa.", "PTR", ANSWER, ["10-244-2-2.db.default.svc.cluster.local."]),
        ("5.1.244.10.in-addr.arpa.", "PTR", ANSWER, ["10-244-1-5.web.default.svc.cluster.local."]),
        ("3.2.244.10.in-addr.arpa.", "PTR", NX, []),  # not ready
        ("9.9.9.9.in-addr.arpa.", "PTR", NX, []),
        # names between the reverse zone's apex and a PTR exist (empty non-terminals, RFC 8020)
        ("0.96.10.in-addr.arpa.", "PTR", NODATA, []),
        ("96.10.in-addr.arpa.", "A", NODATA, []),
        ("10.in-addr.arpa.", "PTR", NODATA, []),
        ("1.96.10.in-addr.arpa.", "PTR", NX, []),
        ("11.in-addr.arpa.", "PTR", NX, []),
        ("256.in-addr.arpa.", "PTR", NX, []),
        ("d.f.ip6.arpa.", "PTR", NODATA, []),  # fd00::1
        ("f.ip6.arpa.", "PTR", NODATA, []),
        ("e.f.ip6.arpa.", "PTR", NX, []),
        (rev("fd00::1"), "PTR", ANSWER, ["db-0.db.default.svc.cluster.local."]),
        (rev("FD00:10:96:0::30"), "PTR", ANSWER, ["dual.default.svc.cluster.local."]),
        (rev("fd00::1").upper(), "PTR", ANSWER, ["db-0.db.default.svc.cluster.local."]),
        (rev("fd00::2"), "PTR", NX, []),
    ],
)
def test_lookup(name: str, qtype: str, status: Status, data: list[str]) -> None:
    assert lookup(name, qtype) == (status, data)


def test_pods_disabled_by_default() -> None:
    assert lookup("10-244-1-5.default.pod.cluster.local.", "A")[0] is NX
    assert lookup("default.pod.cluster.local.", "A")[0] is NX


def test_pods_insecure_answers_the_label() -> None:
    assert lookup("10-244-9-9.default.pod.cluster.local.", "A", pods="insecure") == (ANSWER, ["10.244.9.9"])
    assert lookup("10-244-9-9.default.pod.cluster.local.", "AAAA", pods="insecure") == (NODATA, [])
    assert lookup("fd00-10-244-1--41.default.pod.cluster.local.", "AAAA", pods="insecure") == (
        ANSWER,
        ["fd00:10:244:1::41"],
    )
    assert lookup("10-244-9-9.nope.pod.cluster.local.", "A", pods="insecure")[0] is NX
    assert lookup("not-an-ip.default.pod.cluster.local.", "A", pods="insecure")[0] is NX
    assert lookup("default.pod.cluster.local.", "A", pods="insecure")[0] is NODATA


def test_pods_verified_needs_a_live_pod_in_that_namespace() -> None:
    assert lookup("10-244-1-5.default.pod.cluster.local.", "A", pods="verified") == (ANSWER, ["10.244.1.5"])
    assert lookup("10-244-1-5.other.pod.cluster.local.", "A", pods="verified")[0] is NX
    assert lookup("10-244-1-9.default.pod.cluster.local.", "A", pods="verified")[0] is NX  # terminating
    assert lookup("10-244-9-9.default.pod.cluster.local.", "A", pods="verified")[0] is NX


def test_namespaces_option_hides_other_namespaces_everywhere() -> None:
    only_default = {"namespaces": frozenset({"default"})}
    assert lookup("web.default.svc.cluster.local.", "A", **only_default)[0] is ANSWER
    assert lookup("kube-dns.kube-system.svc.cluster.local.", "A", **only_default)[0] is NX
    assert lookup("kube-system.svc.cluster.local.", "A", **only_default)[0] is NX
    assert lookup("10.0.96.10.in-addr.arpa.", "PTR", **only_default)[0] is NX


def test_existence_is_the_same_for_every_qtype() -> None:
    """RFC 8020 / docs/dns-contract.md §18: no name is NXDOMAIN for one type and data for another."""
    names = [
        "cluster.local.",
        "svc.cluster.local.",
        "default.svc.cluster.local.",
        "dns-version.cluster.local.",
        "web.default.svc.cluster.local.",
        "db-0.db.default.svc.cluster.local.",
        "nope.svc.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local.",
        "empty.default.svc.cluster.local.",
    ]
    for name in names:
        kinds = {lookup(name, t)[0] is NX for t in ("A", "AAAA", "TXT", "SRV", "MX", "CNAME", "HTTPS", "PTR")}
        assert len(kinds) == 1, name
