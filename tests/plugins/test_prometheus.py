"""prometheus: the /metrics page of a real kdns process against the documented CoreDNS names and
labels, exact counts for known traffic (per zone, proto, family, type, rcode, plugin, dropped), and
metrics that survive reloads on a listener shared by two server blocks."""

from __future__ import annotations

import hashlib
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import dns.message
import pytest

from kdns import __version__
from kdns.corefile import CorefileError
from kdns.plugins import prometheus
from tests.support.http import get, scrape, until, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.units import context, directive

Kdns = Callable[..., KdnsProcess]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
TYPES = {"counter", "gauge", "histogram"}


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """The metric table of docs/plugins.md's prometheus section: name → (type, labels)."""
    text = DOCS.read_text()
    section = text.split("\n## prometheus\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(coredns_\w+)` \| (\w+) \|([\w, ]*)\|$", section, re.M)
    assert len(rows) >= 10, "the metric table is missing from docs/plugins.md"
    return {
        name: (kind, frozenset(x.strip() for x in labels.split(",") if x.strip()))
        for name, kind, labels in rows
    }


def exchange(
    port: int, msg: dns.message.Message, host: str = "127.0.0.1", tcp: bool = False
) -> tuple[int, int]:
    """Send one query; (query bytes, reply bytes) exactly as they crossed the socket."""
    wire = msg.to_wire()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if tcp:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(len(wire).to_bytes(2, "big") + wire)
            size = int.from_bytes(s.recv(2), "big")
            reply = b""
            while len(reply) < size:
                reply += s.recv(size - len(reply))
    else:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(wire, (host, port))
            reply = s.recv(65535)
    assert dns.message.from_wire(reply).id == msg.id
    return len(wire), len(reply)


COREFILE = """\
example.org:{port} {
    prometheus 127.0.0.1:%(m)d
    errors
    health 127.0.0.1:%(h)d
    ready 127.0.0.1:%(r)d
    reload
    whoami
}
fail.test:{port} {
    prometheus 127.0.0.1:%(m)d
    loadbalance
}
"""


@pytest.fixture
def server(kdns: Kdns) -> tuple[KdnsProcess, str]:
    m = free_port()
    p = kdns(COREFILE % {"m": m, "h": free_port(), "r": free_port()})
    return p, f"http://127.0.0.1:{m}/metrics"


def q(name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]


