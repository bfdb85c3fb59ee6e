"""The kubernetes plugin end to end: a real kdns process synced from the test API server, queried
with dnspython over UDP and TCP. Live changes are polled for; the time each took is printed (the
propagation targets are measured in bench/, not asserted here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dns.message
import dns.rdatatype
import pytest

from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import answer_texts, ask, has_flag, rcode, section_rrsets
from tests.support.process import KdnsProcess

COREFILE = """\
.:{port} {
    bind 127.0.0.1
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %(api)s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
        %(extra)s
    }
    whoami
}
"""
CL = "svc.cluster.local."


def start(kdns: Callable[..., KdnsProcess], api: ApiServer, extra: str = "") -> KdnsProcess:
    return kdns(COREFILE % {"api": api.url, "extra": extra})


@pytest.fixture
def dns_server(kdns: Callable[..., KdnsProcess], api: ApiServer) -> KdnsProcess:
    return start(kdns, api)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    """Poll until `check()` holds; return how long it took (printed, not asserted)."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    print(f"propagation {what}: {elapsed * 1000:.1f} ms")
    return elapsed


def addrs(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> list[str]:
    return answer_texts(ask(port, name, rdtype, tcp=tcp), rdtype)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_every_record_kind(dns_server: KdnsProcess, tcp: bool) -> None:
    p = dns_server.port

    def q(name: str, rdtype: str = "A") -> dns.message.Message:
        return ask(p, name, rdtype, tcp=tcp)

    r = q("web.default." + CL)
    assert rcode(r) == "NOERROR" and has_flag(r, "AA") and not has_flag(r, "RA")
    assert section_rrsets(r.answer) == [("web.default.svc.cluster.local.", "A", 30, ["10.96.0.20"])]
    assert answer_texts(q("dual.default." + CL, "AAAA")) == ["fd00:10:96::30"]
    assert answer_texts(q("db.default." + CL)) == ["10.244.2.1", "10.244.2.2"]
    assert answer_texts(q("db-0.db.default." + CL, "AAAA")) == ["fd00::1"]
    srv = q("_mysql._tcp.db.default." + CL, "SRV")
    assert answer_texts(srv) == [
        "0 33 3306 10-244-2-2.db.default.svc.cluster.local.",
        "0 33 3306 db-0.db.default.svc.cluster.local.",
    ]
    assert sorted((n, t, d[0]) for n, t, _, d in section_rrsets(srv.additional)) == [
        ("10-244-2-2.db.default.svc.cluster.local.", "A", "10.244.2.2"),
        ("db-0.db.default.svc.cluster.local.", "A", "10.244.2.1"),
        ("db-0.db.default.svc.cluster.local.", "AAAA", "fd00::1"),
    ]
    assert answer_texts(q("ext.default." + CL, "CNAME")) == ["www.Example.com."]
    chased = q("ext-in.default." + CL)
    assert [(n, t, d) for n, t, _, d in section_rrsets(chased.answer)] == [
        ("ext-in.default.svc.cluster.local.", "CNAME", ["web.default.svc.cluster.local."]),
        ("web.default.svc.cluster.local.", "A", ["10.96.0.20"]),
    ]
    assert answer_texts(q("20.0.96.10.in-addr.arpa.", "PTR")) == ["web.default.svc.cluster.local."]
    assert answer_texts(
        q("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "PTR")
    ) == ["db-0.db.default.svc.cluster.local."]
    assert answer_texts(q("10-244-9-9.default.pod.cluster.local.")) == ["10.244.9.9"]
    version = q("dns-version.cluster.local.", "TXT")
    assert answer_texts(version) == ['"1.1.0"']
    assert version.answer[0].ttl == 28800  # whatever `ttl` says (30 here: the SOA's below), as CoreDNS
    soa = q("cluster.local.", "SOA")
    (soa_rr,) = soa.answer
    assert soa_rr.ttl == 30 and soa_rr[0].mname.to_text() == "ns.dns.cluster.local."
    assert soa_rr[0].minimum == 30 and (soa_rr[0].refresh, soa_rr[0].retry, soa_rr[0].expire) == (
        7200,
        1800,
        86400,
    )
    assert dns.rdatatype.to_text(q("cluster.local.", "NS").answer[0].rdtype) == "NS"


def test_negative_answers_carry_the_soa(dns_server: KdnsProcess) -> None:
    p = dns_server.port
    for name, rdtype, code in [
        ("nope.default." + CL, "A", "NXDOMAIN"),
        ("web.default." + CL, "AAAA", "NOERROR"),
        ("web.default." + CL, "TXT", "NOERROR"),
        ("default." + CL, "A", "NOERROR"),
        ("Nope.Default.SVC.Cluster.Local.", "AAAA", "NXDOMAIN"),
    ]:
        r = ask(p, name, rdtype)
        assert rcode(r) == code and not r.answer and has_flag(r, "AA"), name
        (auth,) = r.authority
        assert dns.rdatatype.to_text(auth.rdtype) == "SOA"
        assert auth.name.to_text() == name[len(name) - len("cluster.local.") :]  # the client's spelling


def test_owner_names_echo_the_question_spelling(dns_server: KdnsProcess) -> None:
    r = ask(dns_server.port, "WEB.default.Svc.cluster.LOCAL.", "A")
    assert r.answer[0].name.to_text() == "WEB.default.Svc.cluster.LOCAL."


def test_unknown_ptr_falls_through_to_the_next_plugin(dns_server: KdnsProcess) -> None:
    r = ask(dns_server.port, "9.9.9.9.in-addr.arpa.", "PTR")
    assert rcode(r) == "NOERROR" and not r.authority
    assert [t for _, t, _, _ in section_rrsets(r.additional)] == ["A", "SRV"]  # whoami answered


def test_large_headless_answer_truncates_on_udp_and_is_whole_on_tcp(
    kdns: Callable[..., KdnsProcess], api: ApiServer
) -> None:
    ips = [f"10.250.{i // 200}.{i % 200 + 1}" for i in range(300)]
    api.add(o.headless("big"))
    api.add(o.endpoint_slice("big-1", "big", endpoints=[o.endpoint(ip) for ip in ips]))
    p = start(kdns, api).port
    small = ask(p, "big.default." + CL, edns=False)
    assert has_flag(small, "TC") and len(small.to_wire()) <= 512
    edns = ask(p, "big.default." + CL, payload=1232)
    assert has_flag(edns, "TC") and len(edns.to_wire()) <= 1232
    full = ask(p, "big.default." + CL, tcp=True)
    assert not has_flag(full, "TC") and answer_texts(full) == sorted(ips)


def db_slice(second_ready: bool | None) -> dict[str, Any]:
    """db's IPv4 slice scaled to three pods (db-3 added), the second one's readiness as given."""
    return o.endpoint_slice(
        "db-v4",
        "db",
        endpoints=[
            o.endpoint("10.244.2.1", hostname="db-0"),
            o.endpoint("10.244.2.2", ready=second_ready),
            o.endpoint("10.244.2.4", hostname="db-3"),
        ],
        ports=[o.port("mysql", 3306)],
    )


def test_live_changes(dns_server: KdnsProcess, api: ApiServer) -> None:
    p = dns_server.port
    hl = "db.default." + CL
    # scale a headless service up, then down
    api.update(db_slice(second_ready=None))
    wait_for(lambda: addrs(p, hl) == ["10.244.2.1", "10.244.2.2", "10.244.2.4"], "scale up")
    assert addrs(p, "db-3." + hl) == ["10.244.2.4"]
    # flip an endpoint's ready condition
    api.update(db_slice(second_ready=False))
    wait_for(lambda: addrs(p, hl) == ["10.244.2.1", "10.244.2.4"], "ready flip")
    assert rcode(ask(p, "10-244-2-2." + hl)) == "NXDOMAIN"
    # change an ExternalName, then make it a ClusterIP service (e2e "ExternalName" steps)
    api.update(o.external("ext", "bar.example.com"))
    wait_for(
        lambda: answer_texts(ask(p, "ext.default." + CL, "CNAME")) == ["bar.example.com."],
        "externalName edit",
    )
    api.update(o.service("ext", ips=["10.96.0.77"]))
    wait_for(lambda: addrs(p, "ext.default." + CL) == ["10.96.0.77"], "ExternalName to ClusterIP")
    assert answer_texts(ask(p, "ext.default." + CL, "CNAME")) == []
    # delete a namespace: everything in it disappears
    api.delete("Namespace", "other", None)
    wait_for(lambda: rcode(ask(p, "api.other." + CL)) == "NXDOMAIN", "namespace delete")
    assert rcode(ask(p, "other." + CL)) == "NXDOMAIN"
    # delete a service: NXDOMAIN for every type
    api.delete("Service", "web")
    wait_for(lambda: rcode(ask(p, "web.default." + CL)) == "NXDOMAIN", "service delete")
    assert rcode(ask(p, "web.default." + CL, "AAAA")) == "NXDOMAIN"
    assert rcode(ask(p, "20.0.96.10.in-addr.arpa.", "PTR")) == "NOERROR"  # fell through to whoami


def test_servfail_until_the_first_sync(kdns: Callable[..., KdnsProcess], api: ApiServer) -> None:
    api.down()
    p = start(kdns, api, extra="startup_timeout 1s")
    assert "starting server with unsynced Kubernetes API" in p.logs()
    r = ask(p.port, "web.default." + CL)
    assert rcode(r) == "SERVFAIL" and has_flag(r, "AA")
    assert dns.rdatatype.to_text(r.authority[0].rdtype) == "SOA"
    api.up()
    wait_for(lambda: addrs(p.port, "web.default." + CL) == ["10.96.0.20"], "first data after API up", 30)
    # every kind syncs on its own: name errors turn from SERVFAIL to NXDOMAIN once all have
    wait_for(lambda: rcode(ask(p.port, "nope.default." + CL)) == "NXDOMAIN", "complete sync", 30)


def test_startup_waits_for_the_api_and_logs_it(kdns: Callable[..., KdnsProcess], api: ApiServer) -> None:
    p = start(kdns, api)
    assert "[WARNING] plugin/kubernetes: starting server with unsynced" not in p.logs()
    assert addrs(p.port, "web.default." + CL) == ["10.96.0.20"]


@pytest.mark.parametrize(
    ("extra", "name", "code"),
    [
        ("namespaces other", "web.default." + CL, "NXDOMAIN"),
        ("namespaces other", "api.other." + CL, "NOERROR"),
        ("noendpoints", "db.default." + CL, "NXDOMAIN"),
        ("noendpoints", "web.default." + CL, "NOERROR"),
        ("ignore empty_service", "api.other." + CL, "NXDOMAIN"),  # no ready endpoints
        ("endpoint_pod_names", "web-5f7.web.default." + CL, "NOERROR"),
        ("labels team=a", "web.default." + CL, "NXDOMAIN"),  # the test objects carry no labels
    ],
)
def test_options(kdns: Callable[..., KdnsProcess], api: ApiServer, extra: str, name: str, code: str) -> None:
    p = start(kdns, api, extra=extra)
    assert rcode(ask(p.port, name)) == code


def test_missing_manifests_path_is_a_corefile_error(tmp_path: Any) -> None:
    from tests.support.process import run_kdns

    path = tmp_path / "Corefile"
    path.write_text(".:1 {\n kubernetes cluster.local {\n  manifests /nonexistent/cluster.yaml\n }\n}\n")
    r = run_kdns(["-conf", str(path)])
    assert r.returncode == 1 and f"{path}:2 - Error during parsing: 'kubernetes'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_bad_options_are_corefile_errors(tmp_path: Any) -> None:
    from tests.support.process import run_kdns

    path = tmp_path / "Corefile"
    for body, message in [
        ("ttl 9000", "out of range"),
        ("pods sometimes", "pods must be one of"),
        ("frob", "unknown property 'frob'"),
        ("namespaces a\n namespace_labels x=y", "cannot both be set"),
    ]:
        path.write_text(
            f".:1 {{\n kubernetes cluster.local {{\n  endpoint http://127.0.0.1:1\n  {body}\n }}\n}}\n"
        )
        r = run_kdns(["-conf", str(path)])
        assert r.returncode == 1 and f"{path}:" in r.stderr and message in r.stderr, r.stderr
