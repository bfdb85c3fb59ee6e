"""forward: Corefile options, resolv.conf parsing, policies (unit), and forwarding through a real kdns
process to fake upstreams on loopback (UDP/TCP, TC, failover, SERVFAIL, max_concurrent, except,
health checks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import pytest
from dnslib import DNSRecord

from kdns.corefile import CorefileError
from kdns.corefile.model import Directive
from kdns.metrics import REGISTRY
from kdns.plugins._resolvconf import parse_nameservers
from kdns.plugins.forward.config import ForwardConfig, HealthCheckConfig, Upstream, parse
from kdns.plugins.forward.plugin import Forward
from kdns.plugins.forward.policy import RoundRobin, random_order, sequential_order
from kdns.request import Request
from tests.support.dnsclient import answer_texts, ask, assert_positive_unchanged, ede, has_flag, rcode
from tests.support.process import KdnsProcess, run_kdns
from tests.support.upstream import FakeUpstream, running_upstreams

Kdns = Callable[..., KdnsProcess]
Upstreams = Callable[..., FakeUpstream]


def d(*args: str, children: tuple[Directive, ...] = ()) -> Directive:
    return Directive("forward", tuple(args), children, "Corefile", 3, bool(children))


def opt(name: str, *args: str) -> Directive:
    return Directive(name, tuple(args), (), "Corefile", 4)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with running_upstreams() as make:
        yield make


# --- Corefile options (unit) ----------------------------------------------------------------------


def test_defaults_match_coredns() -> None:
    cfg = parse(d(".", "10.0.0.1"))
    assert cfg == ForwardConfig(".", (Upstream("10.0.0.1", 53),))
    assert (cfg.expire, cfg.max_fails, cfg.policy, cfg.max_concurrent) == (10.0, 2, "random", 0)
    assert cfg.health == HealthCheckConfig(0.5, True, ".")


def test_to_forms() -> None:
    cfg = parse(d("Example.ORG", "10.0.0.1:5353", "dns://10.0.0.2", "dns://10.0.0.3:54", "[2001:db8::1]:55",
                  "2001:db8::2", "[2001:db8::3]"))
    assert cfg.from_zone == "example.org."
    assert cfg.upstreams == (
        Upstream("10.0.0.1", 5353), Upstream("10.0.0.2", 53), Upstream("10.0.0.3", 54),
        Upstream("2001:db8::1", 55), Upstream("2001:db8::2", 53), Upstream("2001:db8::3", 53))
    assert Upstream("2001:db8::1", 55).label == "[2001:db8::1]:55"


def test_options_block() -> None:
    cfg = parse(d(".", "10.0.0.1", children=(
        opt("except", "cluster.local", "Example.org"), opt("force_tcp"), opt("prefer_udp"),
        opt("expire", "30s"), opt("max_fails", "0"), opt("policy", "sequential"),
        opt("health_check", "2s", "no_rec", "domain", "a.b"), opt("max_concurrent", "1000"))))
    assert cfg.ignored == ("cluster.local.", "example.org.")
    assert cfg.force_tcp and cfg.prefer_udp
    assert (cfg.expire, cfg.max_fails, cfg.policy, cfg.max_concurrent) == (30.0, 0, "sequential", 1000)
    assert cfg.health == HealthCheckConfig(2.0, False, "a.b.")


@pytest.mark.parametrize(("directive", "message"), [
    (d("."), "wrong argument count"),
    (d(".", "example.com"), "not an IP address or file: 'example.com'"),
    (d(".", "grpc://10.0.0.1"), "transport 'grpc' is not supported"),
    (d(".", "https://10.0.0.1"), "transport 'https' is not supported"),
    (d(".", "10.0.0.1:0"), "port 0 is out of range"),
    (d(".", *[f"10.0.0.{i}" for i in range(16)]), "more than 15 TOs configured: 16"),
    (d(".", "10.0.0.1", children=(opt("doh_method", "GET"),)), "DNS-over-HTTPS upstreams are not supported"),
    (d(".", "10.0.0.1", children=(opt("policy", "fastest"),)), "unknown policy 'fastest'"),
    (d(".", "10.0.0.1", children=(opt("max_concurrent", "-1"),)), "out of range"),
    (d(".", "10.0.0.1", children=(opt("health_check", "0s"),)), "must be positive"),
    (d(".", "10.0.0.1", children=(opt("health_check", "1s", "bogus"),)), "unexpected 'bogus'"),
    (d(".", "10.0.0.1", children=(opt("next", "NXDOMAIN"),)), "not supported by kdns"),
    (d(".", "10.0.0.1", children=(opt("bogus"),)), "unknown property 'bogus'"),
])
def test_bad_options_name_the_line(directive: Directive, message: str) -> None:
    with pytest.raises(CorefileError) as e:
        parse(directive)
    assert message in str(e.value)
    assert "Corefile:" in str(e.value)


def test_resolv_conf_nameservers() -> None:
    text = """# generated
