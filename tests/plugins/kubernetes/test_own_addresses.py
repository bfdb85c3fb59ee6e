"""The apex NS names the Service that has this server as an endpoint (docs/dns-contract.md §15), found
from the server's interface addresses even when its hostname resolves to nothing.

kdns runs in a network namespace the test makes, with one interface holding the Pod's addresses and
an unresolvable hostname (its own UTS namespace), as a Pod whose hostname is not in DNS or a
hostNetwork server whose hostname names something else. The cluster comes from manifest files, so
nothing needs to reach the test's own network.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.rehearsal.netns import NetNs
from tests.support import objects as o
from tests.support.dnsclient import answer_texts, ask, rcode, section_rrsets
from tests.support.process import KdnsProcess

PORT = 53  # the namespace is the test's own: CoreDNS's port is free there
POD_V4, POD_V6 = "10.244.7.9", "fd00:10:244:7::9"
DNS_IPS = ("10.96.0.10", "fd00:10:96::a")
UNRESOLVABLE = "kdns-test-host.invalid"  # RFC 6761 §6.4: never resolves
COREFILE = """\
.:%(port)d {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests %(manifests)s
    }
}
"""


def _cluster(path: Path) -> Path:
    """kube-dns (dual-stack) whose endpoint is this server's Pod, and another Service beside it."""
    dns_ports = [o.port("dns", 53, "UDP"), o.port("dns-tcp", 53)]
    items = [
        o.namespace("kube-system"),
        o.service("kube-dns", "kube-system", ips=DNS_IPS, ports=dns_ports),
        o.endpoint_slice(
            "kube-dns-v4", "kube-dns", "kube-system", endpoints=[o.endpoint(POD_V4)], ports=dns_ports
        ),
        o.endpoint_slice(
            "kube-dns-v6",
            "kube-dns",
            "kube-system",
            endpoints=[o.endpoint(POD_V6)],
            ports=dns_ports,
            address_type="IPv6",
        ),
        o.service("web", "default", ips=("10.96.0.20",), ports=[o.port("http", 80)]),
        o.endpoint_slice("web-1", "web", "default", endpoints=[o.endpoint("10.244.7.20")]),
    ]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def _pod_network(ns: NetNs) -> None:
    """eth0 with the Pod's two addresses; no automatic link-local, so the address list is exact."""
    ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    for link in ("eth0", "peer0"):
        ns.ip("link", "set", link, "addrgenmode", "none")
        ns.ip("link", "set", link, "up")
    ns.ip("addr", "add", f"{POD_V4}/24", "dev", "eth0")
    ns.ip("addr", "add", f"{POD_V6}/64", "dev", "eth0", "nodad")


def _wait_listening(ns: NetNs, proc: KdnsProcess, timeout: float = 15.0) -> None:
    def connect() -> None:
        with socket.create_connection(("127.0.0.1", PORT), timeout=0.2):
            pass

    deadline = time.monotonic() + timeout
    while True:
        if proc.proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"kdns exited with {proc.proc.returncode}:\n{proc.logs()}")
        try:
            ns.call(connect)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"kdns did not listen within {timeout}s:\n{proc.logs()}") from None
            time.sleep(0.05)


def test_apex_ns_is_the_service_selecting_this_server(netns: NetNs, tmp_path: Path) -> None:
    _pod_network(netns)
    corefile = COREFILE % {"port": PORT, "manifests": _cluster(tmp_path / "cluster.json")}
    # `ip netns exec` then a UTS namespace whose hostname resolves nowhere; each step execs, so the
    # process KdnsProcess signals is kdns itself.
    inside = ("ip", "netns", "exec", netns.name, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"')
    proc = KdnsProcess(corefile, tmp_path, PORT, wait_tcp=False, prefix=(*inside, UNRESOLVABLE))
    with proc:
        _wait_listening(netns, proc)

        ns = netns.call(ask, PORT, "cluster.local.", "NS")
        assert rcode(ns) == "NOERROR"
        assert answer_texts(ns, "NS") == ["kube-dns.kube-system.svc.cluster.local."]
        glue = section_rrsets(ns.additional)
        assert [(owner, rdtype, rdata) for owner, rdtype, _, rdata in glue] == [
            ("kube-dns.kube-system.svc.cluster.local.", "A", ["10.96.0.10"]),
            ("kube-dns.kube-system.svc.cluster.local.", "AAAA", ["fd00:10:96::a"]),
        ]

        assert answer_texts(netns.call(ask, PORT, "ns.dns.cluster.local.", "A")) == [POD_V4]
        assert answer_texts(netns.call(ask, PORT, "ns.dns.cluster.local.", "AAAA")) == [POD_V6]
