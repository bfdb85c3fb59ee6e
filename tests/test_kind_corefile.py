"""kind's default Corefile, taken from deploy/coredns.yaml with only its ports moved high (and the
forward target moved to a loopback upstream), against the test API server through in-cluster
configuration over TLS: every record kind, forwarding, reverse fall-through, /health, /ready,
/metrics (issue #2's done-when; the image rehearsal runs the same file unmodified on :53)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from tests.plugins.kubernetes import cluster
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import answer_texts, ask, has_flag, rcode
from tests.support.http import get, scrape, value
from tests.support.ports import free_port
from tests.support.process import ROOT, KdnsProcess
from tests.support.upstream import FakeUpstream

CL = "svc.cluster.local."
TOKEN = "kind-token-1"


def kind_corefile() -> str:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "coredns.yaml").read_text()))
    (cm,) = [d for d in docs if d and d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "coredns"]
    return str(cm["data"]["Corefile"])


def moved_high(text: str, health: int, ready: int, metrics: int, upstream: str) -> str:
    subs = [
        (r"^\.:53 \{", ".:{port} {"),
        (r"^(\s+)health \{", rf"\1health 127.0.0.1:{health} {{"),
        (r"^(\s+)ready$", rf"\1ready 127.0.0.1:{ready}"),
        (r"^(\s+)prometheus :9153$", rf"\1prometheus 127.0.0.1:{metrics}"),
        (r"^(\s+)forward \. /etc/resolv\.conf \{", rf"\1forward . {upstream} {{"),
    ]
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == 1, f"kind's Corefile changed shape: {pattern!r} not found once"
    return text


@pytest.fixture(scope="module")
def kind(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[KdnsProcess, dict[str, int], FakeUpstream]]:
    work = tmp_path_factory.mktemp("kind")
    api = ApiServer(tls=True, tokens=[TOKEN])
    api.start()
    for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES, *cluster.PODS]:
        api.add(obj)
    upstream = FakeUpstream().start()
    upstream.add("www.example.com.", "A", "192.0.2.80")
    upstream.add("9.9.9.9.in-addr.arpa.", "PTR", "dns9.example.net.")
    ports = {"health": free_port(), "ready": free_port(), "metrics": free_port(), "dns": free_port()}
    text = moved_high(kind_corefile(), ports["health"], ports["ready"], ports["metrics"], upstream.address)
    proc = KdnsProcess(
        text.replace("{port}", str(ports["dns"])),
        work,
        ports["dns"],
        env=api.in_cluster_env(work / "serviceaccount", TOKEN),
    )
    proc.start()
    yield proc, ports, upstream
    proc.stop()
    upstream.shutdown()
    api.stop()


Kind = tuple[KdnsProcess, dict[str, int], FakeUpstream]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cluster_records(kind: Kind, tcp: bool) -> None:
    p = kind[0].port

    def a(name: str, rdtype: str = "A") -> list[str]:
        return answer_texts(ask(p, name, rdtype, tcp=tcp), rdtype)

    r = ask(p, "web.default." + CL, tcp=tcp)
    assert has_flag(r, "AA") and r.answer[0].ttl == 30  # ttl 30 from kind's Corefile
    assert a("web.default." + CL) == ["10.96.0.20"]
    assert a("dual.default." + CL, "AAAA") == ["fd00:10:96::30"]
    assert a("db.default." + CL) == ["10.244.2.1", "10.244.2.2"]
    assert a("db-0.db.default." + CL) == ["10.244.2.1"]
    assert a("_mysql._tcp.db.default." + CL, "SRV") == [
        "0 33 3306 10-244-2-2.db.default.svc.cluster.local.",
        "0 33 3306 db-0.db.default.svc.cluster.local.",
    ]
    assert a("ext.default." + CL, "CNAME") == ["www.Example.com."]
    assert a("20.0.96.10.in-addr.arpa.", "PTR") == ["web.default.svc.cluster.local."]
    assert a("10-244-9-9.default.pod.cluster.local.") == ["10.244.9.9"]  # pods insecure
    assert a("dns-version.cluster.local.", "TXT") == ['"1.1.0"']
    nx = ask(p, "nope.default." + CL, tcp=tcp)
    assert rcode(nx) == "NXDOMAIN" and nx.authority[0].name.to_text() == "cluster.local."


def test_forwarding_and_caching(kind: Kind) -> None:
    p, _, upstream = kind
    for _ in range(3):
        assert answer_texts(ask(p.port, "www.example.com."), "A") == ["192.0.2.80"]
    assert len(upstream.seen("www.example.com.")) == 1  # cache 30 answers the repeats
    chased = ask(p.port, "ext.default." + CL)  # ExternalName → www.Example.com through forward
    assert answer_texts(chased, "A") == ["192.0.2.80"] and answer_texts(chased, "CNAME") == [
        "www.Example.com."
    ]
    assert answer_texts(ask(p.port, "9.9.9.9.in-addr.arpa.", "PTR"), "PTR") == [
        "dns9.example.net."
    ]  # fallthrough
    assert rcode(ask(p.port, "nothing.example.com.")) == "NXDOMAIN"


def test_cluster_answers_are_not_cached(kind: Kind) -> None:
    """`disable success/denial cluster.local`: cluster names never come from the cache (they come
    from the index, whose changes show at once — covered by the kubernetes plugin's live tests)."""
    p = kind[0].port
    m = kind[1]["metrics"]
    before = value(
        scrape(f"http://127.0.0.1:{m}/metrics")[1],
        "coredns_cache_hits_total",
        server=f"dns://:{p}",
        type="success",
        zones=".",
        view="",
    )
    for _ in range(5):
        ask(p, "web.default." + CL)
    after = value(
        scrape(f"http://127.0.0.1:{m}/metrics")[1],
        "coredns_cache_hits_total",
        server=f"dns://:{p}",
        type="success",
        zones=".",
        view="",
    )
    assert after == before


def test_health_ready_and_metrics(kind: Kind) -> None:
    proc, ports, _ = kind
    assert get(f"http://127.0.0.1:{ports['health']}/health") == (200, "OK")
    assert get(f"http://127.0.0.1:{ports['ready']}/ready") == (200, "OK")
    _, text = get(f"http://127.0.0.1:{ports['metrics']}/metrics")
    enabled = set(re.findall(r'^coredns_plugin_enabled\{[^}]*name="(\w+)"[^}]*\} 1\.0$', text, re.M))
    assert enabled == {"cache", "errors", "forward", "kubernetes", "loadbalance", "loop", "prometheus"}
    assert re.search(r'^coredns_dns_requests_total\{[^}]*zone="\."', text, re.M)
    logs = proc.logs()
    assert "Traceback" not in logs and "not supported by kdns" not in logs, logs
