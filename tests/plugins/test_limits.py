"""limits: options and errors (unit), and a real kdns process at each bound: the TCP connection cap
(evicting the longest-idle connection, refusing when all are busy), a connection's pipelined queries
(not read past tcp_inflight), the in-flight bound under a UDP
burst to a slow upstream (dropped and counted, upstream never sees more, cluster names still
answered, TCP waits instead of dropping), and the template table's size (emptied and counted),
with a bad value on reload keeping the running configuration. The kdns_* metrics are the ones
docs/operations.md lists."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import pytest

from kdns.corefile import CorefileError
from kdns.plugins import limits
from tests.support.dnsclient import answer_texts, ask, rcode, read_framed, send_framed
from tests.support.http import scrape, until, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.units import context, directive
from tests.support.upstream import FakeUpstream, running_upstreams

Kdns = Callable[..., KdnsProcess]
Upstreams = Callable[..., FakeUpstream]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SERVICES = 25


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with running_upstreams() as make:
        yield make


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Services svc0 … svc24 in namespace default, whose names the fast path answers."""
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n"] + [
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: default}}\n"
        f"spec: {{clusterIP: 10.96.1.{i + 1}, ports: [{{name: http, port: 80}}]}}\n"
        for i in range(SERVICES)
    ]
    path = tmp_path / "cluster.yaml"
    path.write_text("---\n".join(docs))
    return path


def service(i: int) -> str:
    return f"svc{i}.default.svc.cluster.local"


def corefile(metrics: int, options: str, manifest: Path, upstream: str = "", extra: str = "") -> str:
    forward = f" forward . {upstream}\n" if upstream else ""
    return (
        f".:{{port}} {{\n bind 127.0.0.1\n prometheus 127.0.0.1:{metrics}\n{extra}"
        f" limits {{\n{options}\n }}\n"
        f" kubernetes cluster.local {{\n  manifests {manifest}\n }}\n{forward}}}\n"
    )


def settings(text: str) -> dict[str, float]:
    plugin = limits.setup(directive(text), context(text))
    return {s.name: s.value for s in plugin.listener_settings()}


def test_options() -> None:
    text = "limits {\n tcp_connections 10\n tcp_inflight 20\n inflight 30\n templates 40\n}"
    assert settings(text) == {"tcp_connections": 10, "tcp_inflight": 20, "inflight": 30, "templates": 40}
    assert settings("limits {\n inflight 1\n}") == {"inflight": 1}