def test_counts_for_known_traffic(server: tuple[KdnsProcess, str]) -> None:
    p, url = server
    srv = f"dns://:{p.port}"
    sent = {"udp": [exchange(p.port, q("www.example.org.", use_edns=0)) for _ in range(3)]}
    sent["udp"].append(exchange(p.port, q("example.org.", "NAPTR")))  # type "other"
    sent["udp"].append(exchange(p.port, q("example.org.", "TXT", want_dnssec=True)))  # DO
    sent["udp6"] = [exchange(p.port, q("v6.example.org.", "AAAA"), host="::1")]
    sent["tcp"] = [exchange(p.port, q("example.org.", "MX"), tcp=True)]
    failed = exchange(p.port, q("x.fail.test."))  # nothing answers in that block: SERVFAIL
    dropped = [exchange(p.port, q("elsewhere.net.")) for _ in range(2)]  # no block serves it: REFUSED

    _, s = scrape(url)
    zone = "example.org."

    def requests(**labels: str) -> float:
        return value(s, "coredns_dns_requests_total", server=srv, view="", **labels)

    assert requests(zone=zone, proto="udp", family="1", type="A") == 3
    assert requests(zone=zone, proto="udp", family="1", type="other") == 1
    assert requests(zone=zone, proto="udp", family="1", type="TXT") == 1
    assert requests(zone=zone, proto="udp", family="2", type="AAAA") == 1
    assert requests(zone=zone, proto="tcp", family="1", type="MX") == 1
    assert requests(zone="fail.test.", proto="udp", family="1", type="A") == 1
    assert requests(zone="dropped", proto="udp", family="1", type="A") == 2
    assert value(s, "coredns_dns_do_requests_total", server=srv, zone=zone, view="") == 1

    def responses(**labels: str) -> float:
        return value(s, "coredns_dns_responses_total", server=srv, view="", **labels)

    assert responses(zone=zone, rcode="NOERROR", plugin="whoami") == 7
    assert responses(zone="fail.test.", rcode="SERVFAIL", plugin="") == 1
    assert responses(zone="dropped", rcode="REFUSED", plugin="") == 2
    assert value(s, "coredns_dns_request_duration_seconds_count", server=srv, zone=zone, view="") == 7

    def sizes(which: str, zone: str, proto: str) -> tuple[float, float]:
        labels = {"server": srv, "zone": zone, "view": "", "proto": proto}
        return (
            value(s, f"coredns_dns_{which}_size_bytes_count", **labels),
            value(s, f"coredns_dns_{which}_size_bytes_sum", **labels),
        )

    udp = sent["udp"] + sent["udp6"]
    assert sizes("request", zone, "udp") == (len(udp), sum(a for a, _ in udp))
    assert sizes("response", zone, "udp") == (len(udp), sum(b for _, b in udp))  # bytes really sent
    assert sizes("response", zone, "tcp") == (1, sent["tcp"][0][1])
    assert sizes("response", "fail.test.", "udp") == (1, failed[1])
    assert sizes("response", "dropped", "udp") == (2, sum(b for _, b in dropped))
    assert value(s, "coredns_panics_total") == 0
    (build,) = [dict(k) for n, k in s if n == "coredns_build_info"]
    assert build["version"] == __version__ and build["goversion"].startswith("python")

    enabled = sorted((dict(k)["zone"], dict(k)["name"]) for n, k in s if n == "coredns_plugin_enabled")
    assert enabled == [("example.org.", n) for n in ("errors", "prometheus", "whoami")] + [
        ("fail.test.", n) for n in ("loadbalance", "prometheus")
    ]  # query-path plugins only, as CoreDNS's Handlers(); health, ready, reload run beside it
    assert all(dict(k)["server"] == srv for n, k in s if n == "coredns_plugin_enabled")


def test_names_and_labels_are_the_documented_ones(server: tuple[KdnsProcess, str]) -> None:
    p, url = server
    exchange(p.port, q("example.org.", use_edns=0, want_dnssec=True))  # every labelled series gets a child
    families, samples = until(
        lambda: (
            (f := scrape(url)) and value(f[1], "coredns_health_request_duration_seconds_count") >= 1 and f
        ),
        "the health self-probe to be measured",
    )
    docs = documented()
    exposed = {name: kind for name, kind in families.items() if name.startswith("coredns_")}
    assert exposed == {name: kind for name, (kind, _) in docs.items()}
    for name, (_kind, labels) in docs.items():
        series = [dict(k) for n, k in samples if n in (name, f"{name}_count", f"{name}_bucket")]
        assert series, f"{name} has no samples"
        for labelset in series:
            assert set(labelset) - {"le"} == labels, (name, labelset)
    assert "process_resident_memory_bytes" in families and "python_info" in families
    assert not any(n.endswith("_created") for n in families)  # Go's client has no _created series


