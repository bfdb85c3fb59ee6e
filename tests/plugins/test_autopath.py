"""autopath: Corefile forms and errors, search paths and the Pod-address map (unit); the walk through
a real kdns process against the test API server (`pods verified`), with clients that are Pods
(their address is the query's source: 127.0.0.1 in `default`, 127.0.0.2 in `other`) and one that is
not (127.0.0.3), and a fake upstream for names outside the cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
from dnslib import QTYPE, RR, A, DNSRecord

from kdns.corefile import CorefileError
from kdns.corefile.parser import parse_corefile
from kdns.k8s.models import Pod
from kdns.k8s.podips import PodAddresses
from kdns.k8s.records import packed_ip
from kdns.plugin import SetupContext
from kdns.plugins import autopath
from kdns.plugins._resolvconf import parse_search
from kdns.plugins.autopath.plugin import AutoPath, _answer_as
from kdns.plugins.autopath.search import FileSearch
from tests.support import objects as o
from tests.support import units
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import answer_texts, rcode, section_rrsets
from tests.support.http import scrape, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.upstream import FakeUpstream

EXTERNAL = "www.example.com."
IN_DEFAULT = f"{EXTERNAL}default.svc.cluster.local."


# --- unit ----------------------------------------------------------------------------------------


def _setup(text: str) -> AutoPath:
    corefile = parse_corefile(text, "Corefile")
    block = corefile.blocks[0]
    (d,) = [x for x in block.directives if x.name == "autopath"]
    plugin = autopath.setup(d, SetupContext(block, corefile, controller=None))  # type: ignore[arg-type]
    assert isinstance(plugin, AutoPath)
    return plugin


def test_resolv_conf_search_list() -> None:
    assert parse_search("nameserver 10.0.0.1\noptions ndots:5\n") == []
    assert parse_search("search A.example b.example. # comment\n") == ["a.example.", "b.example."]
    assert parse_search("search a.example\ndomain corp.example other\n") == ["corp.example."]  # last wins
    assert parse_search("domain corp.example\nsearch x.example ; y\n") == ["x.example."]


def test_resolv_conf_source(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.0.0.1\nsearch Corp.Example lab.example.\noptions ndots:5\n")
    plugin = _setup(f"example.:53 {{\n autopath {conf}\n forward . 10.0.0.1\n}}\n")
    assert plugin.zones == ("example.",)
    assert isinstance(plugin.source, FileSearch)
    assert plugin.source.walkable("host.corp.example.") and not plugin.source.walkable("host.lab.example.")
    assert not plugin.transparent_for("host.corp.example.") and plugin.transparent_for("host.lab.example.")
    plugin = _setup(f".:53 {{\n autopath a.example b.example {conf}\n forward . 10.0.0.1\n}}\n")
    assert plugin.zones == ("a.example.", "b.example.")


@pytest.mark.parametrize(("body", "message"), [
    ("autopath", "wrong argument count"),
    ("autopath /nonexistent/resolv.conf", "failed to parse '/nonexistent/resolv.conf'"),
    ("autopath @kubernetes {\n  x\n }", "autopath takes no block"),
    ("autopath @hosts\n hosts {\n  fallthrough\n }", "hosts does not implement the AutoPather interface"),
])
def test_bad_forms_name_the_line(body: str, message: str) -> None:
    with pytest.raises(CorefileError) as e:
        _setup(f".:53 {{\n {body}\n}}\n")
    assert message in str(e.value) and "Corefile:2" in str(e.value)


def test_missing_plugin_does_nothing_but_says_so(caplog: pytest.LogCaptureFixture) -> None:
    plugin = _setup(".:53 {\n autopath @kubernetes\n forward . 10.0.0.1\n}\n")
    assert plugin.source is None and plugin.transparent_for(IN_DEFAULT)
    assert "no kubernetes plugin in this server block" in caplog.text


def test_pod_addresses_name_one_namespace() -> None:
    pods = PodAddresses()
    a, b = Pod("default", "a", "10.0.0.1", False), Pod("default", "b", "10.0.0.2", False)
    host1 = Pod("kube-system", "proxy", "172.18.0.2", False)
    host2 = Pod("kube-system", "cni", "172.18.0.2", False)
    other = Pod("monitoring", "exporter", "172.18.0.2", False)
    for pod in (a, b, host1, host2):
        pods.add(pod)
    pods.add(Pod("default", "gone", "10.0.0.9", True))  # terminating: not known (as the index)
    ip = packed_ip
    assert pods.namespace_of(ip("10.0.0.1")) == "default" and pods.namespace_of(ip("10.0.0.9")) is None
    assert pods.namespace_of(ip("172.18.0.2")) == "kube-system"  # two hostNetwork Pods, one namespace
    pods.add(other)
    assert pods.namespace_of(ip("172.18.0.2")) is None  # several namespaces behind one address
    pods.remove(host1)
    pods.remove(host2)
    assert pods.namespace_of(ip("172.18.0.2")) == "monitoring"
    pods.remove(a)
    assert pods.namespace_of(ip("10.0.0.1")) is None and len(pods) == 2
    pods.replace([a])
    assert len(pods) == 1 and pods.namespace_of(ip("10.0.0.1")) == "default"


def test_answer_gets_a_cname_and_the_question_as_asked() -> None:
    reply = DNSRecord.question(EXTERNAL, "A").reply()
    reply.add_answer(RR(EXTERNAL, QTYPE.A, ttl=42, rdata=A("192.0.2.80")))
    out = _answer_as(reply, units.request("WWW.example.com.Default.svc.cluster.local."))
    assert str(out.q.qname) == "WWW.example.com.Default.svc.cluster.local."
    assert [(str(rr.rname), QTYPE[rr.rtype], rr.ttl) for rr in out.rr] == [
        ("WWW.example.com.Default.svc.cluster.local.", "CNAME", 42), (EXTERNAL, "A", 42)]
    assert str(out.rr[0].rdata) == EXTERNAL


# --- through a real kdns process -----------------------------------------------------------------

OBJECTS = [
    o.namespace("default"), o.namespace("other"),
    o.service("web", ips=["10.96.0.20"], ports=[o.port("http", 80)]),
    o.service("api", "other", ips=["10.96.0.40"], ports=[o.port("https", 443)]),
    o.pod("client", "127.0.0.1"), o.pod("other-client", "127.0.0.2", "other"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, FakeUpstream]]:
    api = ApiServer().start()
    for obj in OBJECTS:
        api.add(obj)
    upstream = FakeUpstream().start()
    upstream.add(EXTERNAL, "A", "192.0.2.80", ttl=120)
    port, metrics = free_port(), free_port()
    corefile = (f".:{port} {{\n  prometheus 127.0.0.1:{metrics}\n  autopath @kubernetes\n"
                f"  kubernetes cluster.local in-addr.arpa ip6.arpa {{\n    endpoint {api.url}\n"
                f"    pods verified\n  }}\n  forward . {upstream.address}\n}}\n")
    proc = KdnsProcess(corefile, tmp_path_factory.mktemp("autopath"), port).start()
    yield port, metrics, upstream
    proc.stop()
    upstream.shutdown()
    api.stop()


def ask_from(port: int, name: str, source: str, rdtype: str = "A",
             tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=5, source=source)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5, source=source)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_external_name_from_a_pod_is_one_query(server: tuple[int, int, FakeUpstream], tcp: bool) -> None:
    port, _, upstream = server
    before = len(upstream.seen())
    asked = "www.example.com.Default.svc.cluster.local."
    r = ask_from(port, asked, "127.0.0.1", tcp=tcp)
    assert rcode(r) == "NOERROR" and r.question[0].name.to_text() == asked
    assert section_rrsets(r.answer) == [
        (asked, "CNAME", 120, [EXTERNAL]),
        (EXTERNAL, "A", 120, ["192.0.2.80"]),
    ]
    # The cluster suffixes were answered by the kubernetes plugin; only the bare name went upstream.
    assert [q.qname for q in upstream.seen()[before:]] == [EXTERNAL]


def test_the_first_existing_name_wins(server: tuple[int, int, FakeUpstream]) -> None:
    port, _, _ = server
    r = ask_from(port, "web.default.svc.cluster.local", "127.0.0.1")  # exists as asked: no CNAME
    assert section_rrsets(r.answer) == [("web.default.svc.cluster.local.", "A", 5, ["10.96.0.20"])]
    r = ask_from(port, "api.other.default.svc.cluster.local", "127.0.0.1")  # `api.other` from default
    assert section_rrsets(r.answer) == [
        ("api.other.default.svc.cluster.local.", "CNAME", 5, ["api.other.svc.cluster.local."]),
        ("api.other.svc.cluster.local.", "A", 5, ["10.96.0.40"]),
    ]


def test_search_path_follows_the_clients_namespace(server: tuple[int, int, FakeUpstream]) -> None:
    port, _, _ = server
    # A Pod of `other` expanding in `default`'s path is not walked: not its first search element.
    assert rcode(ask_from(port, IN_DEFAULT, "127.0.0.2")) == "NXDOMAIN"
    r = ask_from(port, f"{EXTERNAL}other.svc.cluster.local", "127.0.0.2")
    assert answer_texts(r, "A") == ["192.0.2.80"]


def test_not_a_pod_is_not_walked_and_its_answer_is_not_replayed(
        server: tuple[int, int, FakeUpstream]) -> None:
    port, _, _ = server
    name = "www.example.com.default.svc.cluster.local"
    for _ in range(3):  # asked repeatedly by a client that is no Pod: NXDOMAIN each time
        assert rcode(ask_from(port, name, "127.0.0.3")) == "NXDOMAIN"
    # The Pod asking the same question right after still gets the walk, not those bytes again.
    assert answer_texts(ask_from(port, name, "127.0.0.1"), "A") == ["192.0.2.80"]


def test_nothing_found_returns_the_original_answer(server: tuple[int, int, FakeUpstream]) -> None:
    port, metrics, _ = server
    _, samples = scrape(f"http://127.0.0.1:{metrics}/metrics")
    walked = value(samples, "coredns_autopath_success_total", server=f"dns://:{port}")
    r = ask_from(port, "nosuch.example.com.default.svc.cluster.local", "127.0.0.1")
    assert rcode(r) == "NXDOMAIN" and not r.answer
    assert [rr.name.to_text() for rr in r.authority] == ["cluster.local."]  # the cluster zone's SOA
    ask_from(port, IN_DEFAULT, "127.0.0.1")
    _, samples = scrape(f"http://127.0.0.1:{metrics}/metrics")
    assert value(samples, "coredns_autopath_success_total", server=f"dns://:{port}") == walked + 1


def test_resolv_conf_search_path(kdns: object, tmp_path: Path) -> None:
    with FakeUpstream() as upstream:
        upstream.add("host.b.test.", "A", "192.0.2.2")
        conf = tmp_path / "search.conf"
        conf.write_text("search a.test b.test\n")
        k = kdns(f".:{{port}} {{\n  autopath {conf}\n  forward . {upstream.address}\n}}\n")  # type: ignore[operator]
        r = ask_from(k.port, "host.a.test", "127.0.0.3")
        assert section_rrsets(r.answer) == [("host.a.test.", "CNAME", 300, ["host.b.test."]),
                                            ("host.b.test.", "A", 300, ["192.0.2.2"])]
        assert [q.qname for q in upstream.seen()] == ["host.a.test.", "host.b.test."]
