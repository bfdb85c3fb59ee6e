"""k8s_external: Corefile options (unit), the Service model's external fields (unit), and answers
through a real kdns process whose kubernetes plugin lists and watches the test API server: external
IPs and load-balancer IPs, hostname ingress as a CNAME chased upstream, SRV, the apex, PTR with
fall-through to the cluster's reverse zone, `headless`, `fallthrough`, live status changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from kdns.corefile import CorefileError
from kdns.corefile.model import Directive
from kdns.k8s.models import Service
from kdns.plugins.k8s_external.config import ExternalConfig, parse
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import answer_texts, ask, has_flag, rcode, section_rrsets
from tests.support.http import until
from tests.support.ports import free_port
from tests.support.process import KdnsProcess, run_kdns
from tests.support.upstream import FakeUpstream

Kdns = Callable[..., KdnsProcess]
ZONE = "example.org."


def d(*args: str, children: tuple[Directive, ...] = ()) -> Directive:
    return Directive("k8s_external", tuple(args), children, "Corefile", 5, bool(children))


def opt(name: str, *args: str) -> Directive:
    return Directive(name, tuple(args), (), "Corefile", 6)


# --- unit ----------------------------------------------------------------------------------------


def test_defaults_and_options() -> None:
    assert parse(d(), (".",)) == ExternalConfig((".",), "dns", 5, False, None)
    assert parse(d("Example.ORG", "10.0.0.0/24"), (".",)).zones == ("example.org.", "0.0.10.in-addr.arpa.")
    cfg = parse(d("example.org", children=(opt("apex", "ns"), opt("ttl", "30"), opt("headless"),
                                           opt("fallthrough", "example.org"))), (".",))
    assert cfg == ExternalConfig(("example.org.",), "ns", 30, True, ("example.org.",))
    assert parse(d(children=(opt("fallthrough"),)), (".",)).fallthrough == (".",)


@pytest.mark.parametrize(("directive", "message"), [
    (d(children=(opt("ttl", "3601"),)), "ttl 3601 is out of range 0..3600"),
    (d(children=(opt("ttl", "x"),)), "ttl 'x' is not a whole number"),
    (d(children=(opt("ttl"),)), "wrong argument count"),
    (d(children=(opt("apex"),)), "wrong argument count"),
    (d(children=(opt("apex", "a.b"),)), "apex must be one DNS label"),
    (d(children=(opt("headless", "yes"),)), "wrong argument count"),
    (d(children=(opt("bogus"),)), "unknown property 'bogus'"),
])
def test_bad_options_name_the_line(directive: Directive, message: str) -> None:
    with pytest.raises(CorefileError) as e:
        parse(directive, (".",))
    assert message in str(e.value) and "Corefile:6" in str(e.value)


def test_needs_the_kubernetes_plugin_in_its_block(tmp_path: Path) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:1053 {\n  k8s_external example.org\n  forward . 127.0.0.1\n}\n")
    result = run_kdns(["-conf", str(corefile)])
    assert result.returncode == 1
    assert (f"{corefile}:2 - Error during parsing: 'k8s_external': k8s_external needs the kubernetes "
            "plugin in the same server block") in result.stderr + result.stdout


def test_service_model_keeps_external_addresses() -> None:
    svc = Service.from_json(o.service("web", external_ips=["192.0.2.1"],
                                      ingress=["198.51.100.7", "lb.cloud.example"]))
    assert svc.external_ips == ("192.0.2.1",) and svc.ingress == ("198.51.100.7", "lb.cloud.example")
    assert Service.from_json(o.service("plain")).external_ips == ()
    assert Service.from_json(o.service("plain")).ingress == ()


# --- through a real kdns process -----------------------------------------------------------------

OBJECTS = [
    o.namespace("default"), o.namespace("other"),
    o.service("web", ips=["10.96.0.20"], ports=[o.port("http", 80), o.port("https", 443)],
              external_ips=["192.0.2.10"], ingress=["198.51.100.7", "2001:db8::7"]),
    o.service("lb", ips=["10.96.0.21"], type="LoadBalancer", ports=[o.port("http", 80)],
              ingress=["lb.cloud.example"]),
    o.service("plain", ips=["10.96.0.30"], ports=[o.port("http", 80)]),
    o.headless("db", ports=[o.port("mysql", 3306)]),
    o.endpoint_slice("db-1", "db", endpoints=[o.endpoint("10.244.2.1", hostname="db-0"),
                                              o.endpoint("10.244.2.2", hostname="db-1")],
                     ports=[o.port("mysql", 3306)]),
]  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ApiServer, FakeUpstream]]:
    api = ApiServer().start()
    for obj in OBJECTS:
        api.add(obj)
    upstream = FakeUpstream().start()
    upstream.add("lb.cloud.example.", "A", "203.0.113.9")
    upstream.add("elsewhere.example.org.", "A", "203.0.113.50")
    yield api, upstream
    upstream.shutdown()
    api.stop()


def _corefile(api: ApiServer, upstream: FakeUpstream, external: str) -> str:
    return (f".:{{port}} {{\n  kubernetes cluster.local in-addr.arpa {{\n    endpoint {api.url}\n  }}\n"
            f"  {external}\n  forward . {upstream.address}\n}}\n")


@pytest.fixture(scope="module")
def k(cluster: tuple[ApiServer, FakeUpstream],
      tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    api, upstream = cluster
    external = "k8s_external example.org in-addr.arpa {\n    fallthrough in-addr.arpa\n  }"
    text = _corefile(api, upstream, external)
    port = free_port()
    proc = KdnsProcess(text.replace("{port}", str(port)), tmp_path_factory.mktemp("ext"), port)
    proc.start()
    yield port
    proc.stop()


def _soa(r: dns.message.Message) -> list[tuple[str, str, int, list[str]]]:
    return [rr for rr in section_rrsets(r.authority) if rr[1] == "SOA"]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_external_and_load_balancer_addresses(k: int, tcp: bool) -> None:
    r = ask(k, "web.default.example.org", "A", tcp=tcp)
    assert rcode(r) == "NOERROR" and has_flag(r, "AA")
    assert section_rrsets(r.answer) == [("web.default.example.org.", "A", 5, ["192.0.2.10", "198.51.100.7"])]
    assert answer_texts(ask(k, "WEB.Default.example.org", "AAAA", tcp=tcp)) == ["2001:db8::7"]
    assert ask(k, "WEB.Default.example.org", "AAAA").answer[0].name.to_text() == "WEB.Default.example.org."


def test_srv_per_port_with_addresses_in_additional(k: int) -> None:
    r = ask(k, "web.default.example.org", "SRV")
    # 3 addresses × 2 ports = 6 candidates: weight floor(100/6) = 16 (CoreDNS), one SRV per port.
    assert answer_texts(r) == ["0 16 443 web.default.example.org.", "0 16 80 web.default.example.org."]
    assert sorted(rd.to_text() for rrset in r.additional for rd in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)) == [
        "192.0.2.10", "198.51.100.7", "2001:db8::7"]
    assert answer_texts(ask(k, "_https._tcp.web.default.example.org", "SRV")) == [
        "0 33 443 web.default.example.org."]  # one port: 3 candidates
    assert rcode(ask(k, "_nope._tcp.web.default.example.org", "SRV")) == "NXDOMAIN"


def test_negative_answers_carry_the_zone_soa(k: int) -> None:
    r = ask(k, "web.default.example.org", "TXT")
    assert rcode(r) == "NOERROR" and not r.answer
    ((owner, _, ttl, (soa,)),) = _soa(r)
    assert owner == ZONE and ttl == 5
    assert soa.startswith("ns1.dns.example.org. hostmaster.dns.example.org. ")
    assert soa.endswith(" 7200 1800 86400 5")
    assert rcode(ask(k, "plain.default.example.org", "A")) == "NXDOMAIN"  # no external address
    assert rcode(ask(k, "missing.default.example.org", "A")) == "NXDOMAIN"
    assert rcode(ask(k, "web.nosuchns.example.org", "A")) == "NXDOMAIN"
    assert rcode(ask(k, "x.web.default.example.org", "A")) == "NXDOMAIN"
    r = ask(k, "default.example.org", "A")  # an existing namespace: NODATA
    assert rcode(r) == "NOERROR" and not r.answer and _soa(r)
    assert rcode(ask(k, "db.default.example.org", "A")) == "NXDOMAIN"  # headless needs `headless`


def test_apex(k: int) -> None:
    r = ask(k, ZONE, "SOA")
    assert [(n, t) for n, t, _, _ in section_rrsets(r.answer)] == [(ZONE, "SOA")]
    r = ask(k, ZONE, "NS")
    assert section_rrsets(r.answer) == [(ZONE, "NS", 5, ["ns1.dns.example.org."])]
    r = ask(k, "dns.example.org", "A")
    assert rcode(r) == "NOERROR" and not r.answer and _soa(r)
    assert rcode(ask(k, "ns2.dns.example.org", "A")) == "NXDOMAIN"
    assert rcode(ask(k, "ns1.dns.example.org", "A")) == "NOERROR"


def test_hostname_ingress_is_a_cname_chased_through_the_server(k: int) -> None:
    r = ask(k, "lb.default.example.org", "A")
    assert section_rrsets(r.answer) == [
        ("lb.default.example.org.", "CNAME", 5, ["lb.cloud.example."]),
        ("lb.cloud.example.", "A", 300, ["203.0.113.9"]),
    ]


def test_ptr_of_external_ips_and_fall_through_to_the_cluster(k: int) -> None:
    assert answer_texts(ask(k, "10.2.0.192.in-addr.arpa", "PTR")) == ["web.default.example.org."]
    assert answer_texts(ask(k, "7.100.51.198.in-addr.arpa", "PTR")) == ["web.default.example.org."]
    # A ClusterIP is not external: k8s_external falls through to the kubernetes plugin.
    assert answer_texts(ask(k, "20.0.96.10.in-addr.arpa", "PTR")) == ["web.default.svc.cluster.local."]


def test_cluster_and_other_names_are_untouched(k: int) -> None:
    assert answer_texts(ask(k, "web.default.svc.cluster.local", "A")) == ["10.96.0.20"]
    assert answer_texts(ask(k, "www.example.com", "A")) == []  # forwarded: NXDOMAIN upstream
    assert rcode(ask(k, "www.example.com", "A")) == "NXDOMAIN"


def test_live_status_change(k: int, cluster: tuple[ApiServer, FakeUpstream]) -> None:
    api, _ = cluster
    api.update(o.service("plain", ips=["10.96.0.30"], ports=[o.port("http", 80)], ingress=["198.51.100.30"]))
    until(lambda: answer_texts(ask(k, "plain.default.example.org", "A")) == ["198.51.100.30"],
          "the new load-balancer IP")
    api.update(o.service("plain", ips=["10.96.0.30"], ports=[o.port("http", 80)]))
    until(lambda: rcode(ask(k, "plain.default.example.org", "A")) == "NXDOMAIN", "the IP gone again")


def test_headless_and_fallthrough(kdns: Kdns, cluster: tuple[ApiServer, FakeUpstream]) -> None:
    api, upstream = cluster
    p = kdns(_corefile(api, upstream, "k8s_external example.org {\n    headless\n    fallthrough\n  }")).port
    assert answer_texts(ask(p, "db.default.example.org", "A")) == ["10.244.2.1", "10.244.2.2"]
    assert answer_texts(ask(p, "db-1.db.default.example.org", "A")) == ["10.244.2.2"]
    r = ask(p, "_mysql._tcp.db.default.example.org", "SRV")
    assert answer_texts(r) == ["0 50 3306 db-0.db.default.example.org.",
                               "0 50 3306 db-1.db.default.example.org."]
    assert sorted(rr.name.to_text() for rr in r.additional if rr.rdtype == dns.rdatatype.A) == [
        "db-0.db.default.example.org.", "db-1.db.default.example.org."]
    assert rcode(ask(p, "db-9.db.default.example.org", "A")) == "NXDOMAIN"  # fell through, NXDOMAIN upstream
    # fallthrough: a name error goes to forward, whose upstream knows this name.
    assert answer_texts(ask(p, "elsewhere.example.org", "A")) == ["203.0.113.50"]
    assert answer_texts(ask(p, "web.default.example.org", "A")) == ["192.0.2.10", "198.51.100.7"]


def test_servfail_before_the_first_sync(kdns: Kdns) -> None:
    """Every list fails, so the cluster is never synced: no name error may be claimed yet."""
    with ApiServer() as api:
        api.fail_next(10_000, 500, watch=False)
        k = kdns(f".:{{port}} {{\n  kubernetes cluster.local {{\n    endpoint {api.url}\n"
                 f"    startup_timeout 0.1s\n  }}\n  k8s_external example.org\n}}\n")
        r = ask(k.port, "web.default.example.org", "A")
        assert rcode(r) == "SERVFAIL" and _soa(r)