@pytest.mark.parametrize(("text", "message"), [
    ("limits", "Corefile:2 - Error during parsing: 'limits': limits block with no limits specified"),
    ("limits 5 {\n inflight 5\n}", "wrong argument count"),
    ("limits {\n inflight 0\n}", "Corefile:3 - Error during parsing: 'inflight': inflight 0 is out of range"),
    ("limits {\n templates -1\n}", "templates -1 is out of range 1..2147483647"),
    ("limits {\n tcp_connections many\n}", "tcp_connections 'many' is not a whole number"),
    ("limits {\n tcp_inflight 1 2\n}", "'tcp_inflight': wrong argument count"),
    ("limits {\n connections 5\n}", "'connections': unknown option: 'connections' (want tcp_connections"),
    ("limits {\n inflight 5\n inflight 6\n}", "Corefile:4 - Error during parsing: 'inflight': inflight is"),
])  # fmt: skip
def test_bad_options_name_the_line(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        limits.setup(directive(text), context(text))


def metric(url: str, port: int, name: str, **labels: str) -> float:
    return value(scrape(url)[1], name, server=f"dns://127.0.0.1:{port}", **labels)


def answered(s: socket.socket) -> bool:
    send_framed(s, dns.message.make_query(service(0), "A").to_wire())
    return read_framed(s) is not None


def test_tcp_connections_evicts_the_longest_idle_then_refuses_when_all_are_busy(
    kdns: Kdns, upstreams: Upstreams, manifest: Path
) -> None:
    up = upstreams(delay=1.5)
    up.add("slow.example.org.", "A", "192.0.2.1")
    m = free_port()
    url = f"http://127.0.0.1:{m}/metrics"
    held_open = " timeouts {\n  read 60s\n  idle 60s\n }\n"  # only the cap closes connections here
    k = kdns(corefile(m, "  tcp_connections 4", manifest, up.address, held_open))
    conns = [socket.create_connection(("127.0.0.1", k.port), timeout=10) for _ in range(4)]
    try:
        for c in conns:  # in this order: conns[0] has been idle the longest
            assert answered(c)
        assert metric(url, k.port, "kdns_tcp_connections") == 4
        conns.append(socket.create_connection(("127.0.0.1", k.port), timeout=10))
        assert answered(conns[4])
        assert read_framed(conns[0]) is None  # evicted to make room
        assert metric(url, k.port, "kdns_tcp_connections_closed_total", reason="evicted") == 1
        assert metric(url, k.port, "kdns_tcp_connections") == 4

        busy = conns[1:]
        for c in busy:  # each waits for the slow upstream: none is idle
            send_framed(c, dns.message.make_query("slow.example.org", "A").to_wire())
        up.wait_for(lambda: len(up.seen("slow.example.org.")) == 4)
        with socket.create_connection(("127.0.0.1", k.port), timeout=10) as refused:
            assert read_framed(refused) is None  # closed at once
        for c in busy:  # the busy ones are served
            reply = read_framed(c)
            assert reply is not None and answer_texts(dns.message.from_wire(reply)) == ["192.0.2.1"]
        assert metric(url, k.port, "kdns_tcp_connections_closed_total", reason="refused") == 1
    finally:
        for c in conns:
            c.close()


def test_tcp_inflight_stops_reading_a_connection_with_that_many_queries_pending(
    kdns: Kdns, upstreams: Upstreams, manifest: Path
) -> None:
    up = upstreams(delay=0.5)
    for i in range(6):
        up.add(f"p{i}.example.org.", "A", f"192.0.2.{i + 1}")
    k = kdns(corefile(free_port(), "  tcp_inflight 2", manifest, up.address))
    with socket.create_connection(("127.0.0.1", k.port), timeout=15) as s:
        for i in range(6):  # pipelined at once: kdns reads two, then one more as each is answered
            send_framed(s, dns.message.make_query(f"p{i}.example.org", "A").to_wire())
        replies = [read_framed(s) for _ in range(6)]
    got = sorted(answer_texts(dns.message.from_wire(r))[0] for r in replies if r is not None)
    assert got == [f"192.0.2.{i + 1}" for i in range(6)]
    assert up.max_inflight == 2


def test_inflight_drops_udp_past_the_bound_and_tcp_waits(
    kdns: Kdns, upstreams: Upstreams, manifest: Path
) -> None:
    """50 distinct questions at once to a slow upstream: 4 are forwarded, the rest dropped and
    counted; names the fast path answers, over UDP and TCP, are answered meanwhile; a TCP question
    for the upstream waits for room and is answered."""
    up = upstreams(delay=1.0)  # under forward's 2 s read timeout: no retries to blur the count
    for i in range(50):
        up.add(f"burst{i}.example.org.", "A", "192.0.2.1")
    up.add("tcp.example.org.", "A", "192.0.2.2")
    m = free_port()
    url = f"http://127.0.0.1:{m}/metrics"
    k = kdns(corefile(m, "  inflight 4", manifest, up.address))
    assert answer_texts(ask(k.port, service(1))) == ["10.96.1.2"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as burst, socket.create_connection(
        ("127.0.0.1", k.port), timeout=15
    ) as tcp:
        burst.connect(("127.0.0.1", k.port))
        for i in range(50):
            burst.send(dns.message.make_query(f"burst{i}.example.org", "A", id=i).to_wire())
        up.wait_for(lambda: len(up.seen()) >= 4)
        send_framed(tcp, dns.message.make_query("tcp.example.org", "A").to_wire())
        for tcp_too in (False, True):  # answered from templates while the chain is saturated
            assert answer_texts(ask(k.port, service(1), tcp=tcp_too)) == ["10.96.1.2"]
            assert answer_texts(ask(k.port, service(2), tcp=tcp_too)) == ["10.96.1.3"]  # prepared
        inflight = metric(url, k.port, "kdns_inflight_queries")
        assert 0 < inflight <= 4
        replies = []
        burst.settimeout(4)
        try:
            while True:
                replies.append(dns.message.from_wire(burst.recv(4096)))
        except TimeoutError:
            pass
        reply = read_framed(tcp)  # waited for room, not dropped
        assert reply is not None and answer_texts(dns.message.from_wire(reply)) == ["192.0.2.2"]
    assert all(rcode(r) == "NOERROR" for r in replies)
    assert 4 <= len(replies) <= 10  # 4, unless some were answered before the burst was all read
    assert up.max_inflight <= 4
    assert len([q for q in up.seen() if q.qname.startswith("burst")]) == len(replies)
    dropped = metric(url, k.port, "kdns_queries_dropped_total", reason="overload")
    assert dropped == 50 - len(replies)
    assert metric(url, k.port, "kdns_inflight_queries") == 0


def test_templates_bounds_the_table_and_counts_flushes(kdns: Kdns, manifest: Path) -> None:
    m = free_port()
    url = f"http://127.0.0.1:{m}/metrics"
    k = kdns(corefile(m, "  templates 10", manifest))

    def ask_all(count: int) -> None:
        for i in range(count):
            assert answer_texts(ask(k.port, service(i))) == [f"10.96.1.{i + 1}"]

    def table() -> tuple[float, float]:
        templates = metric(url, k.port, "kdns_fastpath_templates")
        return templates, metric(url, k.port, "kdns_fastpath_flushes_total")

    ask_all(10)
    assert table() == (10, 0)
    ask_all(SERVICES)  # the first 10 are replayed; 15 new ones fill the table again, twice emptied
    assert table() == (5, 2)

    k.corefile_path.write_text(corefile(m, "  templates 0", manifest).replace("{port}", str(k.port)))
    k.signal(signal.SIGUSR1)
    until(lambda: "'templates': templates 0 is out of range" in k.logs(), "the rejected reload")
    assert answer_texts(ask(k.port, service(24))) == ["10.96.1.25"]  # the running configuration serves
    assert table() == (5, 2)  # svc20 … svc24, replayed

    k.corefile_path.write_text(corefile(m, "  templates 30", manifest).replace("{port}", str(k.port)))
    k.signal(signal.SIGUSR1)
    until(lambda: "Reloading complete" in k.logs(), "the reload")
    ask_all(SERVICES)  # a new configuration starts a new table, now large enough
    assert table() == (SERVICES, 2)


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """The metric table of docs/operations.md's "Limits" section: name → (type, labels)."""
    section = DOCS.read_text().split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(kdns_\w+)` \| (\w+) \|([\w, ]*)\|", section, re.M)
    return {name: (kind, frozenset(x.strip() for x in labels.split(",") if x.strip()))
            for name, kind, labels in rows}  # fmt: skip


def test_kdns_metrics_are_the_documented_ones(kdns: Kdns, manifest: Path) -> None:
    m = free_port()
    k = kdns(corefile(m, "  tcp_connections 1", manifest))
    with socket.create_connection(("127.0.0.1", k.port), timeout=10) as first:
        assert answered(first)
        with socket.create_connection(("127.0.0.1", k.port), timeout=10) as second:
            assert answered(second)  # evicted the first: closed_total gets a child
    families, samples = scrape(f"http://127.0.0.1:{m}/metrics")
    docs = documented()
    exposed = {  # the kubernetes plugin's own kdns_kubernetes_* are in docs/plugins.md
        name: kind for name, kind in families.items()
        if name.startswith("kdns_") and not name.startswith("kdns_kubernetes_")
    }  # fmt: skip
    assert exposed == {name: kind for name, (kind, _) in docs.items()}
    for name, (_, labels) in docs.items():
        for n, labelset in samples:
            if n == name:
                assert {k for k, _ in labelset} == labels, (name, labelset)
