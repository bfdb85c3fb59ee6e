"""A small cluster used by the kubernetes plugin's tests, as API JSON objects."""

from __future__ import annotations

from tests.support import objects as o

NAMESPACES = [o.namespace("default"), o.namespace("other"), o.namespace("kube-system")]

SERVICES = [
    o.service("web", ips=["10.96.0.20"], ports=[o.port("http", 80, target_port=8080), o.port("", 8443)]),
    o.service("dual", ips=["10.96.0.30", "fd00:10:96::30"], ports=[o.port("http", 80)]),
    o.headless("db", ports=[o.port("mysql", 3306)]),
    o.headless("empty", ports=[o.port("mysql", 3306)]),
    o.headless("noports"),
    o.external("ext", "www.Example.com."),
    o.external("ext-in", "web.default.svc.cluster.local"),
    o.external("ext-ip", "1.2.3.4"),
    o.service(
        "kube-dns",
        "kube-system",
        ips=["10.96.0.10"],
        ports=[o.port("dns", 53, "UDP"), o.port("dns-tcp", 53, "TCP"), o.port("metrics", 9153)],
    ),
    o.service("api", "other", ips=["10.96.0.40"], ports=[o.port("https", 443)]),
]

SLICES = [
    o.endpoint_slice(
        "web-abc",
        "web",
        endpoints=[
            o.endpoint("10.244.1.5", pod="web-5f7"),
            o.endpoint("10.244.1.6"),
            o.endpoint("10.244.1.7", ready=False),
        ],
        ports=[o.port("http", 8080), o.port("", 8443)],
    ),
    o.endpoint_slice(
        "db-v4",
        "db",
        endpoints=[
            o.endpoint("10.244.2.1", hostname="db-0"),
            o.endpoint("10.244.2.2", ready=None),
            o.endpoint("10.244.2.3", ready=False, hostname="db-2"),
        ],
        ports=[o.port("mysql", 3306)],
    ),
    o.endpoint_slice(
        "db-v6",
        "db",
        address_type="IPv6",
        endpoints=[o.endpoint("fd00::1", hostname="db-0")],
        ports=[o.port("mysql", 3306)],
    ),
    o.endpoint_slice(
        "empty-1", "empty", endpoints=[o.endpoint("10.244.3.1", ready=False)], ports=[o.port("mysql", 3306)]
    ),
    o.endpoint_slice("noports-1", "noports", endpoints=[o.endpoint("10.244.4.1")], ports=None),
    o.endpoint_slice(
        "kube-dns-1",
        "kube-dns",
        "kube-system",
        endpoints=[o.endpoint("10.244.0.3")],
        ports=[o.port("dns", 53, "UDP"), o.port("dns-tcp", 53, "TCP"), o.port("metrics", 9153)],
    ),
]

PODS = [o.pod("web-5f7", "10.244.1.5"), o.pod("gone", "10.244.1.9", terminating=True)]
