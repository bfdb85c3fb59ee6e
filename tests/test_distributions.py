"""The Corefiles real clusters ship (tests/support/distributions.py) run on kdns as written, against
the test API server through in-cluster configuration over TLS. What each test changes, and only
that: the DNS port and the health/ready/metrics addresses move to free loopback ports, `/etc/resolv.conf`
upstreams become a fake upstream on loopback, the distribution's own files (/etc/coredns/…) live in
a test directory, and template placeholders get the values the installer would fill in.

NodeLocal DNSCache's runs unmodified but for its placeholders, on its real addresses (169.254.20.10
and the kube-dns ClusterIP 10.96.0.10, port 53) in a network namespace the test creates (on its
loopback rather than node-cache's dummy interface), with a second kdns as the cluster DNS behind it
(kube-dns-upstream, 10.96.0.11) and the node's resolver on 192.0.2.53.

OpenShift's runs with its forward-over-TLS blocks pointed at one loopback TLS upstream.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import pytest
import trustme

from tests.plugins.kubernetes import cluster
from tests.rehearsal.netns import NetNs, can_create
from tests.support import distributions as dist
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import answer_texts, ask, rcode
from tests.support.http import get, scrape, until, value
from tests.support.ports import free_port
from tests.support.process import ROOT, KdnsProcess
from tests.support.upstream import FakeUpstream

TOKEN = "distribution-token"
CL = "svc.cluster.local."
LB = o.service("lb-web", ips=["10.96.0.50"], type="LoadBalancer", ports=[o.port("http", 80)],
               ingress=["198.51.100.7"])  # fmt: skip


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    server = ApiServer(tls=True, tokens=[TOKEN]).start()
    for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES, *cluster.PODS, LB]:
        server.add(obj)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        up.add("www.example.com.", "A", "192.0.2.80")
        up.add("www.contoso.com.", "A", "192.0.2.81")
        yield up


Ports = dict[str, int]
Run = Callable[..., tuple[KdnsProcess, Ports]]


@pytest.fixture
def run(api: ApiServer, upstream: FakeUpstream, tmp_path: Path) -> Iterator[Run]:
    """run(distribution, extra substitutions, files={relative path: text}) → the running kdns; in
    the files, `{port}` is the DNS port and `{upstream}` the fake upstream's address."""
    started: list[KdnsProcess] = []

    def start(d: dist.Distribution, extra: tuple[tuple[str, str], ...] = (),
              files: dict[str, str] | None = None) -> tuple[KdnsProcess, Ports]:  # fmt: skip
        ports = {"dns": free_port(), "health": free_port(), "ready": free_port(), "metrics": free_port()}
        subs = [*extra, (".:53 {", f".:{ports['dns']} {{"),
                ("prometheus :9153", f"prometheus 127.0.0.1:{ports['metrics']}"),
                ("forward . /etc/resolv.conf", f"forward . {upstream.address}")]  # fmt: skip
        text = d.corefile
        for old, new in (("    health {\n", f"    health 127.0.0.1:{ports['health']} {{\n"),
                         ("    health\n", f"    health 127.0.0.1:{ports['health']}\n"),
                         ("    ready\n", f"    ready 127.0.0.1:{ports['ready']}\n")):  # fmt: skip
            if old in text:
                subs.append((old, new))
        text = dist.localize(text, subs)
        for rel, content in (files or {}).items():
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            content = content.replace("{port}", str(ports["dns"])).replace("{upstream}", upstream.address)
            path.write_text(content)
        env = api.in_cluster_env(tmp_path / "serviceaccount", TOKEN)
        proc = KdnsProcess(text, tmp_path, ports["dns"], env=env).start()
        started.append(proc)
        return proc, ports

    yield start
    for proc in started:
        proc.stop()


def _common(proc: KdnsProcess, ports: Ports, health: bool = True) -> None:
    """Cluster names, forwarding, probes, metrics, and nothing ignored or crashed."""
    p = ports["dns"]
    for tcp in (False, True):
        assert answer_texts(ask(p, "web.default." + CL, tcp=tcp)) == ["10.96.0.20"]
        assert answer_texts(ask(p, "www.example.com", tcp=tcp)) == ["192.0.2.80"]
    assert answer_texts(ask(p, "20.0.96.10.in-addr.arpa", "PTR")) == ["web.default.svc.cluster.local."]
    assert rcode(ask(p, "nope.default." + CL)) == "NXDOMAIN"
    if health:
        assert get(f"http://127.0.0.1:{ports['health']}/health") == (200, "OK")
    assert until(lambda: get(f"http://127.0.0.1:{ports['ready']}/ready") == (200, "OK"), "ready")
    _, samples = scrape(f"http://127.0.0.1:{ports['metrics']}/metrics")
    assert value(samples, "coredns_dns_requests_total", server=f"dns://:{p}", zone=".", view="",
                 proto="udp", family="1", type="A") > 0  # fmt: skip
    logs = proc.logs()
    assert "Traceback" not in logs and "not supported by kdns" not in logs, logs