def test_metrics_survive_reloads_and_count_failures(server: tuple[KdnsProcess, str]) -> None:
    p, url = server
    exchange(p.port, q("www.example.org."))
    text = p.corefile_path.read_text()
    digest = hashlib.sha512(text.encode()).hexdigest()
    _, s = scrape(url)
    assert value(s, "coredns_reload_version_info", hash="sha512", value=digest) == 1

    edited = text.replace("fail.test:", "other.test:")
    p.corefile_path.write_text(edited)
    p.signal(signal.SIGUSR1)
    until(lambda: "[INFO] Reloading complete" in p.logs(), "the reload")
    exchange(p.port, q("www.example.org."))
    _families, s = scrape(url)  # the same listener, the same registry: counts go on
    srv = f"dns://:{p.port}"
    assert (
        value(
            s,
            "coredns_dns_requests_total",
            server=srv,
            zone="example.org.",
            view="",
            proto="udp",
            family="1",
            type="A",
        )
        == 2
    )
    versions = [dict(k)["value"] for n, k in s if n == "coredns_reload_version_info"]
    assert versions == [hashlib.sha512(edited.encode()).hexdigest()]
    zones = {dict(k)["zone"] for n, k in s if n == "coredns_plugin_enabled"}
    assert zones == {"example.org.", "other.test."}
    assert value(s, "coredns_reload_failed_total") == 0

    p.corefile_path.write_text(edited.replace("whoami", "whoami extra-argument"))
    p.signal(signal.SIGUSR1)
    until(lambda: "Reload failed" in p.logs(), "the failed reload")
    _, s = scrape(url)
    assert value(s, "coredns_reload_failed_total") == 1
    assert [dict(k)["value"] for n, k in s if n == "coredns_reload_version_info"] == versions
    assert exchange(p.port, q("www.example.org."))[1] > 0  # the old configuration still answers


def test_syntax() -> None:
    plugin = prometheus.setup(directive("prometheus"), context("prometheus"))
    assert isinstance(plugin, prometheus.Prometheus) and plugin.address == ("localhost", 9153)
    plugin = prometheus.setup(directive("prometheus :9153"), context("prometheus :9153"))
    assert isinstance(plugin, prometheus.Prometheus) and plugin.address == (None, 9153)
    for text, message in [
        ("prometheus a b", "wrong argument count"),
        ("prometheus 9153", "missing port"),
        ("prometheus {\n path /m\n}", "unknown property 'path'"),
    ]:
        with pytest.raises(CorefileError, match=re.escape(message)):
            prometheus.setup(directive(text), context(text))


def test_type_label() -> None:
    assert [prometheus.type_label(t) for t in (1, 28, 65, 255, 35, 13)] == [
        "A", "AAAA", "HTTPS", "ANY", "other", "other",
    ]  # fmt: skip


def test_other_paths_are_not_found(server: tuple[KdnsProcess, str]) -> None:
    _, url = server
    assert get(url.replace("/metrics", "/"))[0] == 404


CLUSTER_COREFILE = """\
cluster.local:{port} {
    bind 127.0.0.1
    prometheus 127.0.0.1:%(m)d
    errors
    loadbalance
    kubernetes cluster.local {
        manifests %(manifests)s
    }
}
"""


def test_replies_from_the_fast_path_are_counted(kdns: Kdns) -> None:
    """Cluster answers repeat from cached bytes after the first one; /metrics must still see each."""
    from tests.support.process import ROOT

    m = free_port()
    p = kdns(CLUSTER_COREFILE % {"m": m, "manifests": ROOT / "demo" / "cluster.yaml"})
    for _ in range(5):
        exchange(p.port, q("web.default.svc.cluster.local."))
    for _ in range(3):
        exchange(p.port, q("nope.default.svc.cluster.local.", "AAAA"))
    _, s = scrape(f"http://127.0.0.1:{m}/metrics")
    labels = {"server": f"dns://127.0.0.1:{p.port}", "zone": "cluster.local.", "view": ""}
    assert value(s, "coredns_dns_requests_total", proto="udp", family="1", type="A", **labels) == 5
    assert value(s, "coredns_dns_requests_total", proto="udp", family="1", type="AAAA", **labels) == 3
    assert value(s, "coredns_dns_responses_total", rcode="NOERROR", plugin="kubernetes", **labels) == 5
    assert value(s, "coredns_dns_responses_total", rcode="NXDOMAIN", plugin="kubernetes", **labels) == 3
    assert value(s, "coredns_dns_response_size_bytes_count", proto="udp", **labels) == 8