search default.svc.cluster.local svc.cluster.local
nameserver 10.0.0.53
; old style comment
nameserver fe80::1%eth0
options ndots:5
nameserver   2001:db8::53   # trailing comment
"""
    assert parse_nameservers(text) == ["10.0.0.53", "fe80::1", "2001:db8::53"]
    with pytest.raises(ValueError, match="not an IP address"):
        parse_nameservers("nameserver dns.example.com\n")


def test_resolv_conf_file_is_used_on_port_53(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.0.0.10\nnameserver 10.0.0.11\n")
    cfg = parse(d(".", str(path), "10.0.0.12:5300"))
    assert cfg.upstreams == (
        Upstream("10.0.0.10", 53), Upstream("10.0.0.11", 53), Upstream("10.0.0.12", 5300))
    empty = tmp_path / "empty.conf"
    empty.write_text("search example.org\n")
    with pytest.raises(CorefileError, match="no nameservers found"):
        parse(d(".", str(empty)))


def test_policies() -> None:
    items = ["a", "b", "c"]
    rr = RoundRobin()
    assert [rr(items) for _ in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert sequential_order(items) == items
    orders = {tuple(random_order(items)) for _ in range(200)}
    assert all(sorted(o) == items for o in orders)
    assert len(orders) > 1


def test_from_and_except_matching() -> None:
    fwd = Forward(parse(d("example.org", "10.0.0.1", children=(opt("except", "skip.example.org"),))))
    assert fwd.matches("example.org.")
    assert fwd.matches("a.example.org.")
    assert not fwd.matches("skip.example.org.")
    assert not fwd.matches("a.skip.example.org.")
    assert not fwd.matches("example.com.")
    assert not fwd.matches("notexample.org.")
    assert fwd.transparent_for("example.com.") and not fwd.transparent_for("a.example.org.")
    # FROM itself is forwarded even when listed under except (CoreDNS isAllowedDomain).
    fwd = Forward(parse(d("example.org", "10.0.0.1", children=(opt("except", "example.org"),))))
    assert fwd.matches("example.org.")
    assert not fwd.matches("a.example.org.")


# --- in process: an internally generated request (ExternalName chase) -------------------------------


def _request(name: str, qtype: str = "A", proto: str = "udp") -> Request:
    msg = DNSRecord.question(name, qtype)
    return Request.from_wire(bytes(msg.pack()), proto, ("127.0.0.1", 0), "dns://:53")


async def _no_next(request: Request) -> object:
    raise AssertionError("forward must not call the next plugin here")


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_internal_request_is_forwarded_and_counted(upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("ext.example.org.", "A", "192.0.2.7")
    fwd = Forward(parse(d(".", up.address)))
    await fwd.start()
    labels = {"proxy_name": "forward", "to": up.address, "rcode": "NOERROR"}
    before = _sample("coredns_proxy_request_duration_seconds_count", labels)
    try:
        request = _request("ext.example.org.")
        reply = await fwd.serve(request, _no_next)  # type: ignore[arg-type]
        again = await fwd.serve(_request("ext.example.org."), _no_next)  # type: ignore[arg-type]
    finally:
        await fwd.stop()
    assert [str(rr.rdata) for rr in reply.message.rr] == ["192.0.2.7"]
    assert reply.message.header.id == request.message.header.id
    assert reply.plugin == "forward" and again.message.header.rcode == 0
    assert _sample("coredns_proxy_request_duration_seconds_count", labels) == before + 2
    # The second query reused the first one's UDP socket (CoreDNS's connection cache).
    assert _sample("coredns_proxy_conn_cache_hits_total", {"proxy_name": "forward", "to": up.address,
                                                           "proto": "udp"}) >= 1


async def test_all_upstreams_down_raises_for_servfail(upstreams: Upstreams) -> None:
    up = upstreams()
    up.stop()
    fwd = Forward(parse(d(".", up.address, children=(opt("health_check", "0.1s"),))))
    await fwd.start()
    broken = _sample("coredns_forward_healthcheck_broken_total", {})
    try:
        with pytest.raises(Exception, match=f"udp {up.address}: connection refused"):
            await fwd.serve(_request("a.example.org."), _no_next)  # type: ignore[arg-type]
    finally:
        await fwd.stop()
    assert fwd.proxies[0].fails > 2  # marked down by its health checks
    failures = {"proxy_name": "forward", "to": up.address}
    assert _sample("coredns_proxy_healthcheck_failures_total", failures) >= 3
    assert _sample("coredns_forward_healthcheck_broken_total", {}) >= broken + 1


# --- through a real kdns process ---------------------------------------------------------------------


def _corefile(body: str, zone: str = ".") -> str:
    return f"{zone}:{{port}} {{\n{body}\n}}\n"


def test_udp_and_tcp_follow_the_client(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1", ttl=120)
    k = kdns(_corefile(f"forward . {up.address}"))
    r = ask(k.port, "WWW.Example.org", "A")
    assert rcode(r) == "NOERROR" and answer_texts(r) == ["192.0.2.1"]
    assert r.question[0].name.to_text() == "WWW.Example.org."  # the client's spelling comes back
    assert r.answer[0].ttl == 120
    r = ask(k.port, "www.example.org", "A", tcp=True)
    assert answer_texts(r) == ["192.0.2.1"]
    r = ask(k.port, "missing.example.org", "A")
    assert rcode(r) == "NXDOMAIN" and r.authority[0].rdtype == dns.rdatatype.SOA
    seen = up.seen()
    assert [(q.proto, q.qname) for q in seen] == [
        ("udp", "WWW.Example.org."), ("tcp", "www.example.org."), ("udp", "missing.example.org.")]


def test_query_forwarded_as_is_with_fresh_id(kdns: Kdns,
                                             upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward . {up.address}"))
    ids = []
    for _ in range(4):
        q = dns.message.make_query("www.example.org", "A", use_edns=0, payload=1400, want_dnssec=True,
                                   options=[dns.edns.GenericOption(65001, b"kdns")])
        q.flags |= dns.flags.CD
        r = dns.query.udp(q, "127.0.0.1", port=k.port, timeout=5)  # dnspython checks the reply ID
        assert answer_texts(r) == ["192.0.2.1"]
        ids.append(q.id)
        seen = up.seen()[-1]
        assert seen.do and seen.cd and seen.has_opt
        assert (65001, b"kdns") in seen.options
        assert seen.wire[2:] == q.to_wire()[2:]  # byte for byte, but the ID
    assert [s.id for s in up.seen()] != ids
    r = ask(k.port, "www.example.org", "A", edns=False)
    assert not up.seen()[-1].has_opt and r.edns < 0


def test_force_tcp_and_prefer_udp(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward . {up.address} {{\n force_tcp\n}}"))
    assert answer_texts(ask(k.port, "www.example.org", "A")) == ["192.0.2.1"]
    assert up.seen()[-1].proto == "tcp"
    k2 = kdns(_corefile(f"forward . {up.address} {{\n prefer_udp\n}}"))
    assert answer_texts(ask(k2.port, "www.example.org", "A", tcp=True)) == ["192.0.2.1"]
    assert up.seen()[-1].proto == "udp"


def test_truncated_reply_passes_through(kdns: Kdns,
                                        upstreams: Upstreams) -> None:
    up = upstreams(truncate_udp=True)
    up.add("big.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward . {up.address}"))
    r = ask(k.port, "big.example.org", "A")
    assert has_flag(r, "TC") and not r.answer
    r = ask(k.port, "big.example.org", "A", tcp=True)
    assert not has_flag(r, "TC") and answer_texts(r) == ["192.0.2.1"]
    # prefer_udp retries a truncated UDP reply over TCP itself.
    k2 = kdns(_corefile(f"forward . {up.address} {{\n prefer_udp\n}}"))
    before = len(up.seen())
    r = ask(k2.port, "big.example.org", "A", tcp=True)
    assert answer_texts(r) == ["192.0.2.1"]
    assert [q.proto for q in up.seen()[before:]] == ["udp", "tcp"]


def test_failover_to_next_upstream(kdns: Kdns, upstreams: Upstreams) -> None:
    down, silent, good = upstreams(), upstreams(mode="drop"), upstreams()
    down.stop()
    good.add("www.example.org.", "A", "192.0.2.9")
    k = kdns(_corefile(f"forward . {down.address} {good.address} {{\n policy sequential\n}}"))
    assert answer_texts(ask(k.port, "www.example.org", "A", timeout=10)) == ["192.0.2.9"]
    # An upstream that never answers: the 2 s read timeout, then the next one.
    k2 = kdns(_corefile(f"forward . {silent.address} {good.address} {{\n policy sequential\n}}"))
    assert answer_texts(ask(k2.port, "www.example.org", "A", timeout=10)) == ["192.0.2.9"]
    assert len(silent.seen("www.example.org.")) == 1


def test_servfail_when_all_upstreams_fail(kdns: Kdns,
                                          upstreams: Upstreams) -> None:
    a, b = upstreams(), upstreams()
    a.stop()
    b.stop()
    k = kdns(_corefile(f"errors\nforward . {a.address} {b.address}"))
    r = ask(k.port, "www.example.org", "A", timeout=15)
    assert rcode(r) == "SERVFAIL"
    assert "[ERROR] plugin/errors: 2 www.example.org. A: read udp 127.0.0.1:" in k.logs()
    assert "connection refused" in k.logs()


def test_upstream_servfail_is_passed_on(kdns: Kdns,
                                        upstreams: Upstreams) -> None:
    up = upstreams(mode="servfail")
    k = kdns(_corefile(f"forward . {up.address}"))
    assert rcode(ask(k.port, "www.example.org", "A")) == "SERVFAIL"
    assert len(up.seen()) == 1  # a reply, even SERVFAIL, is not an upstream failure: no retry


def test_bad_replies(kdns: Kdns, upstreams: Upstreams) -> None:
    """A reply to another question is FORMERR (CoreDNS); an unparsable one is an upstream failure."""
    wrong = upstreams(mode="mismatch")
    k = kdns(_corefile(f"forward . {wrong.address}"))
    assert rcode(ask(k.port, "www.example.org", "A")) == "FORMERR"
    junk, good = upstreams(mode="garbage"), upstreams()
    good.add("www.example.org.", "A", "192.0.2.1")
    k2 = kdns(_corefile(f"forward . {junk.address} {good.address} {{\n policy sequential\n}}"))
    assert answer_texts(ask(k2.port, "www.example.org", "A", timeout=10)) == ["192.0.2.1"]
    assert len(junk.seen()) == 1


def test_max_concurrent_refuses_beyond_the_limit(kdns: Kdns,
                                                 upstreams: Upstreams) -> None:
    up = upstreams(delay=1.5)
    up.add("slow.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward . {up.address} {{\n max_concurrent 2\n}}"))
    with ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(lambda _: ask(k.port, "slow.example.org", "A", timeout=10), range(10)))
    codes = [rcode(r) for r in replies]
    assert codes.count("REFUSED") >= 1 and codes.count("NOERROR") >= 1
    assert set(codes) == {"REFUSED", "NOERROR"}
    assert up.max_inflight <= 2
    assert len(up.seen()) == codes.count("NOERROR")
    for r in replies:  # RFC 8914 §4.1 Other Error: the REFUSED says why (see forward/plugin.py)
        assert ede(r) == ([(0, "too many queries in flight upstream (forward max_concurrent 2); try again")]
                          if rcode(r) == "REFUSED" else [])


def test_max_concurrent_refusal_over_udp_and_tcp_with_and_without_edns(kdns: Kdns,
                                                                        upstreams: Upstreams) -> None:
    up = upstreams(delay=1.5)
    up.add("slow.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward . {up.address} {{\n max_concurrent 1\n}}"))
    asks = [(tcp, edns) for tcp in (False, True) for edns in (0, False)]
    with ThreadPoolExecutor(1 + len(asks)) as pool:
        first = pool.submit(ask, k.port, "slow.example.org", "A", timeout=10)  # takes the one slot
        up.wait_for(lambda: len(up.seen()) == 1)
        refused = list(pool.map(lambda a: ask(k.port, "slow.example.org", "A", tcp=a[0], edns=a[1]), asks))
        assert answer_texts(first.result()) == ["192.0.2.1"]
    for (_, edns), r in zip(asks, refused, strict=True):
        assert rcode(r) == "REFUSED"
        if edns is False:
            assert r.edns == -1  # a client without EDNS gets no OPT, so no EDE
        else:
            reason = "too many queries in flight upstream (forward max_concurrent 1); try again"
            assert ede(r) == [(0, reason)]


def test_upstream_failures_carry_extended_dns_errors(kdns: Kdns, upstreams: Upstreams) -> None:
    """23 Network Error while the upstream is not marked down (health checks off: `max_fails 0`);
    22 No Reachable Authority once health checks have marked every upstream down. Over UDP and TCP,
    and nothing for a client without EDNS."""
    a, b = upstreams(), upstreams()
    a.stop()
    b.stop()
    asks = [(tcp, edns) for tcp in (False, True) for edns in (0, False)]
    k = kdns(_corefile(f"forward . {a.address} {{\n max_fails 0\n}}"))
    with ThreadPoolExecutor(len(asks)) as pool:  # each one retries for forward's 5 s deadline
        replies = list(pool.map(lambda q: ask(k.port, "www.example.org", "A", tcp=q[0], edns=q[1],
                                              timeout=15), asks))
    for (tcp, edns), r in zip(asks, replies, strict=True):
        assert rcode(r) == "SERVFAIL"
        proto = "tcp" if tcp else "udp"
        expected = f"upstream failed: {'dial' if tcp else 'read'} {proto} {a.address}: connection refused"
        assert (r.edns == -1) if edns is False else (ede(r) == [(23, expected)])
    k2 = kdns(_corefile(f"forward . {a.address} {b.address} {{\n policy sequential\n health_check 0.1s\n}}"))
    with ThreadPoolExecutor(len(asks)) as pool:
        replies = list(pool.map(lambda q: ask(k2.port, "www.example.org", "A", tcp=q[0], edns=q[1],
                                              timeout=15), asks))
    for (_, edns), r in zip(asks, replies, strict=True):
        assert rcode(r) == "SERVFAIL"
        if edns is False:
            assert r.edns == -1
            continue
        [(code, text)] = ede(r)
        assert code == 22
        assert text.startswith(f"every upstream is marked down by failed health checks ({a.address}, "
                               f"{b.address}); last error: ")
        assert text.endswith("connection refused")


def test_positive_answers_are_unchanged(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward . {up.address}"))
    for tcp in (False, True):
        assert_positive_unchanged(k.port, "www.example.org.", "A", tcp=tcp)


def test_from_and_except_route_to_next_plugin(kdns: Kdns,
                                              upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("a.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward example.org {up.address} {{\n except skip.example.org\n}}\nwhoami"))
    assert answer_texts(ask(k.port, "a.example.org", "A")) == ["192.0.2.1"]
    for name in ("x.skip.example.org", "example.com"):
        r = ask(k.port, name, "A")
        assert not r.answer and any(rr.rdtype == dns.rdatatype.A for rr in r.additional)  # whoami's answer
    assert [q.qname for q in up.seen()] == ["a.example.org."]


def test_health_check_marks_down_and_up(kdns: Kdns,
                                        upstreams: Upstreams) -> None:
    first, second = upstreams(mode="drop"), upstreams()
    for up in (first, second):
        up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(f"forward . {first.address} {second.address} {{\n policy sequential\n"
                       f" health_check 0.2s\n}}"))
    assert answer_texts(ask(k.port, "www.example.org", "A", timeout=10)) == ["192.0.2.1"]
    assert len(first.seen()) == 1 and len(second.seen()) == 1  # timed out on the first, then the second
    first.wait_for(lambda: f"upstream {first.address} marked down after 3 failed health checks" in k.logs())
    assert len(first.probes()) >= 3
    # Marked down: the first upstream is skipped, the query goes straight to the second.
    assert answer_texts(ask(k.port, "www.example.org", "A", timeout=10)) == ["192.0.2.1"]
    assert len(first.seen()) == 1 and len(second.seen()) == 2
    first.mode = "answer"  # it recovers: the next probe succeeds and it is used again
    first.wait_for(lambda: f"upstream {first.address} is healthy again" in k.logs())
    assert answer_texts(ask(k.port, "www.example.org", "A", timeout=10)) == ["192.0.2.1"]
    assert len(first.seen()) == 2 and len(second.seen()) == 2


def test_resolv_conf_to_through_the_cli(tmp_path: Path) -> None:
    """A file TO is read at setup; one without nameservers stops the server with file:line."""
    empty = tmp_path / "resolv.conf"
    empty.write_text("search example.org\n")
    corefile = tmp_path / "Corefile"
    corefile.write_text(f".:1053 {{\n  forward . {empty}\n}}\n")
    result = run_kdns(["-conf", str(corefile)])
    assert result.returncode != 0
    expected = f"{corefile}:2 - Error during parsing: 'forward': no nameservers found"
    assert expected in result.stderr + result.stdout


def test_resolv_conf_upstreams_start(kdns: Kdns, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    k = kdns(_corefile(f"forward . {resolv} {{\n max_concurrent 1000\n}}"))
    assert k.proc is not None and k.proc.poll() is None