def test_k3s(run: Run, tmp_path: Path) -> None:
    """NodeHosts through `hosts`, and the coredns-custom imports: an .override adds `log` to the
    main block, a .server adds a server block."""
    etc = tmp_path / "etc-coredns"
    subs = (("%{CLUSTER_DOMAIN}%", "cluster.local"), ("/etc/coredns/", f"{etc}/"))
    proc, ports = run(dist.K3S, subs, files={
        "etc-coredns/NodeHosts": "172.18.0.2 k3s-server\n172.18.0.3 k3s-agent-1\n",
        "etc-coredns/custom/log.override": "log\n",
        "etc-coredns/custom/example.server":
            "example.test:{port} {\n  hosts {\n    192.0.2.99 special.example.test\n  }\n}\n",
    })  # fmt: skip
    _common(proc, ports)
    p = ports["dns"]
    assert answer_texts(ask(p, "k3s-agent-1")) == ["172.18.0.3"]
    assert answer_texts(ask(p, "special.example.test")) == ["192.0.2.99"]
    until(lambda: '"A IN k3s-agent-1. udp' in proc.logs(), "the query log of the imported override")


def test_minikube(run: Run) -> None:
    proc, ports = run(dist.MINIKUBE)
    _common(proc, ports)
    assert answer_texts(ask(ports["dns"], "host.minikube.internal")) == ["192.168.49.1"]
    until(lambda: '"A IN host.minikube.internal. udp' in proc.logs(), "minikube's query log")


def test_eks(run: Run) -> None:
    proc, ports = run(dist.EKS)
    _common(proc, ports)


def test_aks_with_coredns_custom(run: Run) -> None:
    """AKS's documented coredns-custom use: a zone forwarded elsewhere (.server), logging (.override)."""
    proc, ports = run(dist.AKS, files={
        "custom/log.override": "log\n",
        "custom/contoso.server": "contoso.com:{port} {\n  errors\n  cache 30\n  forward . {upstream}\n}\n",
    })  # fmt: skip
    _common(proc, ports)
    assert answer_texts(ask(ports["dns"], "www.contoso.com")) == ["192.0.2.81"]
    until(lambda: '"A IN www.example.com. udp' in proc.logs(), "the override's query log")


def test_kubespray_with_k8s_external(run: Run) -> None:
    proc, ports = run(dist.KUBESPRAY)
    _common(proc, ports)
    p = ports["dns"]
    assert answer_texts(ask(p, "lb-web.default.k8s_external.local")) == ["198.51.100.7"]
    assert rcode(ask(p, "web.default.k8s_external.local")) == "NXDOMAIN"  # no external address


def test_openshift(api: ApiServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    """OpenShift's cluster-dns-operator Corefile: per-zone forwarding over TLS with a server name and
    a CA bundle, bufsize 512 everywhere, the cluster block, and hostname.bind answered by chaos. Its
    fixed port 5353 and addresses move to loopback; the TLS upstreams become one test upstream
    whose certificate names both servers."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("dns.foo.com", "dns.bar.com", "127.0.0.1").configure_cert(context)
    with FakeUpstream(tls=context) as tls_up:
        tls_up.add("www.foo.com.", "A", "192.0.2.91")
        tls_up.add("www.bar.com.", "A", "192.0.2.92")
        port, health, ready, metrics = free_port(), free_port(), free_port(), free_port()
        text = dist.localize(dist.OPENSHIFT.corefile, [
            ("tls://1.1.1.1 tls://2.2.2.2:5353", f"tls://{tls_up.tls_address}"),
            (":5353 {", f":{port} {{"),
            ("prometheus 127.0.0.1:9153", f"prometheus 127.0.0.1:{metrics}"),
            ("        tls\n", f"        tls {ca_file}\n"),
            ("tls /etc/pki/dns.bar.com-ca-cacerts-2/ca-bundle.crt", f"tls {ca_file}"),
            ("forward . /etc/resolv.conf", f"forward . {upstream.address}"),
            ("    health {\n", f"    health 127.0.0.1:{health} {{\n"),
            ("    ready\n", f"    ready 127.0.0.1:{ready}\n"),
        ])  # fmt: skip
        env = api.in_cluster_env(tmp_path / "serviceaccount", TOKEN)
        with KdnsProcess(text, tmp_path, port, env=env) as proc:
            ports = {"dns": port, "health": health, "ready": ready, "metrics": metrics}
            _common(proc, ports)
            for tcp in (False, True):
                assert answer_texts(ask(port, "www.foo.com", tcp=tcp)) == ["192.0.2.91"]
                assert answer_texts(ask(port, "www.bar.com", tcp=tcp)) == ["192.0.2.92"]
                chaos = ask(port, "hostname.bind", "TXT", rdclass="CH", tcp=tcp)
                assert rcode(chaos) == "NOERROR" and len(chaos.answer) == 1
            assert {q.proto for q in tls_up.seen()} == {"tls"}


# --- NodeLocal DNSCache in a network namespace ----------------------------------------------------

LOCAL_DNS, DNS_SERVER, CLUSTER_DNS, NODE_RESOLVER = "169.254.20.10", "10.96.0.10", "10.96.0.11", "192.0.2.53"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NetNs]:
    reason = can_create()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the NodeLocal DNSCache test, but {reason}")
        pytest.skip(reason)
    ns = NetNs(f"kdns-nodelocal-{os.getpid()}").create()
    try:
        # node-cache puts the link-local address and the kube-dns ClusterIP on a dummy interface; the
        # namespace's loopback holds them here (dummy links need a kernel module containers may lack),
        # with the cluster DNS's and the node resolver's addresses.
        for addr in (LOCAL_DNS, DNS_SERVER, CLUSTER_DNS, NODE_RESOLVER):
            ns.ip("addr", "add", f"{addr}/32", "dev", "lo")
        yield ns
    finally:
        ns.delete()


def _in_netns(ns: NetNs, corefile: str, workdir: Path, name: str) -> subprocess.Popen[bytes]:
    path = workdir / f"{name}.Corefile"
    path.write_text(corefile)
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process by the OS
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    argv = ["ip", "netns", "exec", ns.name, sys.executable, "-m", "kdns", "-conf", str(path)]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)


def test_nodelocaldns(node: NetNs, tmp_path: Path) -> None:
    manifests = tmp_path / "cluster.json"
    manifests.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        *cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES]}))  # fmt: skip
    resolv = tmp_path / "resolv.conf"  # node-cache's __PILLAR__UPSTREAM__SERVERS__: the node's resolver
    resolv.write_text(f"nameserver {NODE_RESOLVER}\n")
    cluster_dns = (f".:53 {{\n  bind {CLUSTER_DNS}\n  prometheus 127.0.0.1:9153\n  kubernetes cluster.local "
                   f"in-addr.arpa ip6.arpa {{\n    manifests {manifests}\n  }}\n}}\n")  # fmt: skip
    nodelocal = dist.localize(dist.NODELOCALDNS.corefile, [
        ("__PILLAR__DNS__DOMAIN__", "cluster.local"), ("__PILLAR__LOCAL__DNS__", LOCAL_DNS),
        ("__PILLAR__DNS__SERVER__", DNS_SERVER), ("__PILLAR__CLUSTER__DNS__", CLUSTER_DNS),
        ("__PILLAR__UPSTREAM__SERVERS__", str(resolv))])  # fmt: skip
    resolver = node.call(lambda: FakeUpstream(host=NODE_RESOLVER, port=53).start())
    resolver.add("www.example.com.", "A", "192.0.2.80")
    procs = [_in_netns(node, cluster_dns, tmp_path, "cluster-dns"),
             _in_netns(node, nodelocal, tmp_path, "nodelocal")]  # fmt: skip
    try:
        def q(host: str, name: str, rdtype: str = "A", tcp: bool = False) -> list[str]:
            return node.call(lambda: answer_texts(ask(53, name, rdtype, host=host, tcp=tcp, timeout=2)))

        def answering() -> bool:
            try:
                return q(LOCAL_DNS, "web.default." + CL) == ["10.96.0.20"]
            except dns.exception.Timeout:
                return False

        until(answering, "NodeLocal DNSCache answering")
        for host in (LOCAL_DNS, DNS_SERVER):  # both bound addresses, UDP and TCP
            for tcp in (False, True):
                assert q(host, "web.default." + CL, tcp=tcp) == ["10.96.0.20"]
                assert q(host, "www.example.com", tcp=tcp) == ["192.0.2.80"]
            assert q(host, "20.0.96.10.in-addr.arpa", "PTR") == ["web.default.svc.cluster.local."]
        assert node.call(lambda: get(f"http://{LOCAL_DNS}:8080/health")) == (200, "OK")
        _, samples = node.call(lambda: scrape("http://127.0.0.1:9253/metrics"))
        assert value(samples, "coredns_cache_entries", server=f"dns://{LOCAL_DNS}:53", type="success",
                     zones="cluster.local.", view="") >= 1  # fmt: skip
        # `force_tcp`: the cluster DNS saw the node cache's queries over TCP only.
        _, upstream_side = node.call(lambda: scrape("http://127.0.0.1:9153/metrics"))
        by_proto = {proto: sum(v for (n, labels), v in upstream_side.items()
                               if n == "coredns_dns_requests_total" and ("proto", proto) in labels)
                    for proto in ("udp", "tcp")}  # fmt: skip
        assert by_proto["tcp"] >= 2 and by_proto["udp"] == 0, by_proto
        logs = (tmp_path / "nodelocal.log").read_text()
        assert "Traceback" not in logs and "not supported by kdns" not in logs, logs
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)
        node.call(resolver.shutdown)
